"""Folds of the training split, and search views without test data."""

import dataclasses

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

from tf_compress.errors import UserInputError
from tf_compress.pipeline.tuning import cv


def test_folds_equal_a_hand_run_stratified_kfold(digits):
  hand = list(StratifiedKFold(n_splits=3, shuffle=True, random_state=7).split(
      np.zeros(digits.num_train), digits.y_train))
  ours = cv.make_folds(digits.y_train, 3, seed=7)
  assert len(ours) == 3
  for (tr, va), (hand_tr, hand_va) in zip(ours, hand):
    np.testing.assert_array_equal(tr, hand_tr)
    np.testing.assert_array_equal(va, hand_va)
  # Every training sample is held out exactly once.
  held_out = np.sort(np.concatenate([va for _, va in ours]))
  np.testing.assert_array_equal(held_out, np.arange(digits.num_train))
  # A different seed cuts differently.
  other = cv.make_folds(digits.y_train, 3, seed=8)
  assert not np.array_equal(other[0][1], ours[0][1])


def test_fold_splits_hold_the_fold_arrays_and_no_test(digits):
  folds = cv.fold_splits(digits, 3, seed=7)
  hand = cv.make_folds(digits.y_train, 3, seed=7)
  for (fold, val_idx), (tr, va) in zip(folds, hand):
    np.testing.assert_array_equal(val_idx, va)
    np.testing.assert_array_equal(fold.x_train, digits.x_train[tr])
    np.testing.assert_array_equal(fold.y_val, digits.y_train[va])
    assert fold.num_test == 0 and fold.x_test.shape == (0, 8, 8, 1)
    assert len(fold.raw_x) == 0 and len(fold.raw_y) == 0
    assert fold.num_classes == 10 and fold.input_shape == (8, 8, 1)
    # Stratified: each class keeps its share within one sample.
    counts = np.bincount(fold.y_val, minlength=10)
    expected = np.bincount(digits.y_train, minlength=10) / 3
    assert np.all(np.abs(counts - expected) <= 1)


def test_hold_out_is_the_validation_split(digits):
  [(fold, indices)] = cv.fold_splits(digits, 0, seed=0)
  assert indices is None
  np.testing.assert_array_equal(fold.x_val, digits.x_val)
  np.testing.assert_array_equal(fold.y_train, digits.y_train)
  assert fold.num_test == 0


class _Poison:
  """Raises on every use, like test labels a search must never read."""

  def __getattr__(self, name):
    raise AssertionError(f"test data read ({name})")

  def __len__(self):
    raise AssertionError("test data read (len)")

  def __array__(self, *args, **kwargs):
    raise AssertionError("test data read (array)")


def test_search_view_never_reads_the_test_split(digits):
  poisoned = dataclasses.replace(digits)
  for name in ("x_test", "y_test", "raw_x", "raw_y"):
    object.__setattr__(poisoned, name, _Poison())
  view = cv.search_view(poisoned)
  assert view.num_test == 0 and view.num_train == digits.num_train
  assert cv.fold_splits(poisoned, 2, seed=0)[1][0].num_test == 0


@pytest.mark.parametrize("folds,message", [
    (1, "--cv_folds must be 0 .* or >= 2, got 1"),
    (-3, "--cv_folds must be 0 .* or >= 2, got -3"),
    (200, "--cv_folds=200 is larger than the smallest class count of the "
          "training split"),
    (2.5, "--cv_folds must be an integer"),
])
def test_bad_fold_counts(digits, folds, message):
  with pytest.raises(UserInputError, match=message):
    cv.check_cv_folds(folds, digits.y_train)


def test_fold_count_limit_is_the_smallest_class():
  y = np.array([0] * 5 + [1] * 3 + [2] * 9)
  cv.check_cv_folds(3, y)
  with pytest.raises(UserInputError, match=r"\(3, class 1\); use at most 3"):
    cv.check_cv_folds(4, y)


def test_hold_out_needs_a_validation_split(digits):
  no_val = dataclasses.replace(digits, x_val=digits.x_val[:0],
                               y_val=digits.y_val[:0])
  with pytest.raises(UserInputError, match="--validation_fraction is 0"):
    cv.fold_splits(no_val, 0, seed=0)
