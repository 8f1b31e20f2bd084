"""TFLite conversion: modes, flatbuffer dtypes, wrappers, errors, files."""

import os
import warnings

import keras as keras3  # the real Keras 3, to hand us the wrong kind of model
import numpy as np
import pytest
import tensorflow_model_optimization as tfmot

import tf_compress
from tf_compress import export
from tf_compress import io_utils
from tf_compress import keras
from tf_compress._keras import tf


@pytest.fixture(scope="module")
def cnn(digits):
  """The digits CNN, untrained but with nonzero biases like a trained one.

  (The converter drops or shares all-zero bias tensors, which would change
  the tensor counts checked below.)
  """
  model = tf_compress.build_model("cnn", digits.input_shape,
                                  digits.num_classes, seed=0, keras_version=2)
  rng = np.random.default_rng(0)
  model.set_weights([w if w.ndim > 1 else
                     rng.normal(0, 0.1, w.shape).astype(np.float32)
                     for w in model.get_weights()])
  return model


@pytest.fixture(scope="module")
def exports(cnn, digits):
  """mode name -> (bytes, inspection) for every export mode of the CNN."""
  result = {}
  for name, mode, kwargs in (
      ("float32", "float32", {}), ("dynamic", "dynamic", {}),
      ("float16", "float16", {}), ("int8", "int8", {}),
      ("int8_io", "int8", {"int8_io": True}), ("int16x8", "int16x8", {})):
    if mode in ("int8", "int16x8"):
      kwargs["representative_data"] = digits.x_train
    data = export.convert_to_tflite(cnn, mode, **kwargs)
    result[name] = (data, export.inspect_tflite(data, per_tensor=True))
  return result


def _kernels(info):
  return {tuple(w["shape"]): w["dtype"] for w in info["weights"]
          if w["role"] == "kernel"}


# TFLite kernel layouts: conv OHWI, fully connected (out, in).
_CONV1, _CONV2, _FC1, _LOGITS = (32, 3, 3, 1), (64, 3, 3, 32), (128, 576), (
    10, 128)


def test_export_modes():
  assert export.EXPORT_MODES == ("float32", "dynamic", "float16", "int8",
                                 "int16x8")


def _all(dtype):
  return {_CONV1: dtype, _CONV2: dtype, _FC1: dtype, _LOGITS: dtype}


@pytest.mark.parametrize("name,kernels,activations,io_dtype", [
    pytest.param("float32", _all("float32"), {"float32": 7}, "float32",
                 id="float32"),
    # Dynamic range quantization leaves tensors under 1024 elements (conv1's
    # 288) in float32.
    pytest.param("dynamic", {**_all("int8"), _CONV1: "float32"},
                 {"float32": 7}, "float32", id="dynamic"),
    # 8 DEQUANTIZE outputs (kernels and biases) + the 7 activations.
    pytest.param("float16", _all("float16"), {"float32": 15}, "float32",
                 id="float16"),
    pytest.param("int8", _all("int8"), {"float32": 2, "int8": 7}, "float32",
                 id="int8"),
    pytest.param("int8_io", _all("int8"), {"int8": 7}, "int8", id="int8_io"),
    pytest.param("int16x8", _all("int8"), {"float32": 2, "int16": 7},
                 "float32", id="int16x8"),
])
def test_dtypes_in_flatbuffer(exports, name, kernels, activations, io_dtype):
  _, info = exports[name]
  assert _kernels(info) == kernels
  assert info["activation_dtypes"] == activations
  assert [d["dtype"] for d in info["input_details"]] == [io_dtype]
  assert [d["dtype"] for d in info["output_details"]] == [io_dtype]
  assert info["input_details"][0]["shape_signature"] == [-1, 8, 8, 1]
  assert info["output_details"][0]["shape_signature"] == [-1, 10]


def test_biases_and_quantization_params(exports):
  biases = {n: sorted(w["dtype"] for w in info["weights"]
                      if w["role"] == "bias")
            for n, (_, info) in exports.items()}
  assert biases["float32"] == ["float32"] * 4
  assert biases["int8"] == ["int32"] * 4
  assert biases["int16x8"] == ["int64"] * 4
  # int8 kernels are quantized per output channel, symmetrically.
  conv2 = next(w for w in exports["int8"][1]["weights"]
               if w["shape"] == list(_CONV2))
  assert len(conv2["quantization"]["scale"]) == 64
  assert set(conv2["quantization"]["zero_point"]) == {0}
  io = exports["int8_io"][1]["input_details"][0]["quantization"]
  assert io["scale"] == pytest.approx(1 / 255, rel=1e-3)  # inputs in [0, 1]
  assert io["zero_point"] == -128


def test_ops(exports):
  assert exports["float32"][1]["op_counts"] == {
      "CONV_2D": 2, "FULLY_CONNECTED": 2, "MAX_POOL_2D": 1, "RESHAPE": 1}
  assert exports["float16"][1]["op_counts"]["DEQUANTIZE"] == 8
  assert exports["int8"][1]["ops"] == [
      "CONV_2D", "DEQUANTIZE", "FULLY_CONNECTED", "MAX_POOL_2D", "QUANTIZE",
      "RESHAPE"]
  assert "QUANTIZE" not in exports["int8_io"][1]["ops"]


def test_file_sizes(exports, cnn):
  sizes = {name: len(data) for name, (data, _) in exports.items()}
  params = cnn.count_params()
  assert params == 93_962
  assert sizes["float32"] > 4 * params
  assert sizes["float32"] / sizes["int8"] >= 3.5
  assert sizes["float32"] / sizes["dynamic"] >= 3.5
  assert 1.9 <= sizes["float32"] / sizes["float16"] <= 2.1
  for name, (data, info) in exports.items():
    assert info["bytes"] == len(data), name


def test_tf_data_calibration_matches_array_and_is_quiet(cnn, digits, exports,
                                                       capfd):
  dataset = tf.data.Dataset.from_tensor_slices(
      (digits.x_train, digits.y_train)).batch(32)
  capfd.readouterr()
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    data = export.convert_to_tflite(cnn, "int8", representative_data=dataset)
  out, err = capfd.readouterr()
  # The same first 200 samples calibrate both: the bytes are identical.
  assert data == exports["int8"][0]
  # Neither the converter's native log nor its Python warnings get through.
  assert out == ""
  assert "fully_quantize" not in err and "Statistics" not in err
  assert not [w for w in caught if "quantized inputs" in str(w.message)]


@pytest.mark.parametrize("mode", ["int8", "int16x8"])
def test_calibrated_modes_need_representative_data(cnn, mode):
  with pytest.raises(tf_compress.UserInputError,
                     match=f"{mode} export needs representative data"):
    export.convert_to_tflite(cnn, mode)


@pytest.mark.parametrize("kwargs,match", [
    ({"mode": "int4"}, "unknown TFLite export mode 'int4'; choose one of "
     "float32, dynamic, float16, int8, int16x8"),
    ({"mode": "float32", "int8_io": True}, "int8_io=True needs mode='int8'"),
    ({"mode": "int8", "representative_data": np.zeros((4, 8, 8))},
     r"per-sample shape \(8, 8\) but model 'cnn' expects \(8, 8, 1\)"),
    ({"mode": "int8", "representative_data": np.zeros((0, 8, 8, 1))},
     "holds no samples"),
    ({"mode": "int8", "representative_data": np.zeros((4, 8, 8, 1)),
      "num_calibration_samples": 0}, "num_calibration_samples must be a "
     "positive integer, got 0"),
], ids=["unknown_mode", "int8_io", "bad_shape", "empty", "zero_samples"])
def test_bad_arguments(cnn, kwargs, match):
  with pytest.raises(tf_compress.UserInputError, match=match):
    export.convert_to_tflite(cnn, **kwargs)


def test_unconvertible_layer_names_op_and_layer():
  inputs = keras.Input((4,))
  x = keras.layers.Dense(4, name="hidden")(inputs)
  x = keras.layers.Lambda(
      lambda t: t + tf.linalg.svd(t, compute_uv=False)[..., :1],
      name="singular_values")(x)
  model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x),
                      name="svd_net")
  with pytest.raises(tf_compress.ModelError) as info:
    export.convert_to_tflite(model, "float32")
  message = str(info.value)
  assert "model 'svd_net'" in message
  assert "op tf.Svd in layer 'singular_values' (Lambda)" in message
  assert "\n" not in message


def test_keras3_model_converts_and_anything_else_is_refused():
  model = keras3.Sequential([keras3.Input((4,)), keras3.layers.Dense(2)])
  data = export.convert_to_tflite(model, "float32")
  assert export.inspect_tflite(data)["kernel_dtypes"] == {"float32": 1}
  x = np.random.RandomState(0).rand(8, 4).astype("float32")
  check = export.verify_tflite(data, x, keras_model=model, isolate=False)
  assert check["max_abs_diff"] < 1e-5
  with pytest.raises(TypeError, match="tf_keras Model"):
    export.convert_to_tflite(object(), "float32")


def _weights(model):
  return [w.copy() for w in model.get_weights()]


def test_pruned_model_is_stripped_and_untouched(cnn, exports):
  model = keras.models.clone_model(cnn)
  model.set_weights(cnn.get_weights())
  pruned = tfmot.sparsity.keras.prune_low_magnitude(model)
  before = _weights(pruned)
  info = export.inspect_tflite(export.convert_to_tflite(pruned, "float32"))
  assert info["op_counts"] == exports["float32"][1]["op_counts"]
  assert info["kernel_dtypes"] == {"float32": 4}
  assert type(pruned.layers[1]).__name__ == "PruneLowMagnitude"
  assert all(np.array_equal(a, b)
             for a, b in zip(before, pruned.get_weights()))


def test_clustered_model_is_stripped_and_untouched(cnn):
  model = keras.models.clone_model(cnn)
  model.set_weights(cnn.get_weights())
  clustered = tfmot.clustering.keras.cluster_weights(
      model, number_of_clusters=8,
      cluster_centroids_init=(
          tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS))
  before = [v.numpy().copy() for v in clustered.variables]
  info = export.inspect_tflite(export.convert_to_tflite(clustered, "float32"),
                               per_tensor=True)
  kernels = [w for w in info["weights"] if w["role"] == "kernel"]
  assert [w["dtype"] for w in kernels] == ["float32"] * 4
  assert max(w["unique"] for w in kernels) <= 8
  assert all(np.array_equal(a, v.numpy())
             for a, v in zip(before, clustered.variables))


def test_qat_model_converts_to_integer_without_calibration():
  inputs = keras.Input((8, 8, 1))
  x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
  x = keras.layers.Flatten(name="flatten")(x)
  model = keras.Model(inputs, keras.layers.Dense(3, name="out")(x))
  qat = tfmot.quantization.keras.quantize_model(model)
  info = export.inspect_tflite(
      export.convert_to_tflite(qat, "int8", int8_io=True))
  assert info["kernel_dtypes"] == {"int8": 2}
  assert info["input_details"][0]["dtype"] == "int8"
  assert info["output_details"][0]["dtype"] == "int8"
  with pytest.raises(tf_compress.UserInputError, match="int16x8"):
    export.convert_to_tflite(qat, "int16x8")


def test_export_tflite_writes_file(cnn, tmp_path, exports):
  path = tmp_path / "model.tflite"
  result = export.export_tflite(cnn, path, "float32")
  assert path.read_bytes() == exports["float32"][0]
  assert result["path"] == str(path)
  assert result["mode"] == "float32"
  assert result["bytes"] == os.path.getsize(path)
  assert result["kernel_dtypes"] == {"float32": 4}
  assert os.listdir(tmp_path) == ["model.tflite"]


def test_export_tflite_checks_destination_first(cnn, tmp_path):
  with pytest.raises(tf_compress.UserInputError, match="does not exist"):
    export.export_tflite(cnn, tmp_path / "missing" / "m.tflite", "float32")


@pytest.fixture(scope="module")
def tiny():
  inputs = keras.Input((3,))
  return keras.Model(inputs, keras.layers.Dense(2, name="out")(inputs),
                     name="tiny")


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_export_tflite_is_atomic(tiny, tmp_path, monkeypatch, failing):
  path = tmp_path / "model.tflite"
  path.write_bytes(b"previous model")

  def fail(*args, **kwargs):
    del args, kwargs
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(io_utils.os, failing, fail)
  with pytest.raises(OSError, match="No space left"):
    export.export_tflite(tiny, path, "float32")
  monkeypatch.undo()
  assert path.read_bytes() == b"previous model"
  assert os.listdir(tmp_path) == ["model.tflite"]
