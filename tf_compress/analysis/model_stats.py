"""Size statistics of a Keras model: parameters, non-zeros and bytes."""

import os
import tempfile

import numpy as np

from tf_compress._keras import check_model

__all__ = ["count_params", "count_nonzero_params", "model_stats",
           "keras_file_bytes"]


def count_params(model):
  """Total number of weight values (trainable and not) in `model`."""
  check_model(model)
  return int(sum(int(np.prod(w.shape)) for w in model.weights))


def count_nonzero_params(model):
  """Number of weight values that are not exactly zero."""
  check_model(model)
  return int(sum(int(np.count_nonzero(w)) for w in model.get_weights()))


def keras_file_bytes(model):
  """Size in bytes of `model` saved in the `.keras` format."""
  check_model(model)
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "model.keras")
    model.save(path)
    return os.path.getsize(path)


def model_stats(model, saved_path=None):
  """Returns `params`, `nonzero_params` and `keras_bytes` of `model`.

  Args:
    model: a tf_keras model.
    saved_path: the model's already-saved `.keras` file, whose size is used
      instead of saving it again.
  """
  check_model(model)
  size = (os.path.getsize(saved_path) if saved_path
          else keras_file_bytes(model))
  return {
      "params": count_params(model),
      "nonzero_params": count_nonzero_params(model),
      "keras_bytes": int(size),
  }
