"""Tests of tf_compress.data.splits (load_dataset and DatasetSplits)."""

import json

import numpy as np
import pytest

from tf_compress.data import DatasetSplits
from tf_compress.data import load_dataset
from tf_compress.errors import DataError


@pytest.fixture(scope="module")
def digits():
  return load_dataset("digits", seed=0)


def _ids(x):
  """Hashable identity of each sample, to compare split membership."""
  return sorted(row.tobytes() for row in np.asarray(x).reshape(len(x), -1))


def test_digits_shapes_and_sizes(digits):
  assert isinstance(digits, DatasetSplits)
  assert digits.name == "digits" and digits.source_kind == "sklearn"
  assert digits.input_shape == (8, 8, 1) and digits.num_classes == 10
  assert digits.num_train + digits.num_val + digits.num_test == 1797
  assert digits.num_test == round(0.2 * 1797) == 359
  assert digits.num_val == round(0.1 * 1797) == 180
  assert digits.x_train.shape == (digits.num_train, 8, 8, 1)
  assert digits.x_train.dtype == np.float32
  assert digits.y_train.dtype == np.int64 and digits.y_train.ndim == 1
  assert digits.raw_x.shape == (1797, 8, 8, 1) and digits.raw_x.max() == 16
  assert digits.image_sizes is None


def test_digits_scaled_to_unit_range(digits):
  assert digits.value_range == (0.0, 1.0)
  assert digits.x_train.min() == 0.0 and digits.x_train.max() == 1.0
  assert digits.normalization == {"mode": "scale", "per": "global",
                                  "offset": 0.0, "divisor": 16.0,
                                  "clip": [0.0, 1.0]}
  json.dumps(digits.normalization)
  # Normalised samples are raw / 16: every value is a multiple of 1/16.
  np.testing.assert_allclose(digits.x_test * 16, np.round(digits.x_test * 16),
                             atol=1e-5)


def test_digits_stratified(digits):
  totals = np.bincount(digits.raw_y, minlength=10)
  for labels, n in ((digits.y_test, digits.num_test),
                    (digits.y_val, digits.num_val)):
    counts = np.bincount(labels, minlength=10)
    expected = totals * n / 1797
    assert np.all(np.abs(counts - expected) <= 1), (counts, expected)


def test_splits_are_disjoint_and_cover_raw(digits):
  all_ids = _ids(np.concatenate([digits.x_train, digits.x_val,
                                 digits.x_test]) * 16)
  raw_ids = _ids(digits.raw_x.astype(np.float32))
  assert all_ids == raw_ids


def test_seed_reproducibility(digits):
  same = load_dataset("digits", seed=0)
  np.testing.assert_array_equal(same.x_test, digits.x_test)
  np.testing.assert_array_equal(same.y_train, digits.y_train)
  other = load_dataset("digits", seed=1)
  assert _ids(other.x_test) != _ids(digits.x_test)


def test_fractions_respected():
  splits = load_dataset("digits", validation_fraction=0.0, test_fraction=0.5)
  assert splits.num_test == round(0.5 * 1797)
  assert splits.num_val == 0 and splits.x_val.shape == (0, 8, 8, 1)
  assert splits.y_val.shape == (0,)
  assert splits.num_train == 1797 - splits.num_test
  assert len(list(splits.validation(batch_size=16))) == 0


@pytest.mark.parametrize("kwargs,message", [
    ({"validation_fraction": 1.0}, "validation_fraction must be .* got 1.0"),
    ({"test_fraction": -0.1}, "test_fraction must be .* got -0.1"),
    ({"validation_fraction": 0.5, "test_fraction": 0.5}, "0.5 \\+ 0.5"),
    ({"test_fraction": 0.0}, "test_fraction=0 is only allowed"),
    ({"normalization": "minmax"}, "unknown normalization 'minmax'"),
    ({"seed": -1}, "seed must be"),
    ({"validation_fraction": 0.001}, "stratified validation split of 2"),
    ({"test_fraction": 0.0001}, "gives an empty test split"),
])
def test_bad_arguments(kwargs, message):
  with pytest.raises(DataError, match=message):
    load_dataset("digits", **kwargs)


def test_standardize_uses_train_statistics():
  splits = load_dataset("digits", normalization="standardize")
  raw = splits.x_train  # already standardised
  np.testing.assert_allclose(raw.mean(), 0.0, atol=1e-5)
  np.testing.assert_allclose(raw.std(), 1.0, atol=1e-4)
  params = splits.normalization
  assert params["mode"] == "standardize"
  assert len(params["mean"]) == 1 and len(params["std"]) == 1
  assert splits.value_range == (float(raw.min()), float(raw.max()))
  recovered = splits.x_test * params["std"][0] + params["mean"][0]
  np.testing.assert_allclose(recovered, np.round(recovered), atol=1e-3)


def test_none_normalization_keeps_values():
  splits = load_dataset("digits", normalization="none")
  assert splits.x_train.dtype == np.float32
  assert splits.value_range == (0.0, 16.0)
  assert splits.normalization == {"mode": "none"}


def test_tabular_minmax_from_train_only():
  splits = load_dataset("wine", seed=2)
  assert splits.input_shape == (13,)
  np.testing.assert_allclose(splits.x_train.min(axis=0), 0.0)
  np.testing.assert_allclose(splits.x_train.max(axis=0), 1.0)
  assert 0.0 <= splits.x_test.min() and splits.x_test.max() <= 1.0
  assert len(splits.normalization["offset"]) == 13
  assert splits.normalization["per"] == "feature"


def test_tabular_standardize_per_feature():
  splits = load_dataset("iris", normalization="standardize")
  np.testing.assert_allclose(splits.x_train.mean(axis=0), 0.0, atol=1e-5)
  np.testing.assert_allclose(splits.x_train.std(axis=0), 1.0, atol=1e-4)
  assert len(splits.normalization["std"]) == 4


def test_npz_test_split_kept_and_validation_from_train(tmp_path):
  rng = np.random.default_rng(4)
  x_train = rng.integers(0, 256, (60, 5, 5, 3), dtype=np.uint8)
  y_train = np.repeat([0, 1, 2], 20)
  x_test = np.full((9, 5, 5, 3), 255, np.uint8)
  y_test = np.repeat([0, 1, 2], 3)
  path = tmp_path / "rgb.npz"
  np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test,
           y_test=y_test)
  splits = load_dataset(str(path), validation_fraction=0.25, test_fraction=0)
  assert splits.num_test == 9 and splits.num_val == 15
  assert splits.num_train == 45
  np.testing.assert_array_equal(splits.y_test, y_test)
  np.testing.assert_array_equal(splits.x_test, 1.0)
  assert np.bincount(splits.y_val).tolist() == [5, 5, 5]
  assert splits.raw_x.dtype == np.uint8 and splits.raw_x.shape[0] == 69
  assert splits.normalization["divisor"] == 255.0


def test_float_npz_scaled_by_train_range(tmp_path):
  x_train = np.linspace(-2.0, 2.0, 40, dtype=np.float32).reshape(40, 1, 1)
  path = tmp_path / "f.npz"
  np.savez(path, x_train=x_train, y_train=np.tile([0, 1], 20),
           x_test=np.array([[[3.0]], [[-1.0]]], np.float32),
           y_test=np.array([0, 1]))
  splits = load_dataset(str(path), validation_fraction=0)
  assert splits.normalization["offset"] == -2.0
  assert splits.normalization["divisor"] == 4.0
  np.testing.assert_allclose(splits.x_test.ravel(), [1.0, 0.25])


def test_class_with_one_sample(tmp_path):
  path = tmp_path / "rare.npz"
  np.savez(path, x_train=np.zeros((11, 2)), y_train=[0] * 5 + [1] * 5 + [2],
           x_test=np.zeros((2, 2)), y_test=[0, 1])
  with pytest.raises(DataError, match="class 2 has only 1 sample"):
    load_dataset(str(path))


def test_tf_data_pipelines(digits):
  train_ds = digits.train(batch_size=100)
  batches = list(train_ds)
  assert sum(int(b[0].shape[0]) for b in batches) == digits.num_train
  assert batches[0][0].shape[1:] == (8, 8, 1)
  assert batches[0][1].dtype.name == "int64"
  epoch1 = np.concatenate([b[1].numpy() for b in batches])
  assert sorted(epoch1.tolist()) == sorted(digits.y_train.tolist())
  assert not np.array_equal(epoch1, digits.y_train)
  epoch2 = np.concatenate([b[1].numpy() for b in train_ds])
  assert not np.array_equal(epoch1, epoch2)  # reshuffled each epoch
  again = np.concatenate([b[1].numpy() for b in digits.train(100)])
  np.testing.assert_array_equal(again, epoch1)  # same (load) seed
  other = np.concatenate([b[1].numpy() for b in digits.train(100, seed=5)])
  assert not np.array_equal(other, epoch1)
  unshuffled = np.concatenate([b[1].numpy() for b in
                               digits.train(100, shuffle=False)])
  np.testing.assert_array_equal(unshuffled, digits.y_train)
  test_x = np.concatenate([b[0].numpy() for b in digits.test(64)])
  np.testing.assert_array_equal(test_x, digits.x_test)
  assert sum(int(b[0].shape[0]) for b in digits.validation(7)) == 180
  with pytest.raises(DataError, match="batch_size"):
    digits.test(batch_size=0)


def test_dataset_splits_checks_lengths(digits):
  with pytest.raises(DataError, match="train split has"):
    DatasetSplits(
        name="x", x_train=digits.x_train, y_train=digits.y_train[:-1],
        x_val=digits.x_val, y_val=digits.y_val, x_test=digits.x_test,
        y_test=digits.y_test, num_classes=10, class_names=(),
        input_shape=(8, 8, 1), value_range=(0.0, 1.0),
        normalization={"mode": "none"}, raw_x=digits.raw_x,
        raw_y=digits.raw_y, image_sizes=None, source_kind="sklearn")
