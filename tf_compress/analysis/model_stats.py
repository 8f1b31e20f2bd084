"""Size statistics of a Keras model: parameters, non-zeros and bytes.

Keras 3 and tf_keras models are both counted. A Keras 3 model being pruned
counts its layers' weights, not the pruning masks, and a pruned kernel's
non-zeros are those of `kernel * mask` (see `keras3_weights`).
"""

import os
import tempfile

import numpy as np

from tf_compress._keras import is_keras3_object
from tf_compress.analysis.keras3_weights import pruning_masks
from tf_compress.analysis.keras3_weights import weight_values
from tf_compress.models.graph import check_any_model

__all__ = ["count_params", "count_nonzero_params", "model_stats",
           "keras_file_bytes"]


def _keras3_weights(model):
  return weight_values(model, pruning_masks(model))


def count_params(model):
  """Total number of weight values (trainable and not) in `model`.

  Args:
    model: a Keras 3 or tf_keras model.

  Returns:
    An int.

  Raises:
    TypeError: for an object that is not a Keras model.
  """
  check_any_model(model)
  if is_keras3_object(model):
    return int(sum(value.size for _, value in _keras3_weights(model)))
  return int(sum(int(np.prod(w.shape)) for w in model.weights))


def count_nonzero_params(model):
  """Number of weight values that are not exactly zero.

  Args:
    model: a Keras 3 or tf_keras model.

  Returns:
    An int.

  Raises:
    TypeError: for an object that is not a Keras model.
  """
  check_any_model(model)
  if is_keras3_object(model):
    return int(sum(np.count_nonzero(value)
                   for _, value in _keras3_weights(model)))
  return int(sum(int(np.count_nonzero(w)) for w in model.get_weights()))


def keras_file_bytes(model):
  """Size in bytes of `model` saved in the `.keras` format.

  Args:
    model: a Keras 3 or tf_keras model, saved by its own Keras.

  Returns:
    An int.

  Raises:
    TypeError: for an object that is not a Keras model.
  """
  check_any_model(model)
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "model.keras")
    model.save(path)
    return os.path.getsize(path)


def model_stats(model, saved_path=None):
  """Returns `params`, `nonzero_params` and `keras_bytes` of `model`.

  Args:
    model: a Keras 3 or tf_keras model.
    saved_path: the model's already-saved `.keras` file, whose size is used
      instead of saving it again.

  Returns:
    A dict of ints.

  Raises:
    TypeError: for an object that is not a Keras model.
  """
  check_any_model(model)
  size = (os.path.getsize(saved_path) if saved_path
          else keras_file_bytes(model))
  return {
      "params": count_params(model),
      "nonzero_params": count_nonzero_params(model),
      "keras_bytes": int(size),
  }
