"""Mixed precision and the 4-bit modes: keep_float, auto_keep_float,
int4_weight_only and int4_blockwise, read back from the flatbuffer."""

import dataclasses

import numpy as np
import pytest

import tf_compress
from tf_compress import export
from tf_compress import quantization
from tf_compress.export import layer_map

import fragile_models

KERNELS = {"conv1": 8 * 3 * 3, "conv2": 16 * 3 * 3 * 8,
           "fc1": 64 * 4 * 4 * 16, "logits": 10 * 64}


@pytest.fixture(scope="module")
def splits():
  return fragile_models.digits_splits()


@pytest.fixture(scope="module")
def model(splits):
  return fragile_models.fragile_cnn(splits)


@pytest.fixture(scope="module")
def healthy(model):
  """The fragile model without its huge weight: the same float function
  (the weight reads a dead unit), but an ordinary range to quantize. The
  dead unit is still an all-zero column of fc1's kernel."""
  import keras  # pylint: disable=g-import-not-at-top
  copy = keras.models.clone_model(model)
  copy.set_weights(model.get_weights())
  logits = copy.get_layer(fragile_models.FRAGILE)
  weights = logits.kernel.numpy()
  weights[np.abs(weights) == np.abs(weights).max()] = 0.0
  logits.kernel.assign(weights)
  assert not np.any(copy.get_layer("fc1").kernel.numpy()[:, 0])
  return copy


@pytest.fixture(scope="module")
def calibrated(model, splits):
  return export.calibrate_int8(model, splits.x_train)


def _kernels(data):
  """{layer: weight entry} of the file's kernels, by restored tensor name."""
  out = {}
  for weight in export.inspect_tflite(data, per_tensor=True)["weights"]:
    if weight["role"] != "kernel":
      continue
    layers = [n for n in KERNELS if f"/{n}_" in weight["name"] or
              f"/{n}/" in weight["name"]]
    assert len(layers) == 1, weight["name"]
    out[layers[0]] = weight
  assert sorted(out) == sorted(KERNELS)
  return out


def test_keep_float_fc1_leaves_exactly_that_kernel_float(model, splits,
                                                          tmp_path):
  path = tmp_path / "mixed.tflite"
  info = export.export_tflite(model, path, "int8", keep_float=["fc1"],
                              representative_data=splits.x_train)
  data = path.read_bytes()
  kernels = _kernels(data)
  assert {n: k["dtype"] for n, k in kernels.items()} == {
      "conv1": "int8", "conv2": "int8", "fc1": "float32", "logits": "int8"}
  assert kernels["fc1"]["size"] == KERNELS["fc1"]
  assert info["kernel_dtypes"] == {"float32": 1, "int8": 3}
  # The user never sees a converter token: every name is the model's.
  names = [w["name"] for w in export.inspect_tflite(
      data, per_tensor=True)["weights"]]
  assert not any("tfcmap" in n for n in names)
  check = export.verify_tflite(path, splits.x_test, splits.y_test,
                               keras_model=model)
  assert check["agreement"] >= 0.85  # the fragile logits are int8 here


def test_selections_from_one_calibration(calibrated, model, splits):
  plain = export.convert_to_tflite(model, "int8",
                                   representative_data=splits.x_train)
  assert export.inspect_tflite(calibrated.quantize())["kernel_dtypes"] == (
      export.inspect_tflite(plain)["kernel_dtypes"]) == {"int8": 4}
  convs = _kernels(calibrated.quantize(keep=["conv*"], keep_dtype="float16"))
  assert {n: k["dtype"] for n, k in convs.items()} == {
      "conv1": "float16", "conv2": "float16", "fc1": "int8",
      "logits": "int8"}
  # float16 kernels hold the float model's weights, rounded to float16.
  conv1 = model.get_layer("conv1").kernel.numpy()
  assert convs["conv1"]["unique"] == np.unique(
      conv1.astype(np.float16)).size
  only = _kernels(calibrated.quantize(only=["logits"]))
  assert {n: k["dtype"] for n, k in only.items()} == {
      "conv1": "float32", "conv2": "float32", "fc1": "float32",
      "logits": "int8"}
  int8_io = export.inspect_tflite(calibrated.quantize(keep=["fc1"],
                                                     int8_io=True))
  assert int8_io["input_details"][0]["dtype"] == "int8"
  assert int8_io["kernel_dtypes"] == {"float32": 1, "int8": 3}
  fixed = calibrated.quantize(keep=[fragile_models.FRAGILE])
  check = export.verify_tflite(fixed, splits.x_test, splits.y_test,
                               keras_model=model, isolate=False)
  broken = export.verify_tflite(plain, splits.x_test, splits.y_test,
                                keras_model=model, isolate=False)
  assert check["agreement"] >= 0.97 > broken["agreement"]


def test_unknown_layer_names_are_named(model, splits):
  with pytest.raises(tf_compress.UserInputError) as error:
    export.convert_to_tflite(model, "int8", keep_float=["fc9", "dense*",
                                                        "fc1"],
                             representative_data=splits.x_train)
  message = str(error.value)
  assert "'fc9', 'dense*'" in message and "conv1, conv2" in message
  assert "'fc1'" not in message.split("its layers")[0]


@pytest.mark.parametrize("kwargs,match", [
    ({"mode": "float16", "keep_float": ["fc1"]}, "needs mode='int8'"),
    ({"mode": "int8", "keep_float": "fc1"}, r"\['fc1'\]"),
    ({"mode": "int8", "keep_float": ["fc1"], "keep_float_dtype": "int4"},
     "keep_float_dtype"),
    ({"mode": "int4_weights"}, "int4_weight_only"),
], ids=["mode", "string", "dtype", "unknown-mode"])
def test_bad_keep_float_arguments(model, splits, kwargs, match):
  with pytest.raises(tf_compress.UserInputError, match=match):
    export.convert_to_tflite(model, representative_data=splits.x_train,
                             **kwargs)


def test_a_layer_without_an_op_is_refused(calibrated):
  with pytest.raises(tf_compress.UserInputError, match="own no op"):
    calibrated.quantize(keep=["dropout"])
  # A pattern is fine when one of its layers owns an op: `*t*` matches
  # flatten, dropout and logits.
  kernels = _kernels(calibrated.quantize(keep=["*t*"]))
  assert kernels["logits"]["dtype"] == "float32"
  assert kernels["fc1"]["dtype"] == "int8"


def test_tf_keras_models_go_through_the_same_path(splits):
  model = fragile_models.untrained_cnn(tf_compress.keras, splits)
  data = export.convert_to_tflite(model, "int8", keep_float=["conv2"],
                                  representative_data=splits.x_train[:64])
  assert {n: k["dtype"] for n, k in _kernels(data).items()} == {
      "conv1": "int8", "conv2": "float32", "fc1": "int8", "logits": "int8"}
  assert [layer.name for layer in model.layers][1:] == [
      "conv1", "conv2", "flatten", "fc1", "dropout", "logits"]


def test_tagging_restores_the_layer_names(model):
  names = [layer.name for layer in model.layers]
  with layer_map.tagged_layers(model) as tokens:
    assert all(layer.name.startswith("tfcmap") for layer in model.layers[1:])
  assert [layer.name for layer in model.layers] == names
  assert sorted(tokens.values()) == sorted(names[1:])


def test_auto_keep_float_meets_the_budget_with_few_layers(model, splits):
  choice = quantization.auto_keep_float(model, splits, max_drop=1.0,
                                        num_resamples=200)
  assert choice["met"] and choice["drop"] <= 1.0
  assert choice["int8_drop"] > 1.0  # plain int8 misses the budget
  assert 0 < len(choice["keep_float"]) < choice["num_candidates"] == 4
  assert choice["keep_float"][0] == fragile_models.FRAGILE
  assert [t["keep_float"] for t in choice["trials"]][-1] == (
      choice["keep_float"])
  float16 = export.convert_to_tflite(model, "float16")
  assert choice["bytes"] < len(float16)
  assert choice["ranking"][0]["layer"] == fragile_models.FRAGILE


def test_auto_keep_float_budget_is_checked(model, splits):
  with pytest.raises(tf_compress.UserInputError, match="max_drop"):
    quantization.auto_keep_float(model, splits, max_drop=-1)


def test_int4_weight_only_holds_4_bit_kernels(healthy, splits, tmp_path):
  path = tmp_path / "int4.tflite"
  export.export_tflite(healthy, path, "int4_weight_only")
  kernels = _kernels(path.read_bytes())
  for name, kernel in kernels.items():
    assert kernel["dtype"] == "int4", name
    assert kernel["size"] == KERNELS[name]
    assert kernel["bytes"] == (KERNELS[name] + 1) // 2  # two a byte
    assert 2 <= kernel["unique"] <= 16
  check = export.verify_tflite(path, splits.x_test, splits.y_test,
                               keras_model=healthy)
  assert check["agreement"] >= 0.95
  assert check["tflite_top1"] > 0.8


def test_int4_blockwise_quantizes_the_dense_layers(healthy, splits):
  # fc1's dead unit gives AEQ a zero scale, which XNNPACK would refuse.
  data = export.convert_to_tflite(healthy, "int4_blockwise")
  kernels = _kernels(data)
  assert {n: k["dtype"] for n, k in kernels.items()} == {
      "conv1": "float32", "conv2": "float32", "fc1": "int4",
      "logits": "int4"}
  check = export.verify_tflite(data, splits.x_test, splits.y_test,
                               keras_model=healthy)
  assert check["agreement"] >= 0.95
  assert export.EXPORT_MODES == ("float32", "dynamic", "float16", "int8",
                                 "int16x8")
  assert export.EDGE_QUANTIZER_MODES == ("int4_weight_only",
                                         "int4_blockwise")


@pytest.fixture(scope="module")
def digits32_fragile():
  """The fragile CNN trained 4 epochs on 5,000 digits32 images (32x32x3);
  1,000 validation and 1,000 test images."""
  import keras  # pylint: disable=g-import-not-at-top
  full = tf_compress.load_dataset("digits32", seed=0)
  small = dataclasses.replace(
      full, x_train=full.x_train[:5000], y_train=full.y_train[:5000],
      x_val=full.x_val[:1000], y_val=full.y_val[:1000],
      x_test=full.x_test[:1000], y_test=full.y_test[:1000])
  model = fragile_models.untrained_cnn(keras, small, seed=0)
  model.compile(
      "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  model.fit(small.x_train, small.y_train, epochs=4, batch_size=64,
            verbose=0, shuffle=False)
  return fragile_models.make_fragile(model), small


def test_auto_keep_float_on_digits32(digits32_fragile):
  # Issue 17: within budget on digits32, with fewer float layers than all
  # of them, and a file smaller than float16.
  model, small = digits32_fragile
  choice = quantization.auto_keep_float(model, small, max_drop=1.0,
                                        num_resamples=200)
  assert choice["int8_drop"] > 1.0  # plain int8 misses the budget
  assert choice["met"] and choice["drop"] <= 1.0
  assert 0 < len(choice["keep_float"]) < choice["num_candidates"] == 4
  assert fragile_models.FRAGILE in choice["keep_float"]
  float16 = export.convert_to_tflite(model, "float16")
  assert choice["bytes"] < 0.6 * len(float16)
