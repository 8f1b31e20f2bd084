"""The train command's --export takes the 4-bit modes: int4_weight_only
files come out of `run()` with 4-bit kernels, verified on LiteRT."""

import json

import numpy as np
import pytest

import tf_compress
from tf_compress import export
from tf_compress import pipeline

# The mlp on digits' 8x8x1 input: fc1 64->128, fc2 128->64, logits 64->10.
KERNELS = {"fc1": 64 * 128, "fc2": 128 * 64, "logits": 64 * 10}


@pytest.fixture(scope="module")
def int4_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("int4_run")
  config = tf_compress.TrainConfig(
      output_dir=str(out), model="mlp", epochs=1, seed=3,
      export=("int4_weight_only",), benchmark_runs=0, verbose=0)
  return out, pipeline.run(config)


def test_export_flag_takes_the_union_of_modes():
  config = tf_compress.TrainConfig(export="float32,int8,int4_weight_only")
  assert config.export.modes == ("float32", "int8", "int4_weight_only")
  assert tf_compress.TrainConfig(
      export=("int4_blockwise",)).export.modes == ("int4_blockwise",)
  # The converter's own list is unchanged; the 4-bit modes are added.
  assert pipeline.config.EXPORT_MODES == ("float32", "dynamic", "float16",
                                          "int8", "int16x8")
  with pytest.raises(tf_compress.UserInputError,
                     match=r"ExportConfig.modes \(--export\) must be one of "
                     r"\(.*'int4_weight_only', 'int4_blockwise'\), got "
                     r"'int4'"):
    tf_compress.TrainConfig(export="float32,int4")


def test_int4_file_holds_4_bit_kernels(int4_run):
  out, report = int4_run
  (baseline,) = report["variants"]
  (entry,) = baseline["tflite"]
  assert entry["mode"] == "int4_weight_only"
  assert entry["kernel_dtypes"] == {"int4": 3}
  data = (out / entry["path"]).read_bytes()
  assert len(data) == entry["bytes"]
  kernels = {}
  for weight in export.inspect_tflite(data, per_tensor=True)["weights"]:
    if weight["role"] == "kernel":
      (layer,) = [n for n in KERNELS if f"/{n}/" in weight["name"] or
                  f"/{n}_" in weight["name"]]
      kernels[layer] = weight
  assert sorted(kernels) == sorted(KERNELS)
  for name, kernel in kernels.items():
    assert kernel["dtype"] == "int4", name
    assert kernel["size"] == KERNELS[name]
    assert kernel["bytes"] == KERNELS[name] // 2  # two weights a byte
    assert 2 <= kernel["unique"] <= 16
  # Four bits a weight: well under a third of the float32 kernels' bytes.
  assert entry["bytes"] < 4 * sum(KERNELS.values()) / 3


def test_int4_file_agrees_with_keras(int4_run):
  out, report = int4_run
  (baseline,) = report["variants"]
  (entry,) = baseline["tflite"]
  assert entry["agreement"] >= 0.9
  assert abs(entry["tflite_top1"] - baseline["top1"]) <= 0.05
  assert baseline["top1"] > 0.5  # a trained model, not chance (0.1)
  # What report.json records is what the file does on the test split.
  on_disk = json.loads((out / "report.json").read_text())
  assert on_disk["variants"][0]["tflite"][0]["tflite_top1"] == (
      entry["tflite_top1"])
  splits = tf_compress.load_dataset("digits", seed=3)
  check = export.verify_tflite(out / entry["path"], splits.x_test,
                               splits.y_test)
  assert check["tflite_top1"] == pytest.approx(entry["tflite_top1"])
  labels, predictions = pipeline.load_predictions(out / "predictions.npz")
  np.testing.assert_array_equal(labels, splits.y_test)
  assert np.mean(predictions["baseline"]["int4_weight_only"] ==
                 splits.y_test) == pytest.approx(entry["tflite_top1"])
