"""The data a search may see: stratified folds of the training split only.

`search_view(splits)` drops the test split (and the raw samples, which hold
it too), so that nothing in the search can read test labels. `make_folds`
cuts the training split with scikit-learn's `StratifiedKFold` (shuffled,
`random_state=seed`); `fold_splits` turns each cut into a `DatasetSplits`
whose validation arrays are that fold's held-out part. With `cv_folds=0`
there is one "fold": the existing train/validation split.
"""

import dataclasses

import numpy as np
from sklearn import model_selection

from tf_compress.errors import UserInputError

__all__ = ["check_cv_folds", "make_folds", "search_view", "fold_splits"]


def check_cv_folds(cv_folds, y_train):
  """Validates `--cv_folds` against the training labels.

  Args:
    cv_folds: 0 (one hold-out validation split) or K >= 2.
    y_train: the training split's labels.

  Raises:
    UserInputError: naming `--cv_folds` when it is 1 or negative, or larger
      than the smallest class count of the training split (StratifiedKFold
      needs one sample of every class per fold).
  """
  if isinstance(cv_folds, bool) or not isinstance(cv_folds, (int, np.integer)):
    raise UserInputError(f"--cv_folds must be an integer, got {cv_folds!r}")
  if cv_folds == 0:
    return
  if cv_folds < 2:
    raise UserInputError(
        f"--cv_folds must be 0 (hold-out validation split) or >= 2, got "
        f"{cv_folds}")
  counts = np.bincount(np.asarray(y_train, dtype=np.int64))
  present = counts[counts > 0]
  smallest = int(present.min()) if present.size else 0
  if cv_folds > smallest:
    klass = int(np.flatnonzero(counts == smallest)[0]) if smallest else 0
    raise UserInputError(
        f"--cv_folds={cv_folds} is larger than the smallest class count of "
        f"the training split ({smallest}, class {klass}); use at most "
        f"{smallest} folds")


def make_folds(y_train, cv_folds, seed):
  """Stratified K-fold index pairs over the training split.

  Args:
    y_train: the training labels.
    cv_folds: K >= 2.
    seed: `random_state` of the shuffled `StratifiedKFold`.

  Returns:
    A list of K `(train_indices, validation_indices)` int arrays.
  """
  check_cv_folds(cv_folds, y_train)
  y = np.asarray(y_train)
  splitter = model_selection.StratifiedKFold(
      n_splits=int(cv_folds), shuffle=True, random_state=int(seed))
  return [(np.asarray(tr), np.asarray(va))
          for tr, va in splitter.split(np.zeros(len(y)), y)]


def _empty_like(x):
  return np.zeros((0,) + tuple(np.shape(x)[1:]), dtype=np.asarray(x[:0]).dtype)


def search_view(splits, x_train=None, y_train=None, x_val=None, y_val=None):
  """A copy of `splits` without the test split and the raw samples.

  The test arrays are replaced by empty ones without being read, so a
  search handed this view cannot see a test label.

  Args:
    splits: a `DatasetSplits`.
    x_train, y_train, x_val, y_val: replacement train/validation arrays
      (a fold); None keeps the split's own.

  Returns:
    A `DatasetSplits` with empty `x_test`, `y_test`, `raw_x` and `raw_y`.
  """
  x_train = splits.x_train if x_train is None else x_train
  y_train = splits.y_train if y_train is None else y_train
  x_val = splits.x_val if x_val is None else x_val
  y_val = splits.y_val if y_val is None else y_val
  empty_x = _empty_like(x_train)
  empty_y = np.zeros((0,), dtype=np.int64)
  return dataclasses.replace(
      splits, x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val,
      x_test=empty_x, y_test=empty_y, raw_x=empty_x, raw_y=empty_y,
      image_sizes=None)


def fold_splits(splits, cv_folds, seed):
  """The search's folds as `DatasetSplits` views (test split removed).

  Args:
    splits: the full `DatasetSplits`.
    cv_folds: 0 for the existing train/validation split, else K >= 2.
    seed: the folds' shuffle seed.

  Returns:
    A list of `(fold_splits, validation_indices)`; the indices are into the
    training split (None for the hold-out split).

  Raises:
    UserInputError: for a bad `cv_folds`, or hold-out without a validation
      split.
  """
  check_cv_folds(cv_folds, splits.y_train)
  if cv_folds == 0:
    if splits.num_val == 0:
      raise UserInputError(
          "--cv_folds=0 uses the validation split, but --validation_fraction"
          " is 0; set --validation_fraction or --cv_folds >= 2")
    return [(search_view(splits), None)]
  folds = []
  for train_idx, val_idx in make_folds(splits.y_train, cv_folds, seed):
    folds.append((search_view(
        splits, x_train=splits.x_train[train_idx],
        y_train=splits.y_train[train_idx], x_val=splits.x_train[val_idx],
        y_val=splits.y_train[val_idx]), val_idx))
  return folds
