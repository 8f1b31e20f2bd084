"""TFLite export of Keras 3 models, pruned by the native engine or not."""

import keras
import numpy as np
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
