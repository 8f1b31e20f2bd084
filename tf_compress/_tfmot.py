"""The one import of tensorflow-model-optimization (tfmot), on first use.

Importing tfmot turns on the legacy-Keras environment switch, and if
`tf.keras` has not been resolved yet, that flips the user's `tf.keras` to
Keras 2. `tfmot` here is a proxy that imports tfmot on first attribute
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

__all__ = ["tfmot", "import_tfmot", "tfmot_module", "tfmot_is_imported",
           "lazy", "is_tfmot_instance", "register_extension"]

_ENV = "TF_USE_LEGACY_KERAS"
_LOCK = threading.Lock()
# Our modules that subclass tfmot classes (and register them for
# deserialization): imported right after tfmot, so that a saved tf_keras
# model using them loads however tfmot came to be imported.
_PENDING = []


def register_extension(module_name):
  """Imports `module_name` as soon as tfmot is imported (now, if it is).

  Args:
    module_name: a module that subclasses tfmot classes, such as
      `tf_compress.pruning.tfmot_schedules`. Registering it imports
      nothing while tfmot is not imported.
  """
  _PENDING.append(module_name)
  if tfmot_is_imported():
    _load_extensions()


def _load_extensions():
  while _PENDING:
    importlib.import_module(_PENDING.pop(0))


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
    if not tfmot_is_imported():
      _import_keeping_env()
  _load_extensions()
  return sys.modules["tensorflow_model_optimization"]


def _import_keeping_env():
  """Imports tfmot; puts `TF_USE_LEGACY_KERAS` back as it was."""
  before = os.environ.get(_ENV)
  try:
    # Resolve the user's `tf.keras` first, under the user's environment;
    # TensorFlow caches it, so tfmot's setting cannot change it later.
    getattr(tf.keras, "Model", None)
  except Exception:  # pylint: disable=broad-except
    pass
  try:
    importlib.import_module("tensorflow_model_optimization")
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


def _resolve(path):
  """`tfmot.a.b` for "a.b"; `<module>.<attrs>` for "python.x.y:A.b"."""
  module, _, attrs = path.partition(":")
  if attrs:
    obj = tfmot_module(module)
  else:
    obj, attrs = import_tfmot(), module
  for part in attrs.split("."):
    obj = getattr(obj, part)
  return obj


class _Lazy:
  """Stands for a tfmot module or object (see `lazy`)."""

  def __init__(self, path):
    self._path = path

  def __getattr__(self, name):
    if name.startswith("__"):
      raise AttributeError(name)
    return getattr(_resolve(self._path), name)

  def __call__(self, *args, **kwargs):
    return _resolve(self._path)(*args, **kwargs)

  def resolve(self):
    """The object itself (imports tfmot)."""
    return _resolve(self._path)

  def __repr__(self):
    return f"<lazy tfmot {self._path}>"


def lazy(path):
  """A stand-in for a tfmot object that imports tfmot on first use.

  Args:
    path: `"sparsity.keras"` for `tfmot.sparsity.keras`, or
      `"python.core.sparsity.keras.pruning_wrapper:PruneLowMagnitude"` for
      an object of a module tfmot does not export.

  Returns:
    A proxy: attribute access and calls go to the object; `.resolve()`
    returns it (for `isinstance` or subclassing).
  """
  return _Lazy(path)


def is_tfmot_instance(obj, proxy):
  """`isinstance(obj, proxy.resolve())`, False while tfmot is not imported.

  No object can be an instance of a tfmot class before tfmot is imported,
  so asking about a Keras 3 model's layers never imports it.
  """
  return tfmot_is_imported() and isinstance(obj, proxy.resolve())
