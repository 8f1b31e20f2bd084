"""The tuning search space: validation, Optuna draws, TrainConfig overrides."""

import optuna
import pytest

import tf_compress
from tf_compress.errors import UserInputError
from tf_compress.pipeline.tuning import space as space_lib
from tf_compress.pipeline.tuning.space import SearchSpace


def _draw(space, fixed=None, seed=0):
  study = optuna.create_study(
      directions=["maximize"], sampler=optuna.samplers.RandomSampler(seed))
  if fixed:
    study.enqueue_trial(fixed)
  trial = study.ask()
  return space_lib.suggest(trial, space), trial


def test_parse_range():
  assert space_lib.parse_range("0.5,0.9", "--x") == (0.5, 0.9)
  assert space_lib.parse_range("0.7", "--x") == (0.7, 0.7)
  assert space_lib.parse_range("8, 32", "--c", integer=True) == (8, 32)
  assert space_lib.parse_range("", "--x") is None
  assert space_lib.parse_range(None, "--x") is None
  for bad in ("a,b", "1,2,3", "nan,1"):
    with pytest.raises(UserInputError, match="--x must be one or two"):
      space_lib.parse_range(bad, "--x")
  with pytest.raises(UserInputError, match="--c must be one or two integers"):
    space_lib.parse_range("2.5,8", "--c", integer=True)


@pytest.mark.parametrize("kwargs,flag", [
    (dict(prune_sparsity=(0.9, 0.5)), "--prune_sparsity_range must have low"),
    (dict(prune_sparsity=(0.5, 1.0)), "--prune_sparsity_range must lie"),
    (dict(slice_ratio=(-0.1, 0.5)), "--slice_ratio_range must lie"),
    (dict(cluster_count=(1, 8)), "--cluster_count_range must lie"),
    (dict(cluster_count=(2.5, 8)), "--cluster_count_range must be integers"),
    (dict(distill_temperature=(0.0, 4.0)), "--distill_temperature_range"),
    (dict(distill_alpha=(0.2, 1.5)), "--distill_alpha_range must lie"),
    (dict(adv_epsilon=(-0.1, 0.2)), "--adv_epsilon_range must lie"),
    (dict(export=("float32", "int4")), "--export_modes takes modes"),
    (dict(export=("int8", "int8")), "--export_modes has repeats"),
], ids=["reversed", "sparsity_1", "slice_negative", "one_cluster",
        "fractional_clusters", "zero_temperature", "alpha_above_1",
        "negative_epsilon", "unknown_mode", "repeated_mode"])
def test_bad_ranges_name_the_flag(kwargs, flag):
  with pytest.raises(UserInputError, match=flag):
    SearchSpace(**kwargs)


def test_empty_space_is_rejected_naming_the_flags():
  base = tf_compress.TrainConfig()
  for space in (SearchSpace(), SearchSpace(export=("int8",))):
    with pytest.raises(UserInputError, match="search space is empty.*"
                       "--prune_sparsity_range"):
      space.check(base)


def test_int4_modes_are_searched_but_not_with_qat():
  base = tf_compress.TrainConfig()
  space = SearchSpace(export=("int8", "int4_weight_only", "int4_blockwise"))
  space.check(base)
  assert space.dimensions() == ["export"]
  drawn = {_draw(space, seed=seed)[0]["export"] for seed in range(12)}
  assert drawn == set(space.export)
  for with_qat, qat_base in ((SearchSpace(export=space.export, qat=True),
                              base),
                             (space, tf_compress.TrainConfig(qat=True))):
    with pytest.raises(UserInputError, match="--export_modes "
                       "int4_weight_only,int4_blockwise cannot export a "
                       "quantization-aware"):
      with_qat.check(qat_base)


def test_prune_end_epoch_bounds_and_needs_pruning():
  base = tf_compress.TrainConfig(finetune_epochs=3)
  with pytest.raises(UserInputError, match="--prune_end_epoch_range needs"):
    SearchSpace(prune_end_epoch=(1, 2)).check(base)
  with pytest.raises(UserInputError, match=r"finetune_epochs=3\], got 1,4"):
    SearchSpace(prune_sparsity=(0.5, 0.8), prune_end_epoch=(1, 4)).check(base)
  SearchSpace(prune_sparsity=(0.5, 0.8), prune_end_epoch=(1, 3)).check(base)


def test_every_part_is_drawn_within_its_range():
  space = SearchSpace(prune_sparsity=(0.5, 0.9), prune_end_epoch=(1.0, 2.0),
                      slice_ratio=(0.1, 0.3), cluster_count=(4, 16), qat=True,
                      export=("float32", "int8"),
                      distill_temperature=(1.0, 8.0),
                      distill_alpha=(0.0, 0.5), adv_epsilon=(0.05, 0.2))
  assert space.dimensions() == [
      "prune_sparsity", "prune_end_epoch", "slice_ratio", "cluster_count",
      "qat", "export", "distill_temperature", "distill_alpha", "adv_epsilon"]
  for seed in range(5):
    params, trial = _draw(space, seed=seed)
    assert list(params) == space.dimensions()
    assert 0.5 <= params["prune_sparsity"] <= 0.9
    assert 1.0 <= params["prune_end_epoch"] <= 2.0
    assert 0.1 <= params["slice_ratio"] <= 0.3
    assert 4 <= params["cluster_count"] <= 16
    assert isinstance(params["cluster_count"], int)
    assert params["qat"] in (False, True)
    assert params["export"] in ("float32", "int8")
    assert 1.0 <= params["distill_temperature"] <= 8.0
    assert 0.0 <= params["distill_alpha"] <= 0.5
    assert 0.05 <= params["adv_epsilon"] <= 0.2
    assert trial.params == params
  dist = trial.distributions["distill_temperature"]
  assert dist.log  # temperatures are searched on a log scale


def test_overrides_build_a_valid_train_config():
  base = tf_compress.TrainConfig(finetune_epochs=3, export=("dynamic",))
  space = SearchSpace(prune_sparsity=(0.5, 0.9), prune_end_epoch=(1.0, 3.0),
                      cluster_count=(4, 16), qat=True,
                      distill_alpha=(0.0, 0.5), adv_epsilon=(0.05, 0.2))
  params = {"prune_sparsity": 0.75, "prune_end_epoch": 2.5,
            "cluster_count": 8, "qat": True, "distill_alpha": 0.25,
            "adv_epsilon": 0.1}
  overrides = space_lib.train_overrides(params, space, base)
  assert overrides == {
      "prune_sparsity": 0.75, "prune_end_epoch": 2.5, "cluster_count": 8,
      "qat": True, "distill_alpha": 0.25, "adv_epsilon": 0.1,
      "prune_schedule": "polynomial", "distill": True, "adv_attack": "fgsm",
      "export": ("dynamic",)}
  config = base.replace(**overrides)
  assert config.prune.sparsity == 0.75 and config.export.modes == ("dynamic",)


def test_export_mode_of_a_trial():
  base = tf_compress.TrainConfig(export=("int8", "float32"))
  one = SearchSpace(prune_sparsity=(0.5, 0.9))
  assert space_lib.trial_export_mode({}, one, base) == "int8"
  fixed = SearchSpace(prune_sparsity=(0.5, 0.9), export=("dynamic",))
  assert space_lib.trial_export_mode({}, fixed, base) == "dynamic"
  searched = SearchSpace(export=("float32", "float16"))
  assert space_lib.trial_export_mode({"export": "float16"}, searched,
                                     base) == "float16"
  none = tf_compress.TrainConfig(export=())
  assert space_lib.trial_export_mode({}, one, none) == "float32"


def test_enqueued_parameters_are_reused():
  space = SearchSpace(prune_sparsity=(0.5, 0.9), qat=True)
  params, _ = _draw(space, fixed={"prune_sparsity": 0.8, "qat": True})
  assert params == {"prune_sparsity": 0.8, "qat": True}
