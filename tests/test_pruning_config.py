"""PruningConfig validation and parse_m_by_n."""

import dataclasses
import json

import pytest

from tf_compress import UserInputError
from tf_compress.pruning import parse_m_by_n
from tf_compress.pruning import PruningConfig


def test_defaults_and_to_dict_is_json_safe():
  config = PruningConfig(target_sparsity=0.8, include="fc.*",
                         layer_types=["Dense"], m_by_n=None)
  assert config.schedule == "constant"
  assert config.scope == "layer"
  assert config.frequency == 10
  assert (config.keep_first, config.keep_last) == (False, False)
  assert config.include == ("fc.*",)
  assert config.layer_types == ("Dense",)
  data = json.loads(json.dumps(config.to_dict()))
  assert data["target_sparsity"] == 0.8
  assert data["include"] == ["fc.*"]
  assert PruningConfig(**{**data, "include": tuple(data["include"]),
                          "layer_types": tuple(data["layer_types"])}) == config


def test_is_frozen():
  config = PruningConfig(target_sparsity=0.5)
  with pytest.raises(dataclasses.FrozenInstanceError):
    config.target_sparsity = 0.9


@pytest.mark.parametrize("value", [1.2, 1.0, -0.1, "0.5", True],
                         ids=["1.2", "one", "negative", "string", "bool"])
def test_target_sparsity_out_of_range(value):
  with pytest.raises(UserInputError) as info:
    PruningConfig(target_sparsity=value)
  assert str(info.value) == (
      f"PruningConfig.target_sparsity must be in [0, 1), got {value!r}")


def test_target_sparsity_required_without_m_by_n():
  with pytest.raises(UserInputError, match=r"target_sparsity must be a "
                     r"number in \[0, 1\) \(or set m_by_n"):
    PruningConfig()


def test_zero_sparsity_is_a_real_value():
  assert PruningConfig(target_sparsity=0.0).target_sparsity == 0.0


@pytest.mark.parametrize("kwargs,message", [
    (dict(begin_epoch=3, end_epoch=2),
     r"end_epoch must be >= begin_epoch \(3\), got 2"),
    (dict(begin_step=50, end_step=10),
     r"end_step must be >= begin_step \(50\), got 10"),
    (dict(schedule="polynomial"),
     r"end_epoch must be set \(or end_step\) for schedule='polynomial'"),
    (dict(begin_step=1.5), r"begin_step must be an integer >= 0"),
    (dict(begin_epoch=-1), r"begin_epoch must be a number >= 0"),
    (dict(frequency=0), r"frequency must be an integer >= 1 \(steps\), got 0"),
    (dict(schedule="cubic"), r"schedule must be one of"),
    (dict(scope="model"), r"scope must be one of \('layer', 'global'\)"),
    (dict(initial_sparsity=0.9), r"initial_sparsity must be <= "
     r"target_sparsity \(0.5\), got 0.9"),
    (dict(power=0), r"power must be a number > 0, got 0"),
    (dict(include=["fc[1"]), r"include must be a valid regular expression"),
    (dict(layer_types=[""]), r"layer_types must be non-empty strings"),
    (dict(keep_last="yes"), r"keep_last must be True or False, got 'yes'"),
], ids=["end-epoch-before-begin", "end-step-before-begin",
        "polynomial-without-end", "float-step", "negative-epoch",
        "zero-frequency", "bad-schedule", "bad-scope", "initial-above-target",
        "zero-power", "bad-regex", "empty-type", "non-bool-keep"])
def test_bad_values_name_field_and_value(kwargs, message):
  with pytest.raises(UserInputError, match=message):
    PruningConfig(target_sparsity=0.5, **kwargs)


def test_epoch_floats_and_steps_accepted():
  config = PruningConfig(target_sparsity=0.5, schedule="polynomial",
                         begin_epoch=0.5, end_epoch=2.5, begin_step=7)
  assert (config.begin_epoch, config.end_epoch, config.begin_step) == (
      0.5, 2.5, 7)


@pytest.mark.parametrize("value,expected", [
    ("2:4", (2, 4)), (" 1 : 4 ", (1, 4)), ("2x4", (2, 4)), ((2, 4), (2, 4)),
    ([1, 8], (1, 8)), (None, None),
], ids=["colon", "spaces", "x", "tuple", "list", "none"])
def test_parse_m_by_n(value, expected):
  assert parse_m_by_n(value) == expected


@pytest.mark.parametrize("value,message", [
    ("4:4", r"1 <= M < N"), ("0:4", r"1 <= M < N"), ((5, 4), r"1 <= M < N"),
    ("2", r"two integers"), ("a:b", r"must look like '2:4'"),
    ((2, 4, 8), r"two integers"), ((2.0, 4), r"two integers"),
    (7, r"a pair \(M, N\)"),
], ids=["m-equals-n", "zero-m", "m-above-n", "one-number", "letters",
        "three", "float", "int"])
def test_parse_m_by_n_errors(value, message):
  with pytest.raises(UserInputError, match=message):
    parse_m_by_n(value)


def test_m_by_n_sets_the_sparsity():
  config = PruningConfig(m_by_n="2:4")
  assert config.m_by_n == (2, 4)
  assert config.target_sparsity == 0.5
  assert PruningConfig(m_by_n=(1, 4), target_sparsity=0.25).m_by_n == (1, 4)


def test_m_by_n_conflicts():
  with pytest.raises(UserInputError,
                     match=r"target_sparsity must be 0.5 \(or None\) with "
                     r"m_by_n=\(2, 4\)"):
    PruningConfig(m_by_n="2:4", target_sparsity=0.8)
  with pytest.raises(UserInputError, match=r"scope must be 'layer' when "
                     r"m_by_n is set"):
    PruningConfig(m_by_n="2:4", scope="global")
  with pytest.raises(UserInputError, match=r"PruningConfig.m_by_n must have "
                     r"1 <= M < N"):
    PruningConfig(m_by_n="4:2")


def test_block_size_defaults_parsing_and_to_dict():
  config = PruningConfig(target_sparsity=0.8)
  assert (config.block_size, config.block_pooling) == ((1, 1), "AVG")
  assert PruningConfig(target_sparsity=0.8, block_size="4x1").block_size == (
      4, 1)
  config = PruningConfig(target_sparsity=0.8, block_size=" 1 , 4 ")
  assert config.block_size == (1, 4)
  config = PruningConfig(target_sparsity=0.8, block_size=[8, 1],
                         block_pooling="max")
  assert (config.block_size, config.block_pooling) == ((8, 1), "MAX")
  data = json.loads(json.dumps(config.to_dict()))
  assert (data["block_size"], data["block_pooling"]) == ([8, 1], "MAX")
  assert PruningConfig(**{**data, "include": tuple(data["include"]),
                          "layer_types": tuple(data["layer_types"])}) == config


@pytest.mark.parametrize("kwargs,message", [
    (dict(block_size="0x4"), r"PruningConfig.block_size must have height and "
     r"width >= 1, got '0x4'"),
    (dict(block_size="4"), r"PruningConfig.block_size must be two integers "
     r"\(height, width\) such as \(4, 1\), got '4'"),
    (dict(block_size=(4, 1, 1)), r"PruningConfig.block_size must be two "
     r"integers"),
    (dict(block_size=(4.0, 1)), r"PruningConfig.block_size must be two "
     r"integers .*got \(4.0, 1\)"),
    (dict(block_size="axb"), r"PruningConfig.block_size must look like "
     r"'4x1'"),
    (dict(block_size=4), r"PruningConfig.block_size must be a pair"),
    (dict(block_size="4x1", block_pooling="SUM"), r"PruningConfig."
     r"block_pooling must be one of \('AVG', 'MAX'\), got 'SUM'"),
    (dict(block_pooling=None), r"PruningConfig.block_pooling must be one of"),
    (dict(target_sparsity=None, m_by_n="2:4", block_size="4x1"),
     r"PruningConfig.block_size must be \(1, 1\) when m_by_n is set"),
    (dict(block_size=(4, 1), scope="global"), r"PruningConfig.block_size "
     r"must be \(1, 1\) with scope='global'.*got \(4, 1\)"),
], ids=["zero-side", "one-number", "three", "float", "letters", "int",
        "bad-pooling", "none-pooling", "with-m-by-n", "with-global"])
def test_bad_block_specs_name_the_field(kwargs, message):
  kwargs = {"target_sparsity": 0.8, **kwargs}
  with pytest.raises(UserInputError, match=message):
    PruningConfig(**kwargs)


def test_unstructured_block_allowed_with_m_by_n_and_global():
  assert PruningConfig(m_by_n="2:4", block_size="1x1").block_size == (1, 1)
  assert PruningConfig(target_sparsity=0.5, scope="global",
                       block_size=(1, 1)).scope == "global"


def test_train_config_prune_block_flag_and_pass_through():
  # pylint: disable=g-import-not-at-top
  from absl import flags
  from tf_compress import TrainConfig
  from tf_compress.cli import train
  pruning_config_for = lambda c: c.prune.pruning_config(c.fit.finetune_epochs)
  config = TrainConfig(prune_sparsity=0.8, prune_block="4x1")
  assert pruning_config_for(config).block_size == (4, 1)
  assert pruning_config_for(TrainConfig(prune_sparsity=0.8)).block_size == (
      1, 1)
  fv = train.define_flags(flags.FlagValues())
  def flag_ok(value):
    fv.unparse_flags()
    fv(["train", "--prune_sparsity=0.8"] +
       ([f"--prune_block={value}"] if value else []))
    try:
      train.config_from_flags(fv)
    except UserInputError:
      return False
    return True
  for value in ("4", "4x0", "4-1", "ax1"):
    with pytest.raises(UserInputError, match=r"PruneConfig.block \(--prune_block\) must "
                       r"be 'HxW' with H, W >= 1, such as '4x1', got "):
      TrainConfig(prune_sparsity=0.8, prune_block=value)
    assert not flag_ok(value)
  with pytest.raises(UserInputError, match=r"PruneConfig.block \(--prune_block\) must be "
                     r"None with prune_m_by_n or prune_scope='global'"):
    TrainConfig(prune_sparsity=0.8, prune_block="4x1", prune_scope="global")
  assert flag_ok("8x1")
  assert flag_ok(None)
