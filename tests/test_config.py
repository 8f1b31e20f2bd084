"""TrainConfig validation names the field and the value received."""

import dataclasses

import pytest

import tf_compress


def test_defaults_are_valid_and_json_safe():
  config = tf_compress.TrainConfig()
  data = config.to_dict()
  assert data["dataset"] == "digits" and data["model"] == "cnn"
  assert set(data) == {f.name for f in dataclasses.fields(config)}


def test_frozen():
  with pytest.raises(dataclasses.FrozenInstanceError):
    tf_compress.TrainConfig().epochs = 3


@pytest.mark.parametrize("field,value,pattern", [
    ("epochs", 0, "TrainConfig.epochs must be >= 1, got 0"),
    ("validation_fraction", 1.0, "validation_fraction must be in"),
    ("test_fraction", -0.1, "test_fraction must be in"),
    ("validation_fraction", 0.85, "less than 1 - test_fraction"),
    ("normalization", "minmax", "normalization must be one of"),
    ("optimizer", "adagrad", "optimizer must be one of"),
    ("top_k", 0, "top_k must be >= 1"),
    ("seed", -1, "seed must be >= 0"),
    ("width", 0.0, "width must be > 0"),
    ("image_size", (0, 4), "image_size must be"),
    ("strategy", "tpu", "strategy must be"),
    ("verbose", 3, "verbose must be 0, 1 or 2"),
], ids=lambda v: str(v))
def test_invalid_field(field, value, pattern):
  with pytest.raises(tf_compress.UserInputError, match=pattern):
    tf_compress.TrainConfig(**{field: value})


def test_zero_values_are_real_values():
  config = tf_compress.TrainConfig(validation_fraction=0.0, seed=0)
  assert config.validation_fraction == 0.0 and config.seed == 0
