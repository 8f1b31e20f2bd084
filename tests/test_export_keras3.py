"""TFLite export of Keras 3 models, pruned by the native engine or not."""

import keras
import numpy as np
from ai_edge_litert.interpreter import Interpreter
import pytest

import tf_compress
from tf_compress import export
from tf_compress import pruning


def _cnn(input_shape, classes):
  keras.utils.set_random_seed(0)
  inputs = keras.Input(input_shape)
  x = keras.layers.Conv2D(16, 3, padding="same", activation="relu",
                          name="conv1")(inputs)
  x = keras.layers.Conv2D(32, 3, activation="relu", name="conv2")(x)
  x = keras.layers.MaxPooling2D(2)(x)
  x = keras.layers.Flatten()(x)
  x = keras.layers.Dense(64, activation="relu", name="fc1")(x)
  outputs = keras.layers.Dense(classes, name="logits")(x)
  return keras.Model(inputs, outputs)


def _compile(model):
  model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
      from_logits=True), metrics=["accuracy"])
  return model


@pytest.fixture(scope="module")
def trained(digits):
  dense = _compile(_cnn(digits.input_shape, digits.num_classes))
  dense.fit(digits.x_train, digits.y_train, batch_size=32, epochs=3,
            verbose=0)
  steps = int(np.ceil(digits.num_train / 32))
  pruned = _compile(pruning.prune_model(dense, pruning.PruningConfig(
      target_sparsity=0.8, schedule="polynomial", end_epoch=2, frequency=5),
      steps_per_epoch=steps))
  pruned.fit(digits.x_train, digits.y_train, batch_size=32, epochs=3,
             verbose=0, callbacks=[pruning.PruningCallback()])
  return dense, pruned


@pytest.mark.parametrize("mode", export.EXPORT_MODES)
def test_every_mode_exports_and_verifies(trained, digits, tmp_path, mode):
  dense, _ = trained
  path = tmp_path / f"dense_{mode}.tflite"
  info = export.export_tflite(dense, path, mode,
                              representative_data=digits.x_train[:200])
  assert path.stat().st_size == info["bytes"]
  assert set(info["ops"]) <= {"CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D",
                              "RESHAPE", "SHAPE", "STRIDED_SLICE", "PACK",
                              "QUANTIZE", "DEQUANTIZE"}, info["ops"]
  kernels = {"float32": "float32", "dynamic": "int8", "float16": "float16",
             "int8": "int8", "int16x8": "int8"}[mode]
  # Dynamic range leaves kernels under 1,024 weights (conv1) in float.
  expected = 2 if mode == "dynamic" else 4
  assert info["kernel_dtypes"].get(kernels, 0) >= expected, (
      info["kernel_dtypes"])
  check = export.verify_tflite(str(path), digits.x_test, digits.y_test,
                               keras_model=dense, isolate=False)
  if mode == "float32":
    assert check["agreement"] == 1.0 and check["max_abs_diff"] < 1e-4
  else:
    assert check["agreement"] >= 0.97, check["agreement"]


def test_pruned_int8_file_keeps_the_zeros(trained, digits, tmp_path):
  dense, pruned = trained
  files = {}
  for name, model in (("dense", dense), ("pruned", pruned)):
    files[name] = export.export_tflite(
        model, tmp_path / f"{name}.tflite", "int8",
        representative_data=digits.x_train[:200])
  assert files["pruned"]["kernel_dtypes"] == {"int8": 4}
  assert files["pruned"]["kernel_nonzero_fraction"] == pytest.approx(
      0.2, abs=0.02)
  # The zeros make the int8 file compress: under half the dense one.
  assert files["pruned"]["gzip_bytes"] < 0.5 * files["dense"]["gzip_bytes"]
  check = export.verify_tflite(str(tmp_path / "pruned.tflite"),
                               digits.x_test, digits.y_test,
                               keras_model=pruned, isolate=False)
  assert check["agreement"] >= 0.97
  # The model is unchanged by export: still being pruned, same weights.
  assert pruning.find_pruner(pruned) is not None


class TinyNet(keras.Model):

  def __init__(self):
    super().__init__()
    self.dense = keras.layers.Dense(3)

  def call(self, x):
    return self.dense(x)


def test_built_subclassed_model_exports_with_its_build_shape(tmp_path):
  net = TinyNet()
  x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
  expected = net(x).numpy()
  info = export.export_tflite(net, tmp_path / "net.tflite", "float32")
  assert info["input_details"][0]["shape_signature"] == [-1, 4]
  report = export.verify_tflite(tmp_path / "net.tflite", x,
                                keras_model=net)
  assert report["max_abs_diff"] < 1e-5, report
  assert np.allclose(expected, net(x).numpy())


def test_unbuilt_subclassed_model_gets_a_clear_error(tmp_path):
  with pytest.raises(tf_compress.ModelError, match="no symbolic inputs"):
    export.export_tflite(TinyNet(), tmp_path / "net.tflite", "float32")
  assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("structure", ["tensor", "list", "dict", "two"])
def test_input_structures_export_and_agree(tmp_path, structure):
  # One input (a tensor, or a list of one) is saved as one function; a dict
  # or several inputs go through Keras' export. Each file is LiteRT's
  # equal of the Keras model.
  keras.utils.set_random_seed(0)
  first = keras.Input((4,), name="first")
  second = keras.Input((3,), name="second")
  x = (keras.layers.Concatenate()([first, second]) if structure == "two"
       else first)
  outputs = keras.layers.Dense(3, name="out")(x)
  model = keras.Model({"tensor": first, "list": [first],
                       "dict": {"first": first},
                       "two": [first, second]}[structure], outputs)
  rng = np.random.default_rng(1)
  a = rng.normal(size=(6, 4)).astype("float32")
  b = rng.normal(size=(6, 3)).astype("float32")
  info = export.export_tflite(model, tmp_path / "m.tflite", "float32")
  assert info["kernel_dtypes"] == {"float32": 1}
  feeds = {"tensor": [a], "list": [a], "dict": [a], "two": [a, b]}[structure]
  expected = keras.ops.convert_to_numpy(model(
      {"first": a} if structure == "dict" else
      feeds if structure in ("list", "two") else a))
  interpreter = Interpreter(model_path=str(tmp_path / "m.tflite"))
  interpreter.allocate_tensors()
  details = sorted(interpreter.get_input_details(),
                   key=lambda d: "second" in d["name"])
  assert len(details) == len(feeds)
  for detail, value in zip(details, feeds):
    interpreter.resize_tensor_input(detail["index"], value.shape)
  interpreter.allocate_tensors()
  for detail, value in zip(details, feeds):
    interpreter.set_tensor(detail["index"], value)
  interpreter.invoke()
  got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
  np.testing.assert_allclose(got, expected, atol=1e-5)
