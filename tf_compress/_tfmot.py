"""The one import of tensorflow-model-optimization (tfmot), on first use.

tfmot sets `os.environ["TF_USE_LEGACY_KERAS"] = "1"` when it is imported,
and if `tf.keras` has not been resolved yet, that flips the user's `tf.keras`
to Keras 2. `tfmot` here is a proxy that imports tfmot on first attribute
access, after resolving `tf.keras` as the user's environment says, and then
puts `TF_USE_LEGACY_KERAS` back as it was. So importing tf_compress, or
using the Keras 3 engine, never imports tfmot, and using the tfmot engine
leaves the process' Keras binding alone.
"""

import importlib
import os
import sys
import threading

import tensorflow as tf

__all__ = ["tfmot", "import_tfmot", "tfmot_module", "tfmot_is_imported"]

_ENV = "TF_USE_LEGACY_KERAS"
_LOCK = threading.Lock()


def tfmot_is_imported():
  """True once tensorflow_model_optimization is in `sys.modules`."""
  return "tensorflow_model_optimization" in sys.modules


def tfmot_module(name):
  """Imports `tensorflow_model_optimization.<name>` the same careful way."""
  import_tfmot()
  return importlib.import_module(f"tensorflow_model_optimization.{name}")


def import_tfmot():
  """Imports tfmot, leaving `tf.keras` and `os.environ` as they were.

  Returns:
    The `tensorflow_model_optimization` module.
  """
  with _LOCK:
    if tfmot_is_imported():
      return sys.modules["tensorflow_model_optimization"]
    before = os.environ.get(_ENV)
    try:
      # Resolve the user's `tf.keras` first, under the user's environment;
      # TensorFlow caches it, so tfmot's setting cannot change it later.
      getattr(tf.keras, "Model", None)
    except Exception:  # pylint: disable=broad-except
      pass
    try:
      return importlib.import_module("tensorflow_model_optimization")
    finally:
      if before is None:
        os.environ.pop(_ENV, None)
      else:
        os.environ[_ENV] = before


class _LazyTfmot:
  """Stands for the tfmot module; imports it on first attribute access."""

  def __getattr__(self, name):
    return getattr(import_tfmot(), name)

  def __repr__(self):
    state = "imported" if tfmot_is_imported() else "not imported yet"
    return f"<tensorflow_model_optimization, {state}>"


tfmot = _LazyTfmot()
