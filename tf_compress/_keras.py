"""The one place that picks the Keras implementation used by tf_compress.

tensorflow-model-optimization 0.8 works only with Keras 2, shipped as the
`tf_keras` package, while TensorFlow 2.16+ makes `tf.keras` resolve to Keras 3.
This module sets `TF_USE_LEGACY_KERAS=1` before TensorFlow is imported so that
`tf.keras` *is* `tf_keras`, and exposes that module as `tf_compress.keras`.

Every other module imports Keras from here::

    from tf_compress._keras import keras, tf
"""

import os
import sys
import warnings

_LEGACY_VALUES = ("1", "true", "yes", "True", "TRUE")

_TF_WAS_IMPORTED = "tensorflow" in sys.modules
_ENV_BEFORE = os.environ.get("TF_USE_LEGACY_KERAS")
if not _TF_WAS_IMPORTED:
  os.environ["TF_USE_LEGACY_KERAS"] = "1"
# Quiet TensorFlow's C++ start-up chatter unless the user asked for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # pylint: disable=g-import-not-at-top
import tf_keras as keras  # pylint: disable=g-import-not-at-top

KERAS3_ADVICE = (
    "tf_compress needs Keras 2 (the tf_keras package) because "
    "tensorflow-model-optimization supports only Keras 2. Build the model "
    "with `from tf_compress import keras` (or `import tf_keras as keras`), or "
    "set the environment variable TF_USE_LEGACY_KERAS=1 before TensorFlow is "
    "first imported so that `tf.keras` is Keras 2.")


def tf_keras_is_default():
  """Returns True when `tf.keras` in this process resolves to tf_keras."""
  try:
    return tf.keras.Model is keras.Model
  except Exception:  # pylint: disable=broad-except
    return False


if _TF_WAS_IMPORTED and _ENV_BEFORE not in _LEGACY_VALUES:
  if not tf_keras_is_default():
    warnings.warn(
        "TensorFlow was imported before tf_compress without "
        "TF_USE_LEGACY_KERAS=1, so `tf.keras` in this process is Keras 3. "
        "tf_compress still works, but models built with `tf.keras` or "
        "`import keras` will be rejected. " + KERAS3_ADVICE,
        RuntimeWarning,
        stacklevel=2)

PACKAGE = "tf_compress"


def register(obj):
  """Registers a Keras object for serialization under the `tf_compress` name.

  Args:
    obj: a class or function (a layer, schedule, callback or model subclass).

  Returns:
    `obj`, so that this can be used as a decorator.
  """
  return keras.utils.register_keras_serializable(package=PACKAGE)(obj)


def is_keras3_object(obj):
  """True for an object of Keras 3 (`import keras`), not tf_keras."""
  module = type(obj).__module__ or ""
  if module.startswith("keras.") or module == "keras":
    return True
  for base in type(obj).__mro__:
    if (base.__module__ or "").startswith("keras.src"):
      return True
  return False


def check_model(model, argument="model"):
  """Raises `TypeError` unless `model` is a tf_keras (Keras 2) model.

  Args:
    model: the object handed to a public function.
    argument: the name of that function's argument, for the message.

  Returns:
    `model`, unchanged.

  Raises:
    TypeError: for a Keras 3 model, or an object that is not a Keras model.
  """
  if isinstance(model, keras.Model):
    return model
  if is_keras3_object(model):
    raise TypeError(
        f"`{argument}` is a Keras 3 model ({type(model).__module__}."
        f"{type(model).__name__}), but {KERAS3_ADVICE} An existing Keras 3 "
        "model can be rebuilt in tf_keras from the same code, then its "
        "weights copied with `set_weights(keras3_model.get_weights())`.")
  raise TypeError(
      f"`{argument}` must be a tf_keras Model, got {type(model).__name__}.")


def check_layer(layer, argument="layer"):
  """Raises `TypeError` unless `layer` is a tf_keras layer."""
  if isinstance(layer, keras.layers.Layer):
    return layer
  if is_keras3_object(layer):
    raise TypeError(
        f"`{argument}` is a Keras 3 layer ({type(layer).__name__}), but "
        f"{KERAS3_ADVICE}")
  raise TypeError(
      f"`{argument}` must be a tf_keras Layer, got {type(layer).__name__}.")


__all__ = ["keras", "tf", "register", "check_model", "check_layer",
           "is_keras3_object",
           "tf_keras_is_default", "KERAS3_ADVICE"]
