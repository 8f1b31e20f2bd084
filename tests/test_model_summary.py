"""model_summary and format_summary: exact counts on hand-built models.

The tiny model is Input(4) -> Dense(3) -> Dense(2): 4*3+3 = 15 and 3*2+2 = 8
parameters, 12 and 6 MACs, 4 bytes per float32 parameter. Its weights are
set to non-zero values so that every zero seen below was made on purpose.
"""

import json
import math
import re

import numpy as np
import pytest

import tf_compress
from tf_compress import export
from tf_compress import keras
from tf_compress import pruning
from tf_compress import quantization
from tf_compress.analysis import count_macs
from tf_compress.analysis import count_params
from tf_compress.analysis import format_summary
from tf_compress.analysis import model_summary
from tf_compress.errors import ModelError
from tf_compress.errors import UserInputError

L = keras.layers


def _nonzero_weights(model, seed=0):
  rng = np.random.default_rng(seed)
  model.set_weights([
      (rng.uniform(0.1, 1.0, w.shape) * rng.choice([-1, 1], w.shape))
      .astype(np.float32) for w in model.get_weights()])
  return model


def _dense_model(width=3, name="tiny"):
  inputs = keras.Input((4,))
  x = L.Dense(width, name="fc1")(inputs)
  model = keras.Model(inputs, L.Dense(2, name="fc2")(x), name=name)
  return _nonzero_weights(model)


@pytest.fixture(scope="module")
def tiny():
  return _dense_model()


@pytest.fixture(scope="module")
def conv_model():
  inputs = keras.Input((6, 6, 2))
  x = L.Conv2D(4, 3, activation="relu", name="conv")(inputs)
  x = L.DepthwiseConv2D(3, name="dw")(x)
  x = L.Flatten(name="flatten")(x)
  model = keras.Model(inputs, L.Dense(3, name="fc")(x), name="small_cnn")
  return _nonzero_weights(model, seed=1)


@pytest.fixture(scope="module")
def conv_exports(conv_model, tmp_path_factory):
  """Paths of the conv model's float32 and int8 .tflite files."""
  tmp = tmp_path_factory.mktemp("tflite")
  calibration = np.random.default_rng(0).uniform(
      0, 1, (16, 6, 6, 2)).astype(np.float32)
  paths = {}
  for mode in ("float32", "int8"):
    paths[mode] = tmp / f"small_cnn_{mode}.tflite"
    export.export_tflite(conv_model, paths[mode], mode,
                         representative_data=calibration)
  return paths


def _rows(summary):
  return {row["name"]: row for row in summary["rows"]}


def _kernel_ops(summary):
  return {row["type"]: row for row in summary["rows"]
          if row["type"] in ("CONV_2D", "DEPTHWISE_CONV_2D",
                             "FULLY_CONNECTED")}


_OP_OF_LAYER = {"Conv2D": "CONV_2D", "DepthwiseConv2D": "DEPTHWISE_CONV_2D",
                "Dense": "FULLY_CONNECTED"}


def test_plain_dense_model_hand_counted(tiny):
  summary = model_summary(tiny)
  assert summary["name"] == "tiny" and summary["source"] == "keras"
  assert summary["file_bytes"] is None
  assert [(r["name"], r["type"], r["output_shape"], r["params"],
           r["nonzero"], r["dtypes"], r["bits"], r["memory_bytes"],
           r["macs"]) for r in summary["rows"]] == [
               ("fc1", "Dense", [None, 3], 15, 15, ["float32"], [32], 60, 12),
               ("fc2", "Dense", [None, 2], 8, 8, ["float32"], [32], 32, 6)]
  assert summary["rows"][0]["weights"] == [
      {"name": "kernel", "shape": [4, 3], "params": 12, "nonzero": 12,
       "dtype": "float32", "bits": 32, "bytes": 48},
      {"name": "bias", "shape": [3], "params": 3, "nonzero": 3,
       "dtype": "float32", "bits": 32, "bytes": 12}]
  assert summary["totals"] == {
      "layers": 2, "params": 23, "nonzero": 23, "memory_bytes": 92,
      "macs": 18, "params_by_bits": {"32": 23}, "float32_bytes": 92,
      "float32_ratio": 1.0}
  assert summary["reference"] is None and summary["ratios"] is None
  assert json.loads(json.dumps(summary)) == summary


def test_pruned_model_counts_kernel_times_mask(tiny):
  pruned = pruning.prune_model(tiny, pruning.PruningConfig(
      target_sparsity=0.5))
  zeroed = {"fc1": 5, "fc2": 2}
  for _, wrapper in pruning.find_pruning_wrappers(pruned):
    _, mask, _ = wrapper.pruning_vars[0]
    values = np.ones(mask.shape, np.float32).reshape(-1)
    values[:zeroed[wrapper.layer.name]] = 0
    mask.assign(values.reshape(mask.shape))
  # Masks, thresholds and steps are variables of the model, not parameters.
  assert count_params(pruned) == 23 + 12 + 6 + 2 * 2
  summary = model_summary(pruned)
  rows = _rows(summary)
  assert list(rows) == ["fc1", "fc2"]
  assert (rows["fc1"]["params"], rows["fc1"]["nonzero"]) == (15, 15 - 5)
  assert (rows["fc2"]["params"], rows["fc2"]["nonzero"]) == (8, 8 - 2)
  assert rows["fc1"]["weights"][0]["nonzero"] == 12 - 5
  assert (rows["fc1"]["memory_bytes"], rows["fc1"]["macs"]) == (60, 12)
  assert summary["totals"]["nonzero"] == 16
  # The stripped export has the same zeros.
  stripped = model_summary(pruning.strip_pruning(pruned))
  assert [r["nonzero"] for r in stripped["rows"]] == [10, 6]
  assert stripped["totals"] == summary["totals"]


def test_clustered_model_counts_index_bits(tiny):
  clustered = quantization.cluster_model(tiny, 4)
  assert count_params(clustered) > 23  # centroids and indices
  summary = model_summary(clustered)
  rows = _rows(summary)
  stripped = quantization.strip_clustering(clustered)
  for name, kernel_size, bias_size in (("fc1", 12, 3), ("fc2", 6, 2)):
    row = rows[name]
    kernel, bias = row["weights"]
    values = stripped.get_layer(name).kernel.numpy()
    assert kernel == {
        "name": "kernel", "shape": list(values.shape), "params": kernel_size,
        "nonzero": int(np.count_nonzero(values)), "dtype": "float32",
        "bits": 2, "clusters": 4, "unique": int(np.unique(values).size),
        # 2-bit indices, packed, plus 4 float32 centroids.
        "bytes": math.ceil(kernel_size * 2 / 8) + 4 * 4}
    assert kernel["unique"] <= 4
    assert (bias["bits"], bias["bytes"]) == (32, 4 * bias_size)
    assert row["dtypes"] == ["2-bit", "float32"] and row["bits"] == [2, 32]
    assert row["params"] == kernel_size + bias_size
  assert (rows["fc1"]["memory_bytes"], rows["fc2"]["memory_bytes"]) == (
      3 + 16 + 12, 2 + 16 + 8)
  assert summary["totals"]["params"] == 23
  assert summary["totals"]["params_by_bits"] == {"2": 18, "32": 5}
  assert summary["totals"]["macs"] == 18


def test_qat_model_counts_int8_weights(tiny):
  qat = quantization.quantize_model(tiny)
  assert count_params(qat) > 23  # quantizer ranges and steps
  summary = model_summary(qat)
  # tfmot names its input QuantizeLayer from Keras's global counter
  # (quantize_layer, quantize_layer_3, ...), which depends on test order.
  assert [(re.sub(r"_\d+$", "", r["name"]) if r["type"] == "QuantizeLayer"
           else r["name"], r["type"], r["params"], r["dtypes"], r["bits"],
           r["memory_bytes"], r["macs"]) for r in summary["rows"]] == [
               ("quantize_layer", "QuantizeLayer", 0, [], [], 0, 0),
               # int8 kernel (1 byte per param) and int32 bias.
               ("fc1", "Dense", 15, ["int8", "int32"], [8, 32], 12 + 12, 12),
               ("fc2", "Dense", 8, ["int8", "int32"], [8, 32], 6 + 8, 6)]
  totals = summary["totals"]
  assert totals["params"] == model_summary(tiny)["totals"]["params"] == 23
  assert totals["params_by_bits"] == {"8": 18, "32": 5}
  assert totals["memory_bytes"] == 38
  assert totals["float32_ratio"] == 92 / 38


# QAT models save only as .h5, which tf_keras calls legacy, and which load
# only with safe_mode=False.
@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5")
def test_saved_wrapped_models_load_from_files(tiny, tmp_path):
  qat = quantization.quantize_model(tiny)
  clustered = quantization.cluster_model(tiny, 4)
  tf_compress.save_model(qat, tmp_path / "qat.h5")
  tf_compress.save_model(clustered, tmp_path / "clustered.keras")
  with pytest.raises(tf_compress.ModelError, match="--allow_unsafe_load"):
    model_summary(tmp_path / "qat.h5")
  for model, name in ((qat, "qat.h5"), (clustered, "clustered.keras")):
    summary = model_summary(tmp_path / name, safe_mode=name != "qat.h5")
    assert summary["name"] == name
    assert summary["file_bytes"] == (tmp_path / name).stat().st_size
    assert summary["rows"] == model_summary(model)["rows"]


def test_reference_ratios_against_double_width(tiny):
  wide = _dense_model(width=6, name="wide")
  summary = model_summary(tiny, reference=wide)
  # wide: 4*6+6 + 6*2+2 = 44 params, 24 + 12 = 36 MACs.
  assert summary["ratios"] == {"params": 44 / 23, "nonzero": 44 / 23,
                               "memory_bytes": 176 / 92, "macs": 2.0}
  assert summary["reference"] == {
      "name": "wide", "source": "keras",
      "totals": model_summary(wide)["totals"]}
  # A summary already computed serves as the reference too.
  again = model_summary(tiny, reference=model_summary(wide))
  assert again["ratios"] == summary["ratios"]


def test_nested_model_is_flattened():
  inputs = keras.Input((4,))
  inner = _dense_model()
  outer = keras.Model(inputs, L.Dense(1, name="head")(inner(inputs)))
  summary = model_summary(outer)
  assert [(r["name"], r["params"], r["macs"]) for r in summary["rows"]] == [
      ("tiny/fc1", 15, 12), ("tiny/fc2", 8, 6), ("head", 3, 2)]
  assert summary["totals"]["params"] == count_params(outer) == 26


def test_subclassed_model_has_unknown_shapes_and_macs():

  class Net(keras.Model):

    def __init__(self):
      super().__init__(name="net")
      self.fc = L.Dense(3, name="fc")

    def call(self, x):
      return self.fc(x)

  net = Net()
  net(np.zeros((1, 4), np.float32))
  summary = model_summary(net)
  assert [(r["name"], r["params"], r["output_shape"], r["macs"])
          for r in summary["rows"]] == [("fc", 15, None, None)]
  assert summary["totals"]["macs"] is None
  assert "MACs: ?" in format_summary(summary)


def test_float32_tflite_matches_keras(conv_model, conv_exports):
  keras_summary = model_summary(conv_model)
  summary = model_summary(conv_exports["float32"], reference=conv_model)
  assert summary["source"] == "tflite"
  assert summary["name"] == "small_cnn_float32.tflite"
  assert summary["file_bytes"] == conv_exports["float32"].stat().st_size
  ops = _kernel_ops(summary)
  macs = {row["layer"]: row["macs"]
          for row in count_macs(conv_model)["per_layer"]}
  for row in keras_summary["rows"]:
    if row["type"] not in _OP_OF_LAYER:
      continue
    op = ops[_OP_OF_LAYER[row["type"]]]
    assert op["params"] == row["params"]
    assert op["memory_bytes"] == 4 * row["params"]
    assert op["dtypes"] == ["float32"]
    assert op["macs"] == macs[row["name"]] == row["macs"]
    assert op["output_shape"] == row["output_shape"]
  assert [op["params"] for op in ops.values()] == [2 * 9 * 4 + 4,
                                                   9 * 4 + 4, 16 * 3 + 3]
  # The RESHAPE's shape operand is a constant but not a parameter.
  reshape = next(r for r in summary["rows"] if r["type"] == "RESHAPE")
  assert (reshape["params"], reshape["output_shape"]) == (0, [None, 16])
  assert summary["totals"]["params"] == keras_summary["totals"]["params"]
  assert summary["totals"]["macs"] == count_macs(conv_model)["total"] == (
      4 * 4 * 72 + 2 * 2 * 36 + 48)
  assert summary["ratios"] == {"params": 1.0, "nonzero": 1.0,
                               "memory_bytes": 1.0, "macs": 1.0}


def test_int8_tflite_weights_are_one_byte(conv_model, conv_exports):
  summary = model_summary(conv_exports["int8"],
                          reference=conv_exports["float32"])
  ops = _kernel_ops(summary)
  float_ops = _kernel_ops(model_summary(conv_exports["float32"]))
  for op_type, op in ops.items():
    kernel, bias = op["weights"]
    assert (kernel["dtype"], kernel["bits"]) == ("int8", 8)
    assert kernel["bytes"] == kernel["params"]
    assert (bias["dtype"], bias["bytes"]) == ("int32", 4 * bias["params"])
    assert op["dtypes"] == ["int8", "int32"]
    assert op["params"] == float_ops[op_type]["params"]
    assert op["macs"] == float_ops[op_type]["macs"]
    # Kernel memory is 4x smaller than in the float32 export.
    assert float_ops[op_type]["weights"][0]["bytes"] == 4 * kernel["bytes"]
  kernels = 72 + 36 + 48
  biases = 4 + 4 + 3
  assert summary["totals"]["params"] == kernels + biases
  assert summary["totals"]["params_by_bits"] == {"8": kernels,
                                                 "32": biases}
  assert summary["totals"]["memory_bytes"] == kernels + 4 * biases
  assert summary["ratios"]["memory_bytes"] == (
      4 * (kernels + biases) / (kernels + 4 * biases))
  assert summary["ratios"]["params"] == summary["ratios"]["macs"] == 1.0
  # Float input and output: a QUANTIZE first and a DEQUANTIZE last.
  assert summary["rows"][0]["type"] == "QUANTIZE"
  assert summary["rows"][-1]["type"] == "DEQUANTIZE"
  assert [r["params"] for r in summary["rows"]
          if r["type"] in ("QUANTIZE", "DEQUANTIZE")] == [0, 0]


def test_float16_weights_belong_to_the_op_after_dequantize(conv_model):
  data = export.convert_to_tflite(conv_model, "float16")
  summary = model_summary(data)
  assert summary["name"] == "<TFLite model bytes>"
  ops = _kernel_ops(summary)
  assert {t: (op["params"], op["dtypes"], op["memory_bytes"])
          for t, op in ops.items()} == {
              "CONV_2D": (76, ["float16"], 152),
              "DEPTHWISE_CONV_2D": (40, ["float16"], 80),
              "FULLY_CONNECTED": (51, ["float16"], 102)}
  assert all(r["params"] == 0 for r in summary["rows"]
             if r["type"] == "DEQUANTIZE")
  assert summary["totals"]["params"] == 167
  assert summary["totals"]["float32_ratio"] == 2.0


def test_corrupt_and_wrong_inputs(conv_exports, tmp_path):
  data = conv_exports["float32"].read_bytes()
  for broken in (data[:len(data) // 2], data[:64]):
    with pytest.raises(UserInputError, match="not a valid TFLite model"):
      model_summary(broken)
  text = tmp_path / "x.tflite"
  text.write_text("this is not a flatbuffer\n")
  with pytest.raises(UserInputError, match="x.tflite"):
    model_summary(text)
  with pytest.raises(ModelError, match="not found"):
    model_summary(tmp_path / "missing.keras")
  with pytest.raises(TypeError, match="tf_keras Model"):
    model_summary(42)
  with pytest.raises(TypeError, match="reference"):
    model_summary(data, reference=[1, 2])


def test_format_summary_table(tiny):
  text = format_summary(model_summary(tiny, reference=_dense_model(6, "w")))
  assert text.splitlines() == [
      "Model: tiny (keras)",
      "-" * 71,
      "Layer (type)  Output shape  Params  Non-zero  Weights  Memory (B)  "
      "MACs",
      "-" * 71,
      "fc1 (Dense)   (None, 3)         15        15  float32          60    "
      "12",
      "fc2 (Dense)   (None, 2)          8         8  float32          32     "
      "6",
      "-" * 71,
      "Total                           23        23                   92    "
      "18",
      "=" * 71,
      "Params: 23 (32-bit: 23)",
      "Non-zero params: 23 (100.00%)",
      "Memory: 92 B (float32 equivalent 92 B, 1.00x smaller)",
      "MACs: 18",
      "Compression vs w (keras), reference / model: params 1.91x, non-zero "
      "params 1.91x, memory 1.91x, MACs 2.00x",
  ]


def test_format_summary_mixed_bits(tiny):
  text = format_summary(model_summary(quantization.quantize_model(tiny)))
  assert "fc1 (Dense)" in text and "int8/int32" in text
  assert "Params: 23 (8-bit: 18, 32-bit: 5)" in text
  assert "Memory: 38 B (float32 equivalent 92 B, 2.42x smaller)" in text
