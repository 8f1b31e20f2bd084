"""The TFLite converter for Keras 3 models (TensorFlow backend).

A Keras 3 model is exported as a SavedModel with Keras' own exporter (its
inference call, with the input signature of its `inputs`) and converted with
`TFLiteConverter.from_saved_model`; `convert.convert_to_tflite` configures
the converter for each mode exactly as for tf_keras models.
Pruned Keras 3 models need no stripping: the native engine keeps their
kernels masked (exact zeros) after every step, and the mask constraint is
not part of the inference graph.
"""

import os

import keras

from tf_compress._keras import tf
from tf_compress.errors import ModelError

__all__ = ["keras3_converter", "keras3_input_shapes", "is_keras3_qat"]

# The attribute the Keras 3 QAT engine sets on each layer it instruments
# (`tf_compress.quantization.keras3_qat.QAT_STATE_ATTRIBUTE`).
QAT_STATE_ATTRIBUTE = "_tf_compress_qat"


def _built_input_shape(model):
  """The single input shape a subclassed model was built with, or None."""
  shapes = getattr(model, "_build_shapes_dict", None)
  if not shapes or len(shapes) != 1:
    return None
  shape = list(shapes.values())[0]
  if not isinstance(shape, (tuple, list)) or not shape or any(
      isinstance(d, (tuple, list)) for d in shape):
    return None
  return tuple(shape)


def keras3_input_shapes(model):
  """The per-sample input shapes of a Keras 3 model.

  A Functional or Sequential model gives those of its `inputs`; a
  subclassed model, the one it was built with (by a call on data, or
  `build(input_shape)`).

  Raises:
    ModelError: a subclassed model that was never built, or was built with
      several inputs.
  """
  inputs = getattr(model, "inputs", None)
  if inputs:
    return [tuple(t.shape[1:]) for t in inputs]
  shape = _built_input_shape(model)
  if shape is None:
    raise ModelError(
        f"Keras 3 model {model.name!r} has no symbolic inputs (a subclassed "
        "model) and was not built with one input shape, so its input "
        "signature is unknown; call it on a batch (or build(input_shape)) "
        "first, or export keras.Model(inputs, model(inputs)) built on "
        "keras.Input(shape)")
  return [shape[1:]]


def is_keras3_qat(model):
  """True when a layer of `model` was made quantization-aware (Keras 3)."""
  # pylint: disable-next=protected-access
  return any(hasattr(layer, QAT_STATE_ATTRIBUTE)
             for layer in model._flatten_layers(include_self=False))


def keras3_converter(model, workdir):
  """A `tf.lite.TFLiteConverter` for the inference function of `model`.

  The model is exported as a SavedModel (Keras' `tf_saved_model` format)
  into `workdir`, which freezes its variables into constants. A subclassed
  model is exported with the input shape it was built with.
  """
  if keras.backend.backend() != "tensorflow":
    raise ModelError(
        f"TFLite export of Keras 3 models needs the TensorFlow backend, got "
        f"KERAS_BACKEND={keras.backend.backend()!r}")
  shapes = keras3_input_shapes(model)
  path = os.path.join(workdir, "saved_model")
  kwargs = {}
  if not getattr(model, "inputs", None):
    kwargs["input_signature"] = [
        tf.TensorSpec((None,) + tuple(shapes[0]), model.compute_dtype)]
  model.export(path, format="tf_saved_model", verbose=False, **kwargs)
  return tf.lite.TFLiteConverter.from_saved_model(path)
