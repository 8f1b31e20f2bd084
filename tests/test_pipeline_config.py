"""RunConfig validation names the field, its flag and the value received."""

import dataclasses

import pytest

import tf_compress


def test_defaults_are_valid_and_json_safe():
  config = tf_compress.TrainConfig()
  data = config.to_dict()
  assert data["dataset"] == "digits" and data["model"] == "cnn"
  assert set(data) == {opt.flag for opt in tf_compress.pipeline.options(
      tf_compress.RunConfig)}
  # every wave-1 TrainConfig field, plus --keras, --bootstrap_resamples,
  # --seeds, --sensitivity, --allow_unsafe_load and --backup_dir
  assert len(data) == 62
  assert tf_compress.RunConfig.from_flat(**data) == config


def test_nested_sections_and_flat_view():
  config = tf_compress.TrainConfig(epochs=7, prune_sparsity=0.8,
                                   sweep_sparsity="0.5,0.9", qat=True)
  assert isinstance(config, tf_compress.RunConfig)
  assert config.fit.epochs == 7 and config.prune.sparsity == 0.8
  assert config.prune.sweep == (0.5, 0.9) and config.qat.enabled
  assert config.to_dict()["sweep_sparsity"] == [0.5, 0.9]
  assert config.replace(epochs=3).fit.epochs == 3
  with pytest.raises(tf_compress.UserInputError, match="unknown RunConfig "
                     r"field\(s\) \['epoch'\]"):
    config.replace(epoch=3)


def test_frozen():
  with pytest.raises(dataclasses.FrozenInstanceError):
    tf_compress.TrainConfig().fit.epochs = 3


@pytest.mark.parametrize("field,value,pattern", [
    ("epochs", 0, r"FitConfig.epochs \(--epochs\) must be an integer >= 1, got 0"),
    ("validation_fraction", 1.0, r"validation_fraction \(--validation_fraction\) must be in"),
    ("test_fraction", -0.1, r"test_fraction \(--test_fraction\) must be in"),
    ("validation_fraction", 0.85, "--validation_fraction \\+ --test_fraction is below 1"),
    ("normalization", "minmax", r"normalization \(--normalization\) must be one of"),
    ("optimizer", "adagrad", r"optimizer \(--optimizer\) must be one of"),
    ("top_k", 0, "top_k .--top_k. must be an integer >= 1"),
    ("seed", -1, "seed .--seed. must be an integer >= 0"),
    ("width", 0.0, r"width \(--width\) must be > 0"),
    ("image_size", (0, 4), r"image_size \(--image_size\) must be"),
    ("strategy", "tpu", r"strategy \(--strategy\) must be"),
    ("verbose", 3, r"verbose \(--verbose\) must be an integer in \[0, 2\]"),
], ids=lambda v: str(v))
def test_invalid_field(field, value, pattern):
  with pytest.raises(tf_compress.UserInputError, match=pattern):
    tf_compress.TrainConfig(**{field: value})


def test_zero_values_are_real_values():
  config = tf_compress.TrainConfig(validation_fraction=0.0, seed=0)
  assert config.data.validation_fraction == 0.0 and config.fit.seed == 0


def test_qat_with_a_mode_it_cannot_export_fails_before_training():
  for modes in (("int8", "int4_weight_only"), ("int16x8",),
                ("int4_blockwise", "int4_weight_only")):
    with pytest.raises(tf_compress.UserInputError,
                       match=r"--qat trains int8 fake quantization.*"
                       f"as {', '.join(m for m in modes if m != 'int8')} "
                       r"\(--export\)"):
      tf_compress.TrainConfig(qat=True, export=modes)
  # Without --qat, or with the 16x8 scheme for int16x8, they are fine.
  assert tf_compress.TrainConfig(export=("int4_weight_only",)).export.modes
  config = tf_compress.TrainConfig(qat=True, qat_scheme="16x8",
                                   export=("int16x8",))
  assert config.qat.enabled and config.export.modes == ("int16x8",)
