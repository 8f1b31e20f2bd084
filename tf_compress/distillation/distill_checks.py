"""The Distiller's arguments, checked the same way for both Keras engines.

Plain Python on numbers, names and shapes: no model is built here, so the
tf_keras `Distiller` and the Keras 3 `Keras3Distiller` share every check and
every message.
"""

import numbers

import numpy as np

from tf_compress.errors import UserInputError

__all__ = ["TEACHER_OUTPUTS", "PROB_FLOOR", "CACHE_WITH_FEATURES",
           "Untracked", "is_number", "check_temperature", "check_alpha",
           "check_teacher_outputs_kind", "check_feature_weight",
           "check_pairs", "check_shapes", "check_projection_shapes"]

TEACHER_OUTPUTS = ("logits", "probabilities")
# Floor of probabilities before the log: keeps log(0) finite.
PROB_FLOOR = 1e-12
CACHE_WITH_FEATURES = (
    "cached teacher outputs hold no features: feature_pairs needs the "
    "teacher to run, so train on (x, y) without the cache")


class Untracked:
  """Holds a Keras object without Keras tracking it as a sub-layer."""

  def __init__(self, value):
    self.value = value


def is_number(value):
  """True for a real number that is not a bool."""
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_temperature(value, where="temperature"):
  """Returns `value` as a float; raises `UserInputError` unless > 0."""
  if not is_number(value) or not np.isfinite(value) or value <= 0:
    raise UserInputError(
        f"{where} must be a number > 0, got {value!r}; typical values are "
        "1 to 10")
  return float(value)


def check_alpha(value, where="alpha"):
  """Returns `value` as a float; raises `UserInputError` unless in [0, 1]."""
  if not is_number(value) or not 0.0 <= value <= 1.0:
    raise UserInputError(
        f"{where} must be in [0, 1] (the weight of the hard loss on labels), "
        f"got {value!r}")
  return float(value)


def check_teacher_outputs_kind(teacher_outputs):
  """Returns `teacher_outputs`; raises unless one of `TEACHER_OUTPUTS`."""
  if teacher_outputs not in TEACHER_OUTPUTS:
    raise UserInputError(
        f"teacher_outputs must be one of {TEACHER_OUTPUTS}, got "
        f"{teacher_outputs!r}")
  return teacher_outputs


def check_feature_weight(feature_weight):
  """Returns `feature_weight` as a float; raises unless a number >= 0."""
  if not is_number(feature_weight) or feature_weight < 0:
    raise UserInputError(
        f"feature_weight must be a number >= 0, got {feature_weight!r}")
  return float(feature_weight)


def check_shapes(teacher_shape, student_shape):
  """Raises `UserInputError` unless the per-sample output shapes match."""
  if tuple(teacher_shape) != tuple(student_shape):
    raise UserInputError(
        f"the teacher's output shape {tuple(teacher_shape)} differs from "
        f"the student's {tuple(student_shape)} (per sample); both must "
        "output one score per class of the same task")


def check_pairs(feature_pairs):
  """`feature_pairs` as a tuple of `(teacher_layer, student_layer)` names."""
  if feature_pairs is None:
    return ()
  pairs = []
  for pair in feature_pairs:
    if (not isinstance(pair, (list, tuple)) or len(pair) != 2 or
        not all(isinstance(n, str) and n for n in pair)):
      raise UserInputError(
          "feature_pairs must be (teacher_layer, student_layer) name pairs, "
          f"got {pair!r} in {feature_pairs!r}")
    pairs.append((pair[0], pair[1]))
  return tuple(pairs)


def check_projection_shapes(index, student_shape, teacher_shape):
  """True when pair `index` needs a projection; raises if none can map it.

  Only the channel (last) axis may differ between the student's feature and
  the teacher's.
  """
  if student_shape == teacher_shape:
    return False
  if (len(student_shape) != len(teacher_shape) or
      student_shape[:-1] != teacher_shape[:-1]):
    raise UserInputError(
        f"feature_pairs[{index}]: the student feature of shape "
        f"{student_shape} cannot be projected onto the teacher's "
        f"{teacher_shape}; only the channel (last) axis may differ. Pair "
        "layers of equal spatial size")
  return True
