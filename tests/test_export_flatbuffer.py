"""Flatbuffer inspection: sparsity, gzip size, per-tensor entries, bad files."""

import gzip
import json

import numpy as np
import pytest

import tf_compress
from tf_compress import export

_SPARSITY = 0.8


@pytest.fixture(scope="module")
def sparse_cnn(digits):
  """The digits CNN with exactly 80% of each kernel's entries set to 0."""
  model = tf_compress.build_model("cnn", digits.input_shape,
                                  digits.num_classes, seed=0, keras_version=2)
  rng = np.random.default_rng(0)
  weights = []
  for w in model.get_weights():
    if w.ndim > 1:
      flat = w.reshape(-1).copy()
      flat[rng.permutation(flat.size)[:round(_SPARSITY * flat.size)]] = 0
      w = flat.reshape(w.shape)
    else:
      w = rng.normal(0, 0.1, w.shape).astype(np.float32)
    weights.append(w)
  model.set_weights(weights)
  return model


@pytest.fixture(scope="module")
def sparse_exports(sparse_cnn, digits):
  """(float32 bytes, int8 bytes) of the sparse CNN."""
  return (export.convert_to_tflite(sparse_cnn, "float32"),
          export.convert_to_tflite(sparse_cnn, "int8",
                                   representative_data=digits.x_train,
                                   num_calibration_samples=50))


def _kernel_counts(model):
  kernels = [w for w in model.get_weights() if w.ndim > 1]
  return (sum(k.size for k in kernels),
          sum(int(np.count_nonzero(k)) for k in kernels))


def test_nonzero_fraction_of_float32_export(sparse_cnn, sparse_exports):
  info = export.inspect_tflite(sparse_exports[0], per_tensor=True)
  size, nonzero = _kernel_counts(sparse_cnn)
  assert (size, nonzero) == (93_728, 18_746)
  kernels = [w for w in info["weights"] if w["role"] == "kernel"]
  assert sum(w["size"] for w in kernels) == size
  assert sum(w["nonzero"] for w in kernels) == nonzero
  assert info["kernel_nonzero_fraction"] == pytest.approx(nonzero / size)
  # All weights: kernels, the 234 nonzero biases and one int32 shape tensor.
  assert info["num_weights"] == size + 234 + 2
  assert info["num_nonzero_weights"] == nonzero + 234 + 2
  assert info["nonzero_fraction"] == pytest.approx(0.2, abs=0.005)


def test_gzip_shrinks_sparse_file(sparse_exports, digits):
  data = sparse_exports[0]
  info = export.inspect_tflite(data)
  assert info["bytes"] == len(data)
  assert info["gzip_bytes"] == len(gzip.compress(data, 9, mtime=0))
  assert info["gzip_bytes"] < 0.4 * info["bytes"]
  dense = tf_compress.build_model("cnn", digits.input_shape,
                                  digits.num_classes, seed=0, keras_version=2)
  dense_info = export.inspect_tflite(export.convert_to_tflite(dense,
                                                              "float32"))
  # Random float32 weights hardly compress; the zeros do.
  assert dense_info["gzip_bytes"] > 0.85 * dense_info["bytes"]
  assert dense_info["nonzero_fraction"] > 0.99


def test_int8_keeps_zeros(sparse_cnn, sparse_exports):
  info = export.inspect_tflite(sparse_exports[1], per_tensor=True)
  kernels = [w for w in info["weights"] if w["role"] == "kernel"]
  assert {w["dtype"] for w in kernels} == {"int8"}
  size, nonzero = _kernel_counts(sparse_cnn)
  int8_nonzero = sum(w["nonzero"] for w in kernels)
  # Symmetric quantization maps 0 to 0; tiny weights may round to 0 too.
  assert 0.9 * nonzero <= int8_nonzero <= nonzero
  assert sum(w["size"] for w in kernels) == size
  for w in kernels:
    assert w["bytes"] == w["size"]  # one byte per int8 element
    assert w["unique"] <= 256


def test_per_tensor_entries(sparse_exports):
  info = export.inspect_tflite(sparse_exports[0], per_tensor=True)
  by_shape = {tuple(w["shape"]): w for w in info["weights"]}
  fc1 = by_shape[(128, 576)]
  assert fc1["dtype"] == "float32"
  assert fc1["role"] == "kernel"
  assert fc1["size"] == 128 * 576
  assert fc1["bytes"] == 4 * 128 * 576
  assert fc1["quantization"] is None
  assert "fc1" in fc1["name"]
  assert by_shape[(10,)]["role"] == "bias"
  assert info["weight_dtypes"] == {"float32": 8, "int32": 1}
  assert "weights" not in export.inspect_tflite(sparse_exports[0])
  assert json.loads(json.dumps(info, allow_nan=False)) == info


def test_path_and_bytes_agree(sparse_exports, tmp_path):
  path = tmp_path / "m.tflite"
  path.write_bytes(sparse_exports[0])
  assert (export.inspect_tflite(path) ==
          export.inspect_tflite(sparse_exports[0]))


def _corrupt(data, how):
  if how == "truncated":
    return data[:len(data) // 2]
  if how == "header_only":
    return data[:64]
  if how == "root_offset":
    return b"\xff\xff\xff\x7f" + data[4:]
  if how == "garbage":
    return np.random.default_rng(0).integers(0, 256, 4096,
                                             dtype=np.uint8).tobytes()
  if how == "empty":
    return b""
  if how == "text":
    return b"this is not a model\n" * 10
  raise ValueError(how)


@pytest.mark.parametrize(
    "how", ["truncated", "header_only", "root_offset", "garbage", "empty",
            "text"])
def test_corrupt_file_is_user_input_error(sparse_exports, tmp_path, how):
  path = tmp_path / f"{how}.tflite"
  path.write_bytes(_corrupt(sparse_exports[0], how))
  with pytest.raises(tf_compress.UserInputError) as info:
    export.inspect_tflite(path)
  assert str(path) in str(info.value)
  assert "not a valid TFLite model" in str(info.value)


def test_missing_file_is_user_input_error(tmp_path):
  with pytest.raises(tf_compress.UserInputError, match="does not exist"):
    export.inspect_tflite(tmp_path / "nope.tflite")
  with pytest.raises(tf_compress.UserInputError, match="got int"):
    export.inspect_tflite(3)
