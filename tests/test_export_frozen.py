"""The frozen-function converter path (`tf_compress.export.frozen`).

Its files must be what the SavedModel path writes, less the time: the same
`serving_default` signature and input/output tensor names, and the same
LiteRT outputs. Models it does not handle (several outputs) go the
SavedModel way and still convert.
"""

import keras
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

import tf_compress
from tf_compress import export
from tf_compress import keras as tf_keras
from tf_compress._keras import tf
from tf_compress.export import frozen
from tf_compress.export import keras3_convert

_X = np.random.RandomState(0).rand(5, 6).astype("float32")


def _keras3_model():
  inputs = keras.Input((6,), name="pixels")
  hidden = keras.layers.Dense(4, activation="relu", name="fc0")(inputs)
  return keras.Model(inputs, keras.layers.Dense(3, name="fc1")(hidden))


def _tf_keras_model():
  inputs = tf_keras.Input((6,), name="pixels")
  hidden = tf_keras.layers.Dense(4, activation="relu", name="fc0")(inputs)
  return tf_keras.Model(inputs, tf_keras.layers.Dense(3, name="fc1")(hidden))


def _saved_model_path(model, keras3, tmp_path):
  """What the converter wrote before the frozen path, for comparison."""
  if keras3:
    converter = keras3_convert.keras3_converter(model, str(tmp_path))
  else:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
  return converter.convert()


def _describe(data):
  interpreter = Interpreter(model_content=data)
  return (interpreter.get_signature_list(),
          [d["name"] for d in interpreter.get_input_details()],
          [d["name"] for d in interpreter.get_output_details()])


def _signature_outputs(data, x):
  runner = Interpreter(model_content=data).get_signature_runner(
      "serving_default")
  (key,) = runner.get_input_details()
  return list(runner(**{key: x}).values())[0]


@pytest.mark.parametrize("keras3", [True, False], ids=["keras3", "tf_keras"])
def test_frozen_file_has_the_saved_model_signature_and_outputs(keras3,
                                                                tmp_path):
  model = _keras3_model() if keras3 else _tf_keras_model()
  assert frozen.frozen_source(model, keras3) is not None
  data = export.convert_to_tflite(model, "float32")
  expected = _saved_model_path(model, keras3, tmp_path)
  assert _describe(data) == _describe(expected)
  signature, inputs, outputs = _describe(data)
  assert signature == {"serving_default": {
      "inputs": ["pixels"], "outputs": ["output_0" if keras3 else "fc1"]}}
  assert inputs == ["serving_default_pixels:0"]
  assert outputs == ["StatefulPartitionedCall:0"]
  want = np.asarray(model(_X, training=False))
  np.testing.assert_allclose(_signature_outputs(data, _X), want, atol=1e-5)
  np.testing.assert_allclose(_signature_outputs(expected, _X), want,
                             atol=1e-5)


def test_frozen_int8_file_holds_int8_kernels_and_agrees(digits):
  model = tf_compress.build_model("mlp", (8, 8, 1), 10, width=0.25, seed=0)
  assert frozen.frozen_source(model, True) is not None
  data = export.convert_to_tflite(
      model, "int8", representative_data=digits.x_train[:64])
  assert export.inspect_tflite(data)["kernel_dtypes"] == {"int8": 3}
  result = export.verify_tflite(data, digits.x_test[:64], keras_model=model,
                                isolate=False)
  assert result["agreement"] >= 0.95


def test_several_outputs_take_the_saved_model_path():
  inputs = keras.Input((6,), name="pixels")
  hidden = keras.layers.Dense(4, name="fc0")(inputs)
  model = keras.Model(inputs, [hidden, keras.layers.Dense(3)(hidden)])
  assert frozen.frozen_source(model, True) is None
  data = export.convert_to_tflite(model, "float32")
  assert len(_describe(data)[2]) == 2


def test_add_signature_leaves_a_signed_file_alone():
  model = _keras3_model()
  data = export.convert_to_tflite(model, "float32")
  assert frozen.add_signature(data, "other", "other") == data
