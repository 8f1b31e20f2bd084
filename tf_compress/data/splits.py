"""`load_dataset`: stratified train/validation/test splits, normalised.

Normalisation parameters are computed from the training split only and
applied to every split, so no information leaks from validation or test data.
"""

import dataclasses
import math
import numbers

import numpy as np
from sklearn import model_selection

from tf_compress._keras import tf
from tf_compress.data import statistics
from tf_compress.data import sources
from tf_compress.errors import DataError

__all__ = ["DatasetSplits", "load_dataset", "NORMALIZATIONS"]

NORMALIZATIONS = ("scale", "standardize", "none")


@dataclasses.dataclass(frozen=True, eq=False)
class DatasetSplits:
  """A dataset split into normalised train/validation/test arrays.

  Instances compare by identity (arrays have no single truth value).

  Attributes:
    name: dataset name.
    x_train: float32 normalised training inputs.
    y_train: int64 1-D training labels.
    x_val: validation inputs; shape (0, ...) when there is no validation set.
    y_val: validation labels.
    x_test: test inputs.
    y_test: test labels.
    num_classes: number of classes.
    class_names: one name per class index.
    input_shape: per-sample input shape, e.g. (8, 8, 1).
    value_range: (min, max) the normalised inputs can take; (0.0, 1.0) for
      "scale", else the training split's actual min/max after normalisation.
    normalization: JSON-safe dict: "mode" plus the parameters used.
    raw_x: all samples in original units and dtype (order not meaningful).
    raw_y: labels of `raw_x`.
    image_sizes: original (height, width) of each image for image folders,
      else None.
    source_kind: "sklearn", "derived" (digits32), "npz", "image_dir",
      "keras" or "tfds".
    seed: the seed the splits were made with; default shuffle seed.
  """
  name: str
  x_train: np.ndarray
  y_train: np.ndarray
  x_val: np.ndarray
  y_val: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int
  class_names: tuple
  input_shape: tuple
  value_range: tuple
  normalization: dict
  raw_x: np.ndarray
  raw_y: np.ndarray
  image_sizes: object
  source_kind: str
  seed: int = 0

  def __post_init__(self):
    for split, x, y in (("train", self.x_train, self.y_train),
                        ("validation", self.x_val, self.y_val),
                        ("test", self.x_test, self.y_test),
                        ("raw", self.raw_x, self.raw_y)):
      if len(x) != len(y):
        raise DataError(
            f"DatasetSplits: the {split} split has {len(x)} samples but "
            f"{len(y)} labels.")
      if np.ndim(y) != 1:
        raise DataError(
            f"DatasetSplits: {split} labels must be 1-D, got shape "
            f"{np.shape(y)}.")
    if self.num_classes < 2:
      raise DataError(
          f"DatasetSplits: num_classes must be >= 2, got {self.num_classes}.")

  @property
  def num_train(self):
    """Number of training samples."""
    return int(len(self.y_train))

  @property
  def num_val(self):
    """Number of validation samples (0 when there is no validation set)."""
    return int(len(self.y_val))

  @property
  def num_test(self):
    """Number of test samples."""
    return int(len(self.y_test))

  def _dataset(self, x, y, batch_size, shuffle=False, seed=None):
    if isinstance(batch_size, bool) or not isinstance(
        batch_size, numbers.Integral) or batch_size < 1:
      raise DataError(
          f"batch_size must be a positive int, got {batch_size!r}.")
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
      ds = ds.shuffle(max(len(y), 1), seed=seed,
                      reshuffle_each_iteration=True)
    return ds.batch(int(batch_size)).prefetch(tf.data.AUTOTUNE)

  def train(self, batch_size=32, shuffle=True, seed=None):
    """The training split as a `tf.data.Dataset` of (x, y) batches.

    Args:
      batch_size: samples per batch.
      shuffle: shuffle with a buffer of the whole split, in a new order on
        each pass (epoch).
      seed: shuffle seed; defaults to the seed the dataset was loaded with.

    Returns:
      A prefetched `tf.data.Dataset`.

    Raises:
      DataError: if batch_size is not a positive int.
    """
    seed = self.seed if seed is None else seed
    return self._dataset(self.x_train, self.y_train, batch_size, shuffle,
                         seed)

  def validation(self, batch_size=32):
    """The validation split (unshuffled; empty if there is none).

    Args:
      batch_size: samples per batch.

    Returns:
      A prefetched `tf.data.Dataset` of (x, y) batches.
    """
    return self._dataset(self.x_val, self.y_val, batch_size)

  def test(self, batch_size=32):
    """The test split (unshuffled).

    Args:
      batch_size: samples per batch.

    Returns:
      A prefetched `tf.data.Dataset` of (x, y) batches.
    """
    return self._dataset(self.x_test, self.y_test, batch_size)

  def analyze(self):
    """Returns `tf_compress.data.statistics.analyze_dataset(self)`."""
    return statistics.analyze_dataset(self)


def _check_fraction(name, value):
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or (
      not math.isfinite(value)) or not 0 <= value < 1:
    raise DataError(f"{name} must be a number in [0, 1), got {value!r}.")
  return float(value)


def _check_arguments(validation_fraction, test_fraction, normalization, seed):
  validation_fraction = _check_fraction("validation_fraction",
                                        validation_fraction)
  test_fraction = _check_fraction("test_fraction", test_fraction)
  if validation_fraction + test_fraction >= 1:
    raise DataError(
        f"validation_fraction + test_fraction must be < 1 to leave training "
        f"data, got {validation_fraction} + {test_fraction}.")
  if normalization not in NORMALIZATIONS:
    raise DataError(
        f"unknown normalization {normalization!r}: expected one of "
        f"{', '.join(NORMALIZATIONS)}.")
  if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or (
      not 0 <= seed < 2**32):
    raise DataError(f"seed must be an int in [0, 2**32), got {seed!r}.")
  return validation_fraction, test_fraction


def _stratified_split(x, y, n_take, seed, what, fraction_name, fraction):
  """Splits off `n_take` samples, stratified; returns (x, y, x_take, y_take)."""
  if n_take == 0:
    return x, y, x[:0], y[:0]
  counts = np.bincount(y)
  single = [int(c) for c in np.flatnonzero(counts == 1)]
  if single:
    raise DataError(
        f"class {single[0]} has only 1 sample; stratified splitting needs at "
        "least 2 samples of every class. Add samples or remove that class.")
  if n_take >= len(y):
    raise DataError(
        f"{fraction_name}={fraction} asks for {n_take} {what} samples but "
        f"only {len(y)} remain; lower it.")
  try:
    keep, take = model_selection.train_test_split(
        np.arange(len(y)), test_size=int(n_take), stratify=y,
        random_state=seed)
  except ValueError as e:
    raise DataError(
        f"cannot make a stratified {what} split of {n_take} samples out of "
        f"{len(y)} ({fraction_name}={fraction}) with "
        f"{np.count_nonzero(counts)} classes: {' '.join(str(e).split())}. "
        f"Change {fraction_name}.") from e
  return x[keep], y[keep], x[take], y[take]


def _normalize(mode, raw, x_train, others):
  """Fits the normalisation on x_train; returns (arrays, params, range)."""
  xs = [x_train] + list(others)
  if mode == "none":
    out = [x.astype(np.float32) for x in xs]
    params = {"mode": "none"}
  elif mode == "standardize":
    stats = statistics.streaming_channel_stats(x_train)
    mean = np.asarray(stats["mean"], np.float64)
    std = np.asarray(stats["std"], np.float64)
    std = np.where(std > 0, std, 1.0)
    axis_shape = (1,) * (x_train.ndim - 1) + (-1,)
    if x_train.ndim in (1, 3):
      axis_shape = (1,)
    m32 = mean.astype(np.float32).reshape(axis_shape)
    s32 = std.astype(np.float32).reshape(axis_shape)
    out = [(x.astype(np.float32) - m32) / s32 for x in xs]
    params = {"mode": "standardize", "mean": mean.tolist(),
              "std": std.tolist()}
  else:
    if raw.kind == "tabular":
      low = x_train.min(axis=0).astype(np.float64)
      high = x_train.max(axis=0).astype(np.float64)
      span = np.where(high - low > 0, high - low, 1.0)
      params = {"mode": "scale", "per": "feature", "offset": low.tolist(),
                "divisor": span.tolist(), "clip": [0.0, 1.0]}
    else:
      if raw.raw_range is not None:
        low, high = (float(v) for v in raw.raw_range)
      else:
        low, high = float(x_train.min()), float(x_train.max())
      span = high - low if high > low else 1.0
      params = {"mode": "scale", "per": "global", "offset": low,
                "divisor": span, "clip": [0.0, 1.0]}
    low32 = np.asarray(low, np.float32)
    span32 = np.asarray(span, np.float32)
    out = [np.clip((x.astype(np.float32) - low32) / span32, 0.0, 1.0)
           for x in xs]
    return out, params, (0.0, 1.0)
  value_range = (float(out[0].min()), float(out[0].max()))
  return out, params, value_range


def load_dataset(source, *, validation_fraction=0.1, test_fraction=0.2,
                 normalization="scale", image_size=None, seed=0):
  """Loads a dataset and returns stratified, normalised splits.

  Without a test split in the source, `test_fraction` of all samples is set
  aside first, then `validation_fraction` of all samples (i.e.
  round(validation_fraction * N)) from the rest. When the source has its own
  test split (npz, keras, tfds), that split is kept, `test_fraction` is
  ignored and validation is round(validation_fraction * N_train) samples of
  the training split. When the source also has its own validation split
  (digits32), all three splits are used as they are: `validation_fraction`
  and `test_fraction` are ignored.

  Normalisation, fitted on the training split and applied to all splits
  (float32 result):
    * "scale": images are mapped from their raw range (0..16 for digits,
      0..255 for digits32, uint8 and image folders, else the training
      min/max) to [0, 1]; tables get per-feature min-max scaling. Values are
      clipped to [0, 1] so that value_range is exactly (0.0, 1.0).
    * "standardize": per-channel (last axis) mean/std of the training split;
      a zero std is replaced by 1.
    * "none": only the cast to float32.

  Args:
    source: "digits", "iris", "wine", "breast_cancer", "digits32", "mnist",
      "fashion_mnist", "cifar10", "cifar100", "tfds:NAME", a path to an .npz
      file (keys x_train, y_train, x_test, y_test) or to an image directory
      (one subfolder per class).
    validation_fraction: in [0, 1); 0 gives empty validation arrays.
    test_fraction: in [0, 1); 0 only for sources with their own test split.
    normalization: "scale", "standardize" or "none".
    image_size: (height, width) for image directories; None uses the
      recommended size from the image size statistics.
    seed: random seed of the splits (and of digits32's build) and default
      shuffle seed.

  Returns:
    A `DatasetSplits`.

  Raises:
    DataError: for bad arguments, an unknown or unreadable source, a failed
      download, or data that cannot be split (e.g. a class with 1 sample).
  """
  validation_fraction, test_fraction = _check_arguments(
      validation_fraction, test_fraction, normalization, seed)
  raw = sources.load_raw(source, image_size=image_size, seed=seed)
  if raw.x_test is None:
    if test_fraction == 0:
      raise DataError(
          f"test_fraction=0 is only allowed for sources with their own test "
          f"split, and dataset '{raw.name}' has none; use a test_fraction "
          "such as 0.2.")
    n_all = len(raw.y_train)
    n_test = round(test_fraction * n_all)
    if n_test == 0:
      raise DataError(
          f"test_fraction={test_fraction} of {n_all} samples gives an empty "
          "test split; raise test_fraction.")
    x_rest, y_rest, x_test, y_test = _stratified_split(
        raw.x_train, raw.y_train, n_test, seed, "test", "test_fraction",
        test_fraction)
    n_val = round(validation_fraction * n_all)
  else:
    x_rest, y_rest = raw.x_train, raw.y_train
    x_test, y_test = raw.x_test, raw.y_test
    n_val = round(validation_fraction * len(y_rest))
  if raw.x_val is None:
    x_train, y_train, x_val, y_val = _stratified_split(
        x_rest, y_rest, n_val, seed, "validation", "validation_fraction",
        validation_fraction)
  else:
    x_train, y_train, x_val, y_val = x_rest, y_rest, raw.x_val, raw.y_val
  own = [(x, y) for x, y in ((raw.x_val, raw.y_val), (raw.x_test, raw.y_test))
         if x is not None]
  if own:
    raw_x = np.concatenate([raw.x_train] + [x for x, _ in own])
    raw_y = np.concatenate([raw.y_train] + [y for _, y in own])
  else:
    raw_x, raw_y = raw.x_train, raw.y_train

  (x_train, x_val, x_test), params, value_range = _normalize(
      normalization, raw, x_train, (x_val, x_test))
  num_classes = max(len(raw.class_names), int(raw_y.max()) + 1)
  if num_classes < 2:
    raise DataError(
        f"dataset '{raw.name}' has only one class; a classifier needs at "
        "least 2.")
  return DatasetSplits(
      name=raw.name, x_train=x_train, y_train=y_train, x_val=x_val,
      y_val=y_val, x_test=x_test, y_test=y_test, num_classes=num_classes,
      class_names=tuple(raw.class_names), input_shape=tuple(
          int(d) for d in x_train.shape[1:]), value_range=value_range,
      normalization=params, raw_x=raw_x, raw_y=raw_y,
      image_sizes=raw.image_sizes, source_kind=raw.source_kind,
      seed=int(seed))
