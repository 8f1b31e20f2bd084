"""The teacher's outputs: caching them, and checking their declared kind.

Without data augmentation the teacher sees the same inputs every epoch, so
its outputs can be computed in one pass and carried by the dataset:
`(x, {"labels": y, "teacher_outputs": t})`. `Distiller` recognises such
targets and does not run the teacher in training. With augmentation the
inputs change every epoch: do not cache then.

Whether cached or not, the Distiller checks the first batch's teacher
outputs against the `teacher_outputs` it was given (logits or
probabilities) before training, with `check_teacher_outputs`.
"""

import numbers

import keras as keras3
import numpy as np

from tf_compress._keras import check_model, is_keras3_object, keras, tf
from tf_compress.errors import UserInputError

__all__ = ["cache_teacher_logits", "check_teacher_outputs", "first_batch",
           "LABELS_KEY", "TEACHER_KEY"]

# A batch whose targets are `{LABELS_KEY: y, TEACHER_KEY: teacher(x)}` carries
# cached teacher outputs.
LABELS_KEY = "labels"
TEACHER_KEY = "teacher_outputs"
# Tolerance of the probabilities check on the first batch.
_PROB_ATOL = 1e-3


def _check_batch_size(batch_size):
  if (isinstance(batch_size, bool) or
      not isinstance(batch_size, numbers.Integral) or batch_size < 1):
    raise UserInputError(
        f"batch_size must be a positive integer, got {batch_size!r}")
  return int(batch_size)


def _arrays_from_dataset(dataset):
  xs, ys = [], []
  for element in dataset:
    if not isinstance(element, (tuple, list)) or len(element) != 2:
      parts = len(element) if isinstance(element, (tuple, list)) else 1
      raise UserInputError(
          "cache_teacher_logits needs a dataset of (x, y) batches, got "
          f"elements of {parts} part(s); drop sample weights first")
    xs.append(np.asarray(element[0]))
    ys.append(np.asarray(element[1]))
  if not xs:
    raise UserInputError("cache_teacher_logits got an empty dataset")
  if xs[0].ndim == 0:
    raise UserInputError("cache_teacher_logits needs a batched dataset")
  return np.concatenate(xs), np.concatenate(ys)


def _teacher_runner(teacher):
  """`fn(x) -> numpy outputs` of `teacher` in inference mode, either Keras."""
  if is_keras3_object(teacher):
    if not isinstance(teacher, keras3.Model):
      raise TypeError(
          f"`teacher` must be a Keras model, got {type(teacher).__name__}")
    return lambda x: keras3.ops.convert_to_numpy(teacher(x, training=False))
  check_model(teacher, "teacher")
  return lambda x: np.asarray(teacher(x, training=False))


def cache_teacher_logits(teacher, x, y=None, batch_size=32, shuffle=True,
                         seed=0):
  """Runs `teacher` once over the data; returns a dataset carrying its outputs.

  Args:
    teacher: the teacher model, tf_keras or Keras 3 (run with
      `training=False`).
    x: input array, or a batched `tf.data.Dataset` of `(x, y)` (read once,
      in its first-pass order, and held in memory).
    y: labels when `x` is an array; None with a dataset.
    batch_size: batch size of the teacher's pass and of the returned
      dataset.
    shuffle: shuffle the returned dataset, in a new order each epoch.
    seed: shuffle seed.

  Returns:
    A `tf.data.Dataset` of `(x, {"labels": y, "teacher_outputs": t})`
    batches, for `Distiller.fit` (the teacher's raw outputs: logits, or
    probabilities for a softmax teacher, as `teacher_outputs` declares).

  Raises:
    TypeError: `teacher` is not a Keras model.
    UserInputError: bad data, labels or batch size.
  """
  run = _teacher_runner(teacher)
  batch_size = _check_batch_size(batch_size)
  if isinstance(x, tf.data.Dataset):
    if y is not None:
      raise UserInputError(
          "cache_teacher_logits: give y only with array inputs; the dataset "
          "already holds the labels")
    x, y = _arrays_from_dataset(x)
  else:
    if y is None:
      raise UserInputError(
          "cache_teacher_logits: y (the labels) is needed with array inputs")
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y) or len(x) == 0:
      raise UserInputError(
          f"cache_teacher_logits: x has {len(x)} samples and y {len(y)}; "
          "they must match and not be empty")
  outputs = np.concatenate([
      run(x[start:start + batch_size])
      for start in range(0, len(x), batch_size)])
  dataset = tf.data.Dataset.from_tensor_slices(
      (x, {LABELS_KEY: y, TEACHER_KEY: outputs}))
  if shuffle:
    dataset = dataset.shuffle(len(x), seed=seed,
                              reshuffle_each_iteration=True)
  return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def first_batch(x, y=None, batch_size=None):
  """The first `(x, y)` batch `fit` would see, or None when it can't peek."""
  if isinstance(x, tf.data.Dataset):
    for element in x.take(1):
      first_x, first_y, _ = keras.utils.unpack_x_y_sample_weight(element)
      return first_x, first_y
    return None
  if isinstance(x, (np.ndarray, tf.Tensor)):
    n = batch_size or 32
    take = lambda v: tf.nest.map_structure(lambda a: a[:n], v)
    return x[:n], (take(y) if y is not None else None)
  return None  # generators and Sequences: no peeking without consuming


def check_teacher_outputs(outputs, declared):
  """Checks a batch of teacher outputs against their declared kind.

  Args:
    outputs: `[batch, classes]` array of teacher outputs.
    declared: `"logits"` or `"probabilities"`.

  Raises:
    UserInputError: probabilities (in [0, 1], rows summing to 1) declared
      as logits, or anything else declared as probabilities.
  """
  outputs = outputs.reshape(len(outputs), -1).astype(np.float64)
  sums = outputs.sum(axis=-1)
  looks_like_probabilities = bool(
      outputs.min() >= -_PROB_ATOL and outputs.max() <= 1 + _PROB_ATOL and
      np.allclose(sums, 1.0, atol=_PROB_ATOL))
  if declared == "probabilities" and not looks_like_probabilities:
    raise UserInputError(
        "teacher_outputs='probabilities', but the teacher's outputs on the "
        f"first batch are not probabilities (values in [{outputs.min():.3g}, "
        f"{outputs.max():.3g}], row sums in [{sums.min():.3g}, "
        f"{sums.max():.3g}]); pass teacher_outputs='logits'")
  if declared == "logits" and looks_like_probabilities:
    raise UserInputError(
        "teacher_outputs='logits', but the teacher's outputs on the first "
        "batch are probabilities (in [0, 1], every row summing to 1): it "
        "ends in a softmax; pass teacher_outputs='probabilities'")
