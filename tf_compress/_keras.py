"""The Keras 2 binding of the tfmot engine, without touching `tf.keras`.

tf_compress has two engines. Keras 3 models (`import keras`, and `tf.keras`
by default on TensorFlow 2.16+) get the native engine. tf_keras (Keras 2)
models get tensorflow-model-optimization (tfmot), which supports only Keras
2. This module exposes the `tf_keras` package as `tf_compress.keras` for the
tfmot engine's modules, which import it from here::

    from tf_compress._keras import keras, tf

It imports `tf_keras` directly and sets nothing global: `TF_USE_LEGACY_KERAS`
is left as the user set it (or unset), so `tf.keras` in the user's program
means what it meant before `import tf_compress`.
"""

import os
import sys


def _running_our_command():
  """True in `python -m tf_compress.<command>`: the process is ours."""
  argv = list(getattr(sys, "orig_argv", ()))
  return any(flag == "-m" and module.startswith("tf_compress")
             for flag, module in zip(argv, argv[1:]))


if _running_our_command() and "tensorflow" not in sys.modules:
  # Quiet TensorFlow's C++ start-up chatter in our own commands only; a
  # library import leaves the user's environment alone.
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position
import tf_keras as keras  # pylint: disable=g-import-not-at-top,wrong-import-position

KERAS3_ADVICE = (
    "this part of tf_compress still runs on the tfmot engine, which needs a "
    "Keras 2 (tf_keras) model: build the model with `from tf_compress import "
    "keras` (or `import tf_keras as keras`). The Keras 3 engine covers "
    "pruning, quantization-aware training, export and model statistics.")


def tf_keras_is_default():
  """Returns True when `tf.keras` in this process resolves to tf_keras."""
  try:
    return tf.keras.Model is keras.Model
  except Exception:  # pylint: disable=broad-except
    return False


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


KERAS_VERSIONS = (2, 3)


def keras_module(version):
  """The Keras package of a major version: 3 is `keras`, 2 is tf_keras.

  Args:
    version: 2 (tf_keras, the tfmot engine) or 3 (Keras 3, the native one).

  Returns:
    The imported module.

  Raises:
    ValueError: for another version.
  """
  if version == 3:
    import keras as keras3  # pylint: disable=g-import-not-at-top
    return keras3
  if version == 2:
    return keras
  raise ValueError(f"Keras version must be 2 (tf_keras) or 3, got "
                   f"{version!r}")


def keras_version_of(obj):
  """3 for a Keras 3 object (model, layer, callback), else 2 (tf_keras)."""
  return 3 if is_keras3_object(obj) else 2


def clear_sessions():
  """Resets the global state (layer names, graphs) of Keras 3 and tf_keras."""
  keras.backend.clear_session()
  keras_module(3).utils.clear_session()


def engine_name(model):
  """The compression engine of `model`: "keras3" (native) or "tfmot"."""
  return "keras3" if is_keras3_object(model) else "tfmot"


def keras_of(obj):
  """The Keras package `obj` belongs to: `keras` (3) or tf_keras (2)."""
  return keras_module(keras_version_of(obj))


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
           "is_keras3_object", "keras_module", "keras_of", "engine_name",
           "clear_sessions",
           "keras_version_of", "KERAS_VERSIONS",
           "tf_keras_is_default", "KERAS3_ADVICE"]
