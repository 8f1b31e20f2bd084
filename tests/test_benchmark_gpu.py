"""The GPU path: CompiledModel with the GPU accelerator, in a child process.

On a machine without a usable GPU (this project's), the result must say
`available: false` with the runtime's own reason, never CPU numbers, and
never crash. The measuring code itself is checked on a stand-in for
CompiledModel (fully accelerated or not), since no GPU is here to run it.
"""

import ctypes.util
import re

import numpy as np
import pytest

import tf_compress as tfc
from tf_compress import benchmark
from tf_compress import export
from tf_compress.benchmark import gpu
from tf_compress.benchmark import harness
from tf_compress.errors import UserInputError

LATENCY_KEYS = ("mean_ms", "p50_ms", "p99_ms", "count", "throughput_ips")

# What LiteRT 2.3.0 wrote to stderr on this project's machines (no GPU).
NO_GPU_LOG = "\n".join([
    "INFO: [environment.cc:36] Creating LiteRT environment with options",
    "INFO: [gpu_registry.cc:138] Dynamically loaded GPU accelerator"
    "(libLiteRtWebGpuAccelerator.so) registered.",
    "INFO: [compiled_model.cc:829] Flatbuffer model initialized directly "
    "from incoming litert model.",
    "INFO: [delegate_webgpu.cc:342] Create WebGPU environment "
    "(use_low_power=0, enable_host_mapped_pointer=1)",
    "Warning: Couldn't load Vulkan: libvulkan.so.1: cannot open shared "
    "object file: No such file or directory",
    "    at operator() (third_party/dawn/src/dawn/native/vulkan/"
    "BackendVk.cpp:368)",
    "",
    "ERROR: [delegate_webgpu.cc:359] Failed to initialize WebGPU "
    "environment: INTERNAL: No adapters found",
    "WARNING: Logging before InitGoogle() is written to STDERR",
    "E0000 00:00:1795958451.502894   15399 delegate_webgpu.cc:736] Failed "
    "to get or create delegate WebGPU environment: INTERNAL: Failed to "
    "initialize WebGPU environment",
    "=== Source Location Trace: ===",
    "third_party/odml/litert/ml_drift/delegate/delegate_webgpu.cc:432",
])
NO_GPU_EXCEPTION = ("ERROR: [./litert/cc/litert_compiled_model.h:1961]\n"
                    "└ ERROR: [litert/runtime/compiled_model.cc:1036]")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
  path = tmp_path_factory.mktemp("bench_gpu") / "float32.tflite"
  export.export_tflite(tfc.build_model("cnn", (8, 8, 1), 10, seed=0,
                                       keras_version=2),
                       str(path), "float32")
  return str(path)


def _no_vulkan_loader():
  return ctypes.util.find_library("vulkan") is None


def test_gpu_result_on_this_machine(model_path):
  report = benchmark.benchmark_model(model_path, num_threads=(),
                                     use_gpu=True, num_runs=5)
  (result,) = report["results"]
  assert result["backend"] == "gpu"
  if not result["available"]:
    # Never CPU numbers under a GPU label.
    assert not set(LATENCY_KEYS) & set(result)
    assert result["reason"] and "ERROR: [" not in result["reason"]
    if _no_vulkan_loader():
      assert "No adapters found" in result["reason"]
      assert "Couldn't load Vulkan" in result["reason"]
  else:  # A machine with a GPU.
    assert result["count"] == 5
    assert result["cpu_fallback"] is (not result["fully_accelerated"])


@pytest.mark.skipif(not _no_vulkan_loader(),
                    reason="a Vulkan loader is installed here")
def test_gpu_unavailable_beside_cpu_results(model_path):
  report = benchmark.benchmark_model(model_path, num_threads=(1,),
                                     use_gpu=True, num_runs=5)
  cpu_result, gpu_result = report["results"]
  assert cpu_result["backend"] == "cpu" and cpu_result["count"] == 5
  assert gpu_result == {
      "backend": "gpu", "available": False,
      "reason": gpu.failure_reason(NO_GPU_EXCEPTION, NO_GPU_LOG)}
  table = benchmark.format_report(report).splitlines()
  assert table[-1].startswith("GPU")
  assert "unavailable: Couldn't load Vulkan" in table[-1]


def test_failure_reason_quotes_the_runtime_log():
  assert gpu.failure_reason(NO_GPU_EXCEPTION, NO_GPU_LOG) == (
      "Couldn't load Vulkan: libvulkan.so.1: cannot open shared object file: "
      "No such file or directory; Failed to initialize WebGPU environment: "
      "INTERNAL: No adapters found; Failed to get or create delegate WebGPU "
      "environment: INTERNAL: Failed to initialize WebGPU environment")


def test_failure_reason_falls_back_to_the_exception():
  # A log with source locations only: the exception's text is all we have.
  only_locations = "ERROR: [litert/runtime/compiled_model.cc:1036]\n"
  assert gpu.failure_reason("RuntimeError: boom\n  detail", only_locations) == (
      "RuntimeError: boom detail")
  assert gpu.failure_reason("", "") == (
      "the GPU accelerator failed without a message")
  long_reason = gpu.failure_reason("", "ERROR: [a.cc:1] " + "x" * 1000)
  assert len(long_reason) == 400 and long_reason.endswith("...")


@pytest.mark.parametrize("code,payload,match", [
    (-11, {}, r"GPU runtime crashed \(SIGSEGV\).*No adapters found"),
    (None, {}, "did not finish within 7 s"),
    (4, {"error": "RuntimeError: no GPU"}, "No adapters found"),
    (3, {"error": "input 'x' has shape (4, 3) but the GPU model is compiled "
                  "for (1, 3)"}, r"^input 'x' has shape \(4, 3\)"),
], ids=["crash", "timeout", "gpu_error", "user_error"])
def test_gpu_child_failures_become_unavailable(monkeypatch, code, payload,
                                               match):
  monkeypatch.setattr(harness, "_run_child",
                      lambda *args: (code, payload, NO_GPU_LOG))
  # pylint: disable-next=protected-access
  result = harness._gpu_in_child("m.tflite", "m", {}, {}, 7)
  assert result["available"] is False
  assert set(result) == {"backend", "available", "reason"}
  assert re.search(match, result["reason"]), result["reason"]


def test_corrupt_file_never_reaches_compiled_model(model_path, monkeypatch):
  def no_child(*args):
    raise AssertionError("a child was started for a corrupt file")

  monkeypatch.setattr(harness, "_run_child", no_child)
  data = bytearray(open(model_path, "rb").read())
  data[4:8] = b"XXXX"  # the file identifier ("TFL3")
  with pytest.raises(UserInputError, match="not a valid TFLite model"):
    benchmark.benchmark_model(bytes(data), num_threads=(), use_gpu=True)
  with pytest.raises(UserInputError, match="not a valid TFLite model"):
    benchmark.benchmark_model(bytes(data[:3000]), num_threads=(),
                              use_gpu=True)


class _FakeBuffer:

  def __init__(self, shape, dtype="float32"):
    self.details = {"shape": list(shape), "dtype": dtype}
    self.written = None

  def write(self, array):
    self.written = np.array(array, copy=True)

  def get_tensor_details(self):
    return self.details

  def read(self, size, dtype):
    return np.zeros(size, dtype)


class _FakeCompiledModel:
  """Stands in for CompiledModel: two inputs, listed in reverse order."""

  def __init__(self, fully_accelerated):
    self.fully_accelerated = fully_accelerated
    self.runs = 0
    self.inputs = [_FakeBuffer((1, 2)), _FakeBuffer((1, 3))]

  def get_signature_list(self):
    return {"serving_default": {"inputs": ["b", "a"], "outputs": ["y"]}}

  def get_signature_index(self, key):
    assert key == "serving_default"
    return 0

  def get_input_tensor_details(self, key):
    del key
    return {"b": {"name": "tensor_b:0", "shape": [1, 2]},
            "a": {"name": "tensor_a:0", "shape": [1, 3]}}

  def is_fully_accelerated(self):
    return self.fully_accelerated

  def create_input_buffers(self, index):
    del index
    return self.inputs

  def create_output_buffers(self, index):
    del index
    return [_FakeBuffer((1, 10))]

  def run_by_index(self, index, inputs, outputs):
    del index, inputs, outputs
    self.runs += 1


@pytest.mark.parametrize("fully", [True, False], ids=["full", "fallback"])
def test_benchmark_gpu_measures_and_marks_fallback(monkeypatch, fully):
  # pylint: disable-next=g-import-not-at-top
  from ai_edge_litert import compiled_model
  fake = _FakeCompiledModel(fully)
  requested = []

  def from_file(path, hardware_accel=None):
    requested.append((path, hardware_accel))
    return fake

  monkeypatch.setattr(compiled_model.CompiledModel, "from_file",
                      staticmethod(from_file))
  arrays = {"tensor_a:0": np.full((1, 3), 3.0, np.float32),
            "tensor_b:0": np.full((1, 2), 2.0, np.float32)}
  result = gpu.benchmark_gpu("m.tflite", arrays, warmup_runs=2, num_runs=9)
  accel = compiled_model.HardwareAccelerator
  assert requested == [("m.tflite", accel.GPU | accel.CPU)]
  assert fake.runs == 11 and result["count"] == 9
  # Inputs are matched by tensor name, not by position.
  np.testing.assert_array_equal(fake.inputs[0].written, arrays["tensor_b:0"])
  np.testing.assert_array_equal(fake.inputs[1].written, arrays["tensor_a:0"])
  assert result["available"] is True
  assert result["fully_accelerated"] is fully
  assert result["cpu_fallback"] is (not fully)
  label = benchmark.format_report({"model": "m", "model_bytes": 1,
                                   "results": [result]}).splitlines()[-1]
  assert label.startswith("GPU (part CPU)" if not fully else "GPU ")


def test_benchmark_gpu_rejects_inputs_of_another_shape(monkeypatch):
  # pylint: disable-next=g-import-not-at-top
  from ai_edge_litert import compiled_model
  monkeypatch.setattr(compiled_model.CompiledModel, "from_file",
                      staticmethod(lambda path, hardware_accel=None:
                                   _FakeCompiledModel(True)))
  arrays = {"tensor_a:0": np.zeros((4, 3), np.float32),
            "tensor_b:0": np.zeros((1, 2), np.float32)}
  with pytest.raises(UserInputError, match=r"compiled for \(1, 3\)"):
    gpu.benchmark_gpu("m.tflite", arrays, num_runs=1)
