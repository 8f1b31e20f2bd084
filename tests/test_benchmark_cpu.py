"""CPU benchmarks: run counts, time budget, thread sweeps, XNNPACK, inputs
(random, quantized, .npy), memory, external delegates and the config.

One float32 and one int8 (int8 input/output) export of the digits-sized CNN
are shared by the module. A stub external delegate is compiled from C when a
compiler is available, to run the delegate path for real (including a
delegate that crashes, which must not take the test process down).
"""

import ctypes.util
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from ai_edge_litert import interpreter as litert_interpreter

import tf_compress as tfc
from tf_compress import benchmark
from tf_compress import export
from tf_compress.benchmark import harness
from tf_compress.errors import UserInputError

SHAPE = (1, 8, 8, 1)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
  """{"float32": path, "int8": path (int8 input and output)}."""
  tmp = tmp_path_factory.mktemp("bench_cpu")
  model = tfc.build_model("cnn", SHAPE[1:], 10, seed=0, keras_version=2)
  calibration = np.random.default_rng(0).uniform(0, 1, (64,) + SHAPE[1:])
  paths = {"float32": str(tmp / "float32.tflite"),
           "int8": str(tmp / "int8.tflite")}
  export.export_tflite(model, paths["float32"], "float32")
  export.export_tflite(model, paths["int8"], "int8",
                       representative_data=calibration.astype(np.float32),
                       int8_io=True)
  return paths


@pytest.fixture
def count_invokes(monkeypatch):
  """Counts every Interpreter.invoke() made in this process."""
  calls = []
  original = litert_interpreter.Interpreter.invoke

  def counting(self):
    calls.append(1)
    return original(self)

  monkeypatch.setattr(litert_interpreter.Interpreter, "invoke", counting)
  return calls


def _ordered(result):
  return (result["min_ms"] <= result["p50_ms"] <= result["p90_ms"] <=
          result["p99_ms"] <= result["max_ms"])


def test_run_count_is_honoured(models, count_invokes):
  report = benchmark.benchmark_model(models["float32"], isolate=False,
                                     warmup_runs=3, num_runs=17)
  (result,) = report["results"]
  assert len(count_invokes) == 20  # 3 warm-up + 17 timed, nothing else
  assert result["count"] == 17 and result["warmup_runs"] == 3
  assert result["stopped_by"] == "num_runs"
  assert _ordered(result)
  assert result["throughput_ips"] == pytest.approx(
      1e3 / result["mean_ms"], rel=1e-9)


def test_max_secs_stops_early(models, count_invokes):
  report = benchmark.benchmark_model(models["float32"], isolate=False,
                                     warmup_runs=0, num_runs=10**7,
                                     max_secs=0.2)
  (result,) = report["results"]
  assert result["stopped_by"] == "max_secs"
  assert result["count"] == len(count_invokes) < 10**7
  total_ms = result["mean_ms"] * result["count"]
  # Stopped by the first run that brought the total to 0.2 s.
  assert total_ms >= 200.0
  assert total_ms - result["max_ms"] < 200.0


def test_thread_sweep_gives_one_isolated_result_per_count(models):
  report = benchmark.benchmark_model(models["float32"], num_threads=[1, 2, 3],
                                     num_runs=5, warmup_runs=1)
  results = report["results"]
  assert [r["num_threads"] for r in results] == [1, 2, 3]
  for result in results:
    assert result["backend"] == "cpu" and result["delegate"] == "xnnpack"
    assert result["count"] == 5 and result["warmup_runs"] == 1
    assert result["delegate_partitions"] == 1 and result["model_ops"] == 6
    assert result["init_ms"] > 0 and _ordered(result)
    # Measured in a fresh child: loading the model and XNNPACK's packed
    # weights raise the peak RSS measurably.
    assert result["memory_method"] == "VmHWM"
    assert 0.1 < result["peak_memory_delta_mb"] < 200
  assert report["model_bytes"] == os.path.getsize(models["float32"])
  assert report["config"]["num_threads"] == (1, 2, 3)


def test_without_xnnpack_runs_builtin_kernels(models):
  with_xnnpack = benchmark.benchmark_model(models["float32"], isolate=False,
                                           num_runs=3)["results"][0]
  builtin = benchmark.benchmark_model(models["float32"], isolate=False,
                                      use_xnnpack=False,
                                      num_runs=3)["results"][0]
  assert builtin["delegate"] == "none"
  assert builtin["delegate_partitions"] == 0 and builtin["model_ops"] == 6
  assert with_xnnpack["delegate_partitions"] == 1


def test_int8_model_gets_hand_quantized_inputs(models, monkeypatch):
  fed = []
  original = litert_interpreter.Interpreter.set_tensor

  def recording(self, index, value):
    fed.append(np.array(value, copy=True))
    return original(self, index, value)

  monkeypatch.setattr(litert_interpreter.Interpreter, "set_tensor",
                      recording)
  report = benchmark.benchmark_model(models["int8"], isolate=False, seed=7,
                                     num_runs=2)
  detail = litert_interpreter.Interpreter(
      model_path=models["int8"]).get_input_details()[0]
  scale, zero_point = detail["quantization"]
  assert detail["dtype"] == np.int8 and scale > 0
  low, high = (-128 - zero_point) * scale, (127 - zero_point) * scale
  x = np.random.default_rng(7).uniform(low, high, size=SHAPE)
  expected = np.clip(np.round(x / scale + zero_point), -128, 127)
  assert len(fed) == 1
  assert fed[0].dtype == np.int8
  np.testing.assert_array_equal(fed[0], expected.astype(np.int8))
  assert fed[0].min() < -100 and fed[0].max() > 100  # the whole range
  (info,) = report["inputs"]
  assert info["quantization"] == [pytest.approx(scale), zero_point]
  assert info["value_range"] == [pytest.approx(low), pytest.approx(high)]
  # Calibrated on [0, 1) data, the input's range is about [0, 1].
  assert low == pytest.approx(0.0, abs=0.01)
  assert high == pytest.approx(1.0, abs=0.01)


def test_random_inputs_are_seeded_floats_in_unit_range(models):
  details = litert_interpreter.Interpreter(
      model_path=models["float32"]).get_input_details()
  a, info = benchmark.make_inputs(details, seed=3)
  b, _ = benchmark.make_inputs(details, seed=3)
  c, _ = benchmark.make_inputs(details, seed=4)
  (name,) = a
  assert a[name].dtype == np.float32 and a[name].shape == SHAPE
  assert 0.0 <= a[name].min() and a[name].max() < 1.0
  np.testing.assert_array_equal(a[name], b[name])
  assert not np.array_equal(a[name], c[name])
  assert info[0]["source"] == "random(seed=3)"
  assert info[0]["quantization"] is None


def test_input_npy_sample_is_quantized_for_int8(models, tmp_path):
  sample = np.random.default_rng(1).uniform(0, 1, SHAPE[1:])
  np.save(tmp_path / "x.npy", sample)
  detail = litert_interpreter.Interpreter(
      model_path=models["int8"]).get_input_details()[0]
  arrays, info = benchmark.make_inputs([detail],
                                       input_npy=str(tmp_path / "x.npy"))
  scale, zero_point = detail["quantization"]
  expected = np.clip(np.round(sample / scale + zero_point), -128, 127)
  np.testing.assert_array_equal(arrays[detail["name"]],
                                expected[None].astype(np.int8))
  assert info[0]["source"] == f"npy:{tmp_path / 'x.npy'}"
  assert info[0]["shape"] == list(SHAPE)


def test_input_npy_batch_resizes_the_input(models, tmp_path):
  np.save(tmp_path / "batch.npy",
          np.zeros((4,) + SHAPE[1:], dtype=np.float32))
  report = benchmark.benchmark_model(
      models["float32"], input_npy=str(tmp_path / "batch.npy"), num_runs=3)
  assert report["inputs"][0]["shape"] == [4, 8, 8, 1]
  assert report["results"][0]["count"] == 3


@pytest.mark.parametrize("content,match", [
    ("wrong_shape", r"shape \(8, 8, 3\) but model input .* expects "
                    r"\(None, 8, 8, 1\)"),
    ("missing", "does not exist"),
    ("not_npy", "is not a numpy .npy array"),
    ("int_out_of_range", "outside the int8 range"),
], ids=["wrong_shape", "missing", "not_npy", "int_out_of_range"])
def test_input_npy_errors(models, tmp_path, content, match):
  path = tmp_path / "x.npy"
  if content == "wrong_shape":
    np.save(path, np.zeros((8, 8, 3), dtype=np.float32))
  elif content == "not_npy":
    path.write_bytes(b"definitely not numpy")
  elif content == "int_out_of_range":
    np.save(path, np.full(SHAPE[1:], 300, dtype=np.int32))
  with pytest.raises(UserInputError, match=match):
    benchmark.benchmark_model(models["int8"], input_npy=str(path))


def test_peak_memory_sees_native_allocations():
  assert harness.reset_peak_memory()  # Linux: the peak can be reset
  before, method = harness.peak_memory_kb()
  block = np.ones(64 * 2**20, dtype=np.uint8)  # touched: resident
  after, _ = harness.peak_memory_kb()
  del block
  assert method == "VmHWM"
  assert after - before >= 60 * 1024


def test_corrupt_and_missing_models_raise(models, tmp_path):
  truncated = tmp_path / "truncated.tflite"
  truncated.write_bytes(open(models["float32"], "rb").read()[:5000])
  with pytest.raises(UserInputError, match="not a valid TFLite model"):
    benchmark.benchmark_model(str(truncated))
  with pytest.raises(UserInputError, match="does not exist"):
    benchmark.benchmark_model(str(tmp_path / "nope.tflite"))


# ------------------------------------------------------- external delegates

STUB_DELEGATE_C = r"""
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
/* The layout of TfLiteDelegate (tensorflow/lite/core/c/common.h). */
typedef struct Delegate {
  void* data_;
  int (*Prepare)(void* context, struct Delegate* delegate);
  void* copy_from_buffer_handle;
  void* copy_to_buffer_handle;
  void* free_buffer_handle;
  int64_t flags;
  void* opaque_delegate_builder;
} Delegate;
/* Takes no node: the model runs as it would without the delegate. */
static int prepare(void* context, Delegate* delegate) { return 0; }
static int crash(void* context, Delegate* delegate) {
  *(volatile int*)0 = 1;
  return 0;
}
Delegate* tflite_plugin_create_delegate(char** keys, char** values,
                                        size_t n, void (*report)(const char*)) {
  Delegate* d = calloc(1, sizeof(Delegate));
  d->Prepare = prepare;
  for (size_t i = 0; i < n; ++i) {
    if (strcmp(keys[i], "fail") == 0) {
      report("stub delegate refuses");
      free(d);
      return NULL;
    }
    if (strcmp(keys[i], "crash") == 0) d->Prepare = crash;
  }
  return d;
}
void tflite_plugin_destroy_delegate(Delegate* d) { free(d); }
"""


@pytest.fixture(scope="module")
def stub_delegate(tmp_path_factory):
  compiler = shutil.which("cc") or shutil.which("gcc")
  if compiler is None:
    pytest.skip("no C compiler to build the stub delegate")
  tmp = tmp_path_factory.mktemp("delegate")
  (tmp / "stub.c").write_text(STUB_DELEGATE_C)
  subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-o",
                  str(tmp / "libstub_delegate.so"), str(tmp / "stub.c")],
                 check=True, capture_output=True, timeout=120)
  return str(tmp / "libstub_delegate.so")


@pytest.mark.parametrize("isolate", [True, False], ids=["child", "inproc"])
def test_external_delegate_runs(models, stub_delegate, isolate):
  report = benchmark.benchmark_model(models["float32"],
                                     delegate_path=stub_delegate,
                                     num_threads=[1, 2], num_runs=4,
                                     isolate=isolate)
  assert [r["delegate"] for r in report["results"]] == ["external"] * 2
  assert report["results"][0]["delegate_path"] == stub_delegate
  assert [r["count"] for r in report["results"]] == [4, 4]
  assert "CPU/libstub_delegate.so" in benchmark.format_report(report)


@pytest.mark.parametrize("isolate", [True, False], ids=["child", "inproc"])
def test_external_delegate_refusing_options(models, stub_delegate, isolate):
  with pytest.raises(UserInputError,
                     match="did not create a delegate.*stub delegate refuses"):
    benchmark.benchmark_model(models["float32"], delegate_path=stub_delegate,
                              delegate_options={"fail": "1"},
                              isolate=isolate)


def test_crashing_delegate_does_not_kill_the_caller(models, stub_delegate):
  with pytest.raises(UserInputError, match=r"crashed \(SIGSEGV\)"):
    benchmark.benchmark_model(models["float32"], delegate_path=stub_delegate,
                              delegate_options={"crash": "1"}, num_runs=2)


@pytest.mark.parametrize("isolate", [True, False], ids=["child", "inproc"])
@pytest.mark.parametrize("library,match", [
    ("missing", "does not exist"),
    ("empty", "is empty"),
    ("text", "cannot load delegate library"),
    ("libc", "not a TFLite external delegate: it does not export "
             "tflite_plugin_create_delegate"),
], ids=["missing", "empty", "text", "libc"])
def test_bad_delegate_library(models, tmp_path, library, match, isolate):
  if library == "missing":
    path = str(tmp_path / "libnothing.so")
  elif library == "empty":
    path = str(tmp_path / "empty.so")
    open(path, "wb").close()
  elif library == "text":
    path = str(tmp_path / "text.so")
    with open(path, "w", encoding="ascii") as f:
      f.write("not a shared library\n")
  else:
    path = ctypes.util.find_library("c")
    path = path if path and os.path.isabs(path) else _libc_path()
  with pytest.raises(UserInputError, match=match):
    benchmark.benchmark_model(models["float32"], delegate_path=path,
                              num_runs=2, isolate=isolate)


def _libc_path():
  """The loaded libc's path (find_library gives only the soname on Linux)."""
  with open("/proc/self/maps", encoding="ascii", errors="replace") as f:
    for line in f:
      path = line.split()[-1]
      if "/libc.so" in path or "/libc-" in path:
        return path
  pytest.skip("libc not found in /proc/self/maps")


# ----------------------------------------------------------------- config


@pytest.mark.parametrize("kwargs,match", [
    ({"num_threads": (0,)}, "num_threads"),
    ({"num_threads": (1.5,)}, "num_threads"),
    ({"num_threads": "2"}, "num_threads"),
    ({"num_threads": ()}, "nothing to benchmark"),
    ({"num_runs": 0}, "num_runs"),
    ({"max_secs": -1.0}, "max_secs"),
    ({"delegate_options": {"a": "b"}}, "needs a delegate_path"),
    ({"seed": -1}, "seed"),
], ids=["zero_threads", "float_threads", "str_threads", "no_threads",
        "zero_runs", "neg_secs", "options_no_path", "neg_seed"])
def test_config_rejects_bad_values(kwargs, match):
  with pytest.raises(UserInputError, match=match):
    benchmark.BenchmarkConfig(**kwargs)


def test_config_normalises_and_overrides(models):
  assert benchmark.BenchmarkConfig(num_threads=2).num_threads == (2,)
  assert benchmark.BenchmarkConfig(num_threads=[1, 4]).num_threads == (1, 4)
  gpu_only = benchmark.BenchmarkConfig(num_threads=(), use_gpu=True)
  assert gpu_only.num_threads == ()
  config = benchmark.BenchmarkConfig(num_runs=7, warmup_runs=0)
  # None overrides are ignored; 0 is a real value.
  report = benchmark.benchmark_model(models["float32"], config,
                                     isolate=False, num_runs=None,
                                     warmup_runs=0, seed=0)
  assert report["results"][0]["count"] == 7
  assert report["results"][0]["warmup_runs"] == 0
  with pytest.raises(UserInputError, match=r"unknown benchmark option"):
    benchmark.benchmark_model(models["float32"], num_run=3)
  with pytest.raises(UserInputError, match="timeout_s"):
    benchmark.benchmark_model(models["float32"], timeout_s=0)


def test_children_start_without_tensorflow():
  # The bootstrap's stand-ins for the packages, then this probe.
  # pylint: disable-next=protected-access
  stubs = harness._BOOTSTRAP.split("from tf_compress.benchmark")[0]
  probe = stubs + (
      "from tf_compress.benchmark import harness\n"
      "print(sorted(m for m in ('tensorflow', 'tf_keras', 'keras') "
      "if m in sys.modules))\n")
  root = os.path.dirname(os.path.dirname(os.path.abspath(harness.__file__)))
  out = subprocess.run([sys.executable, "-c", probe, os.path.dirname(root)],
                       capture_output=True, text=True, timeout=120,
                       check=True).stdout
  assert out.strip() == "[]"
