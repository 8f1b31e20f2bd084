"""LiteRT verification of exported models against their Keras source."""

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

import tf_compress
from tf_compress import export
from tf_compress import keras
from tf_compress.export import litert


def _compile(model):
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True),
                metrics=["accuracy"])
  return model


@pytest.fixture(scope="module")
def trained(digits):
  """The digits CNN trained for 5 epochs."""
  tf_compress.set_seed(0)
  model = _compile(tf_compress.build_model(
      "cnn", digits.input_shape, digits.num_classes, seed=0, keras_version=2))
  model.fit(digits.train(batch_size=32), epochs=5, verbose=0)
  return model


@pytest.fixture(scope="module")
def files(trained, digits, tmp_path_factory):
  """name -> path of the trained CNN's float32, int8 and int8-io exports."""
  directory = tmp_path_factory.mktemp("tflite")
  result = {}
  for name, mode, kwargs in (
      ("float32", "float32", {}),
      ("int8", "int8", {"representative_data": digits.x_train}),
      ("int8_io", "int8", {"representative_data": digits.x_train,
                           "int8_io": True})):
    path = directory / f"{name}.tflite"
    export.export_tflite(trained, path, mode, **kwargs)
    result[name] = path
  return result


def test_float32_matches_keras(trained, digits, files):
  result = export.verify_tflite(files["float32"], digits.x_test,
                                digits.y_test, keras_model=trained)
  assert result["num_samples"] == len(digits.x_test) == 359
  assert result["agreement"] == 1.0
  assert result["max_abs_diff"] < 1e-4
  assert result["tflite_top1"] == result["keras_top1"]
  assert result["keras_top1"] > 0.9
  assert result["batched"] is True
  assert (result["input_dtype"], result["output_dtype"]) == ("float32",
                                                             "float32")


def test_per_class_accuracy_matches_analysis(digits, files):
  result = export.verify_tflite(files["int8"], digits.x_test, digits.y_test)
  outputs, _ = litert.run_interpreter(
      litert.load_interpreter(files["int8"])[0], digits.x_test)
  per_class = result["per_class_accuracy"]
  assert per_class == tf_compress.analysis.per_class_accuracy(
      outputs, digits.y_test)
  support = np.bincount(digits.y_test, minlength=10)
  assert len(per_class) == 10 and all(support)
  # Weighted by class support, the recalls give back the top-1 accuracy.
  assert np.isclose(np.dot(per_class, support) / support.sum(),
                    result["tflite_top1"])
  # A class without samples has no recall.
  kept = digits.y_test != 3
  partial = export.verify_tflite(files["int8"], digits.x_test[kept],
                                 digits.y_test[kept])
  assert partial["per_class_accuracy"][3] is None
  assert partial["per_class_accuracy"][:3] == per_class[:3]


@pytest.mark.parametrize("name", ["int8", "int8_io"])
def test_int8_agrees_with_keras(trained, digits, files, name):
  result = export.verify_tflite(files[name], digits.x_test, digits.y_test,
                                keras_model=trained)
  assert result["agreement"] >= 0.98
  assert result["tflite_top1"] >= result["keras_top1"] - 0.02
  # Dequantized int8 logits stay near the float ones on average.
  assert result["mean_abs_diff"] < 0.1
  dtype = "int8" if name == "int8_io" else "float32"
  assert (result["input_dtype"], result["output_dtype"]) == (dtype, dtype)


def test_int8_io_equals_float_io_int8(digits, files):
  # Same quantized graph; only where (de)quantization happens differs.
  a, _ = litert.run_interpreter(litert.load_interpreter(files["int8"])[0],
                                digits.x_test)
  b, _ = litert.run_interpreter(litert.load_interpreter(files["int8_io"])[0],
                                digits.x_test)
  assert np.array_equal(np.argmax(a, -1), np.argmax(b, -1))
  assert np.max(np.abs(a - b)) < 1e-5


def test_one_by_one_matches_batches(trained, digits, files):
  batched = export.verify_tflite(files["float32"], digits.x_test[:50],
                                 keras_model=trained, batch_size=16)
  single = export.verify_tflite(files["float32"], digits.x_test[:50],
                                keras_model=trained, batch_size=1)
  assert (batched["batched"], single["batched"]) == (True, False)
  assert single["agreement"] == batched["agreement"] == 1.0
  assert single["tflite_top1"] is None  # no labels given
  assert abs(single["max_abs_diff"] - batched["max_abs_diff"]) < 1e-5


def test_fixed_batch_model_runs_sample_by_sample(trained, digits):
  inputs = keras.Input(digits.input_shape, batch_size=1)
  fixed = keras.Model(inputs, trained(inputs))
  data = export.convert_to_tflite(fixed, "float32")
  info = export.inspect_tflite(data)
  assert info["input_details"][0]["shape_signature"] == [1, 8, 8, 1]
  result = export.verify_tflite(data, digits.x_test[:40], digits.y_test[:40],
                                keras_model=trained)
  assert result["batched"] is False
  assert result["agreement"] == 1.0
  assert result["max_abs_diff"] < 1e-4


def test_quantize_and_dequantize_by_hand():
  detail = {"name": "in", "dtype": np.int8, "quantization": (1 / 255, -128)}
  x = np.array([0.0, 1.0, 0.5, 2.0, -1.0, 0.2], np.float32)
  # round(x * 255 - 128), clipped to [-128, 127]; 0.5 -> -0.5 rounds to 0.
  assert litert.quantize_input(x, detail).tolist() == [-128, 127, 0, 127,
                                                       -128, -77]
  out = {"name": "out", "dtype": np.int8, "quantization": (0.5, -20)}
  q = np.array([-20, -18, 0, 127], np.int8)
  assert litert.dequantize_output(q, out).tolist() == [0.0, 1.0, 10.0, 73.5]
  floats = {"name": "f", "dtype": np.float32, "quantization": (0.0, 0)}
  assert litert.quantize_input(x, floats).dtype == np.float32


def test_mirrored_trained_model_exports_and_verifies(logical_cpus, digits,
                                                     tmp_path):
  strategy = tf_compress.make_strategy("mirrored", 2)
  assert strategy.num_replicas_in_sync == 2
  with strategy.scope():
    model = _compile(tf_compress.build_model(
        "cnn", digits.input_shape, digits.num_classes, seed=1, keras_version=2))
  model.fit(digits.train(batch_size=32), epochs=1, steps_per_epoch=8,
            verbose=0)
  path = tmp_path / "mirrored.tflite"
  info = export.export_tflite(model, path, "float32")
  assert info["kernel_dtypes"] == {"float32": 4}
  result = export.verify_tflite(path, digits.x_test, digits.y_test,
                                keras_model=model)
  assert result["agreement"] == 1.0
  assert result["max_abs_diff"] < 1e-4


@pytest.mark.parametrize("how", ["truncated", "flipped_header"])
def test_corrupt_file_is_user_input_error(files, digits, tmp_path, how):
  data = files["float32"].read_bytes()
  data = (data[:len(data) // 3] if how == "truncated" else
          data[:4] + b"XXXX" + data[8:12] + b"\xff" * 8 + data[20:])
  path = tmp_path / "bad.tflite"
  path.write_bytes(data)
  with pytest.raises(tf_compress.UserInputError,
                     match="bad.tflite is not a valid TFLite model"):
    export.verify_tflite(path, digits.x_test, digits.y_test)


def _repack(data, edit):
  """Edits a TFLite model through the flatbuffer object API; returns bytes."""
  model = schema.ModelT.InitFromPackedBuf(data, 0)
  edit(model)
  builder = flatbuffers.Builder(0)
  builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
  return bytes(builder.Output())


def _first_conv_output(model):
  codes = [max(c.builtinCode, c.deprecatedBuiltinCode)
           for c in model.operatorCodes]
  conv = next(op for op in model.subgraphs[0].operators
              if codes[op.opcodeIndex] == schema.BuiltinOperator.CONV_2D)
  return model.subgraphs[0].tensors[conv.outputs[0]]


def test_damaged_file_that_crashes_litert_is_user_input_error(files, digits):
  # A flatbuffer-valid file with an absurd activation shape: LiteRT 2.3
  # segfaults allocating it, which only the child process sees.
  def damage(model):
    tensor = _first_conv_output(model)
    tensor.shape = np.concatenate([[13_828_097], tensor.shape[1:]]).astype(
        np.int32)

  data = _repack(files["int8"].read_bytes(), damage)
  assert export.inspect_tflite(data)["bytes"] == len(data)  # still parses
  with pytest.raises(tf_compress.UserInputError,
                     match=r"LiteRT (crashed \(SIGSEGV\)|cannot run)"):
    export.verify_tflite(data, digits.x_test[:8], digits.y_test[:8])


def test_child_crash_becomes_user_input_error(files, digits, monkeypatch):
  monkeypatch.setattr(litert, "_BOOTSTRAP",
                      "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)")
  with pytest.raises(tf_compress.UserInputError) as info:
    export.verify_tflite(files["float32"], digits.x_test[:8])
  assert f"LiteRT crashed (SIGSEGV) running {files['float32']}" in str(
      info.value)


def test_litert_error_becomes_user_input_error(files, digits):
  def nonzero_kernel_zero_point(model):
    for tensor in model.subgraphs[0].tensors:
      q = tensor.quantization
      if q is not None and q.zeroPoint is not None and len(q.zeroPoint) > 1:
        q.zeroPoint = np.full_like(q.zeroPoint, 7)

  data = _repack(files["int8"].read_bytes(), nonzero_kernel_zero_point)
  with pytest.raises(tf_compress.UserInputError,
                     match=r"LiteRT cannot run .*failed to prepare"):
    export.verify_tflite(data, digits.x_test[:8])


def test_bad_inputs(trained, digits, files):
  path = files["float32"]
  with pytest.raises(tf_compress.UserInputError,
                     match=r"per-sample shape \(8, 8\) but the TFLite model "
                     r"expects \(8, 8, 1\)"):
    export.verify_tflite(path, digits.x_test[:, :, :, 0], digits.y_test)
  with pytest.raises(tf_compress.UserInputError, match="one label per sample"):
    export.verify_tflite(path, digits.x_test, digits.y_test[:10])
  with pytest.raises(tf_compress.UserInputError, match="batch_size"):
    export.verify_tflite(path, digits.x_test, digits.y_test, batch_size=0)
  with pytest.raises(tf_compress.UserInputError,
                     match=r"labels must be in \[0, 10\).*got \[0, 12\]"):
    export.verify_tflite(path, digits.x_test[:3], [0, 5, 12])
  other = keras.Sequential([keras.Input(digits.input_shape),
                            keras.layers.Flatten(), keras.layers.Dense(3)])
  with pytest.raises(tf_compress.UserInputError,
                     match=r"keras_model outputs shape \(359, 3\)"):
    export.verify_tflite(path, digits.x_test, keras_model=other)
  with pytest.raises(TypeError, match="tf_keras Model"):
    export.verify_tflite(path, digits.x_test, keras_model=object())
