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

__all__ = ["keras3_converter", "keras3_input_shapes"]


def keras3_input_shapes(model):
  """The per-sample input shapes of a Keras 3 model.

  Raises:
    ModelError: the model has no symbolic inputs (a subclassed model): build
      a Functional wrapper, `keras.Model(inputs, model(inputs))`, to export.
  """
  inputs = getattr(model, "inputs", None)
  if not inputs:
    raise ModelError(
        f"Keras 3 model {model.name!r} has no symbolic inputs (a subclassed "
        "model), so its input signature is unknown; export "
        "keras.Model(inputs, model(inputs)) built on keras.Input(shape)")
  return [tuple(t.shape[1:]) for t in inputs]


def keras3_converter(model, workdir):
  """A `tf.lite.TFLiteConverter` for the inference function of `model`.

  The model is exported as a SavedModel (Keras' `tf_saved_model` format)
  into `workdir`, which freezes its variables into constants.
  """
  if keras.backend.backend() != "tensorflow":
    raise ModelError(
        f"TFLite export of Keras 3 models needs the TensorFlow backend, got "
        f"KERAS_BACKEND={keras.backend.backend()!r}")
  keras3_input_shapes(model)  # a clear error for subclassed models
  path = os.path.join(workdir, "saved_model")
  model.export(path, format="tf_saved_model", verbose=False)
  return tf.lite.TFLiteConverter.from_saved_model(path)
