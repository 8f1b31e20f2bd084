"""`benchmark_model`: the benchmark of one TFLite file, the benchmark_model way.

For each model: the file is read and run through LiteRT's flatbuffer
verifier (a corrupt, truncated or non-TFLite file raises `UserInputError`
before anything else touches it); inputs are made (seeded random data of the
model's own shapes and dtypes, or a .npy file); then one CPU result per
thread count and, if asked, one GPU result.

Isolation. A file that passes the verifier can still crash LiteRT (SIGSEGV)
when it runs, and `CompiledModel` does not verify at all. So each CPU result
is measured in a child process by default (`isolate=True`), and the GPU
result always is: a crash becomes a `UserInputError` (CPU) or `available:
false` (GPU) in the caller, and each result starts from a clean process, as
with the `benchmark_model` binary. The children start without TensorFlow
(about 0.3 s): the bootstrap puts stand-ins for the `tf_compress`,
`tf_compress.export` and `tf_compress.benchmark` packages in `sys.modules`,
so their `__init__` files do not run, and imports the modules it needs by
their real paths. Those modules must import only numpy, `ai_edge_litert`,
the standard library and such light modules.

Memory. `peak_memory_delta_mb` is the increase of the process's peak
resident set size (`VmHWM` in /proc/self/status) over the benchmark (model
load, delegate, tensors, all runs), native allocations included, which
tracemalloc would miss. The peak is first reset to the current size (5
written to /proc/self/clear_refs), so the figure is exact in a child and
in-process alike. Where that is impossible, `getrusage().ru_maxrss` is used:
it cannot be reset, so in a process that had already peaked higher the
increase reads as 0, a lower bound (`memory_method` says which was used).
"""

import dataclasses
import json
import numbers
import os
import signal
import subprocess
import sys
import tempfile
from typing import Optional, Tuple

import numpy as np

from tf_compress.benchmark import cpu
from tf_compress.benchmark import gpu
from tf_compress.benchmark import timing
from tf_compress.errors import UserInputError
from tf_compress.export import litert

__all__ = ["BenchmarkConfig", "benchmark_model", "make_inputs",
           "peak_memory_kb", "reset_peak_memory", "worker_main"]

FLOAT_INPUT_RANGE = (0.0, 1.0)
# The most bytes of random inputs made for one tensor: a damaged file can
# claim an input of terabytes.
MAX_RANDOM_INPUT_BYTES = 1 << 28


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
  """How to benchmark a model; the CLI's flags map onto these fields.

  Attributes:
    num_threads: CPU thread counts to sweep, one CPU result each (an int is
      taken as one count). May be empty with `use_gpu` for a GPU-only run.
    use_xnnpack: apply LiteRT's default XNNPACK delegate on the CPU; False
      uses the built-in kernels only (for comparison).
    use_gpu: also benchmark LiteRT's GPU accelerator (a result saying
      `available: false` and why, where no GPU can be used).
    delegate_path: a TFLite external delegate library applied to the CPU
      runs, or None (XNNPACK, unless disabled, takes what it leaves).
    delegate_options: that delegate's options (str keys and values).
    input_npy: a .npy file of inputs for a single-input model, or None for
      seeded random inputs.
    warmup_runs: untimed runs before the timed ones.
    num_runs: timed runs; None to run until `max_secs`.
    max_secs: time budget of the timed runs, in seconds; None for none.
    seed: seed of the random inputs.

  Example:
    >>> config = BenchmarkConfig(num_threads=(1, 2), num_runs=100)
    >>> report = benchmark_model("model.tflite", config)
  """
  num_threads: Tuple[int, ...] = (1,)
  use_xnnpack: bool = True
  use_gpu: bool = False
  delegate_path: Optional[str] = None
  delegate_options: Optional[dict] = None
  input_npy: Optional[str] = None
  warmup_runs: int = 1
  num_runs: Optional[int] = 50
  max_secs: Optional[float] = None
  seed: int = 0

  def __post_init__(self):
    threads = self.num_threads
    if isinstance(threads, numbers.Integral) and not isinstance(threads, bool):
      threads = (threads,)
    try:
      threads = tuple(threads)
    except TypeError:
      threads = None
    if threads is None or any(
        isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 1
        for t in threads):
      raise UserInputError(
          "BenchmarkConfig.num_threads must be thread counts >= 1 such as "
          f"(1, 2), got {self.num_threads!r}.")
    object.__setattr__(self, "num_threads", tuple(int(t) for t in threads))
    if not threads and not self.use_gpu:
      raise UserInputError(
          "BenchmarkConfig.num_threads is empty and use_gpu is False, so "
          "there is nothing to benchmark; give a thread count such as (1,).")
    timing.check_run_counts(self.warmup_runs, self.num_runs, self.max_secs)
    if self.delegate_options is not None and (
        not isinstance(self.delegate_options, dict) or not self.delegate_path):
      raise UserInputError(
          "BenchmarkConfig.delegate_options must be a dict and needs a "
          f"delegate_path, got {self.delegate_options!r} with delegate_path "
          f"{self.delegate_path!r}.")
    if isinstance(self.seed, bool) or not isinstance(
        self.seed, numbers.Integral) or self.seed < 0:
      raise UserInputError(
          f"BenchmarkConfig.seed must be an integer >= 0, got {self.seed!r}.")


# ---------------------------------------------------------------- inputs


def _quantization(detail):
  scale, zero_point = detail.get("quantization", (0.0, 0))
  return float(scale), int(zero_point)


def _random_input(detail, rng):
  """Seeded data of the tensor's shape and dtype, and what it covers."""
  dtype = np.dtype(detail["dtype"])
  shape = tuple(int(d) for d in detail["shape"])
  if any(d < 0 for d in shape) or (
      np.prod(shape, dtype=np.float64) * dtype.itemsize >
      MAX_RANDOM_INPUT_BYTES):
    raise UserInputError(
        f"model input '{detail['name']}' has shape {list(shape)}, which "
        f"is negative or over {MAX_RANDOM_INPUT_BYTES >> 20} MiB of "
        f"{dtype.name}; the file is damaged (export it again), or give "
        "inputs with input_npy.")
  scale, zero_point = _quantization(detail)
  if np.issubdtype(dtype, np.floating):
    x = rng.uniform(*FLOAT_INPUT_RANGE, size=shape)
    return x.astype(dtype), list(FLOAT_INPUT_RANGE)
  if np.issubdtype(dtype, np.integer) and scale != 0.0:
    # Float data over the range the quantized tensor represents, quantized
    # with the tensor's own scale and zero point.
    info = np.iinfo(dtype)
    low = (info.min - zero_point) * scale
    high = (info.max - zero_point) * scale
    x = rng.uniform(low, high, size=shape)
    return litert.quantize_input(x, detail), [low, high]
  if dtype == np.bool_:
    return rng.integers(0, 2, size=shape).astype(np.bool_), [0, 1]
  if np.issubdtype(dtype, np.integer):
    return rng.integers(0, 10, size=shape).astype(dtype), [0, 9]
  raise UserInputError(
      f"model input '{detail['name']}' has dtype {dtype.name}, for which no "
      "random inputs can be made; give inputs with input_npy.")


def _load_npy(path, detail):
  """The .npy file's array, checked against the input tensor and converted."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise UserInputError(
        f"input_npy file '{path}' does not exist or is not a file.")
  try:
    array = np.load(path, allow_pickle=False)
  except (OSError, ValueError, EOFError) as e:
    raise UserInputError(
        f"input_npy file '{path}' is not a numpy .npy array "
        f"({' '.join(str(e).split())}); save one with numpy.save.") from e
  if not isinstance(array, np.ndarray):
    raise UserInputError(
        f"input_npy file '{path}' holds several arrays (.npz); give a .npy "
        "file with one array.")
  signature = tuple(int(d) for d in detail["shape_signature"])
  original_shape = array.shape
  if array.ndim == len(signature) - 1:
    array = array[None]  # One sample: add the batch axis.
  fits = array.ndim == len(signature) and all(
      s in (-1, a) for s, a in zip(signature, array.shape))
  expected = tuple(None if s == -1 else s for s in signature)
  if not fits or array.size == 0:
    raise UserInputError(
        f"input_npy file '{path}' holds an array of shape {original_shape} "
        f"but model input '{detail['name']}' expects {expected} (or one "
        f"sample of shape {expected[1:]}); save an array of that shape.")
  dtype = np.dtype(detail["dtype"])
  if np.issubdtype(dtype, np.integer) and np.issubdtype(array.dtype,
                                                       np.integer):
    # Integer data for an integer tensor is taken as already quantized.
    info = np.iinfo(dtype)
    if array.min() < info.min or array.max() > info.max:
      raise UserInputError(
          f"input_npy file '{path}' holds integers in [{array.min()}, "
          f"{array.max()}], outside the {dtype.name} range of model input "
          f"'{detail['name']}'; save float data to have it quantized.")
    return array.astype(dtype)
  if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
    raise UserInputError(
        f"input_npy file '{path}' holds {array.dtype} data; save numbers.")
  return litert.quantize_input(array.astype(np.float64), detail)


def make_inputs(input_details, seed=0, input_npy=None):
  """Makes the benchmark's input arrays, in each tensor's own dtype.

  Random inputs (seeded): float tensors get uniform values in
  `FLOAT_INPUT_RANGE` ([0, 1), the range tf_compress scales inputs to);
  quantized integer tensors get uniform float values over the range the
  tensor represents (`(qmin - zero_point) * scale` to `(qmax - zero_point) *
  scale`), quantized with `tf_compress.export.litert.quantize_input`; other
  integer tensors get integers in [0, 9], booleans 0/1.

  From `input_npy` (single-input models): one sample of the per-sample shape
  (a batch axis is added) or a batch whose fixed dimensions match the
  model's; float data are quantized for quantized inputs, integer data for
  integer inputs are used as they are.

  Args:
    input_details: the interpreter's `get_input_details()`.
    seed: seed of the random inputs.
    input_npy: a .npy file path, or None.

  Returns:
    `(arrays, info)`: a dict from input tensor name to its array, and a list
    with one dict per input (`name`, `shape`, `dtype`, `quantization`
    `[scale, zero_point]` or None, `source`, and `value_range` for random
    data).

  Raises:
    UserInputError: for a .npy file that is missing, unreadable or of the
      wrong shape, `input_npy` with a multi-input model, or an input dtype
      or shape (negative, over `MAX_RANDOM_INPUT_BYTES`) that random inputs
      cannot be made for.
  """
  if input_npy is not None and len(input_details) != 1:
    raise UserInputError(
        f"the model has {len(input_details)} inputs, but input_npy feeds "
        "single-input models only; leave it out to use random inputs.")
  rng = np.random.default_rng(seed)
  arrays, info = {}, []
  for detail in input_details:
    scale, zero_point = _quantization(detail)
    entry = {
        "name": detail["name"],
        "dtype": np.dtype(detail["dtype"]).name,
        "quantization": [scale, zero_point] if scale != 0.0 else None,
    }
    if input_npy is not None:
      array = _load_npy(input_npy, detail)
      entry["source"] = f"npy:{os.fspath(input_npy)}"
    else:
      array, value_range = _random_input(detail, rng)
      entry["source"] = f"random(seed={seed})"
      entry["value_range"] = [float(v) for v in value_range]
    entry["shape"] = [int(d) for d in array.shape]
    arrays[detail["name"]] = np.ascontiguousarray(array)
    info.append(entry)
  return arrays, info


# ---------------------------------------------------------------- memory


def reset_peak_memory():
  """Resets the peak RSS (`VmHWM`) to the current RSS; False if impossible."""
  try:
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
      f.write("5")
    return True
  except OSError:
    return False


def _status_kb(field):
  try:
    with open("/proc/self/status", encoding="ascii") as f:
      for line in f:
        if line.startswith(field + ":"):
          return int(line.split()[1])
  except (OSError, ValueError, IndexError):
    pass
  return None


def peak_memory_kb():
  """`(peak_kb, method)`: this process's peak RSS and how it was read."""
  peak = _status_kb("VmHWM")
  if peak is not None:
    return peak, "VmHWM"
  import resource  # pylint: disable=g-import-not-at-top
  usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  # ru_maxrss is in KiB on Linux, in bytes on macOS.
  return (usage // 1024 if sys.platform == "darwin" else usage), "ru_maxrss"


def _with_memory(function):
  """Runs `function()`; adds the peak-memory increase to its result dict."""
  exact = reset_peak_memory()
  before, method = peak_memory_kb()
  result = function()
  after, _ = peak_memory_kb()
  result["peak_memory_delta_mb"] = max(after - before, 0) / 1024.0
  result["memory_method"] = method if exact else method + " (lower bound)"
  return result


# ---------------------------------------------------------------- children

# Run with `python -c`: stand-ins for the packages whose __init__ imports
# TensorFlow, then this module by its real path (see the module docstring).
_BOOTSTRAP = """\
import os, sys, types
root = sys.argv[1]
for name in ("tf_compress", "tf_compress.export", "tf_compress.benchmark"):
  module = types.ModuleType(name)
  module.__path__ = [os.path.join(root, *name.split("."))]
  sys.modules[name] = module
from tf_compress.benchmark import harness
sys.exit(harness.worker_main(sys.argv[2:]))
"""
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
_USER_ERROR, _GPU_ERROR = 3, 4


def _write_json(path, obj):
  with open(path, "w", encoding="utf-8") as f:
    json.dump(obj, f)


def worker_main(argv):
  """Entry point of a benchmark child process.

  Args:
    argv: the path of the task's JSON file (kind, model path, inputs path,
      result path, keyword arguments).

  Returns:
    The exit status: 0 with the result written; 3 for a `UserInputError` or
    a LiteRT error (message written); 4 when the GPU accelerator could not
    be used (the exception's text written; the runtime's log is on stderr).
  """
  with open(argv[0], encoding="utf-8") as f:
    task = json.load(f)
  with np.load(task["inputs_path"]) as npz:
    arrays = {name: npz[f"arr_{i}"] for i, name in enumerate(task["names"])}
  try:
    if task["kind"] == "gpu":
      try:
        result = _with_memory(lambda: gpu.benchmark_gpu(
            task["model_path"], arrays, **task["kwargs"]))
      except (RuntimeError, ValueError) as e:
        if isinstance(e, UserInputError):
          raise
        _write_json(task["result_path"], {"error": f"{e}"})
        return _GPU_ERROR
    else:
      data, name = litert.read_model_bytes(task["model_path"])
      result = _with_memory(lambda: cpu.benchmark_cpu(
          data, task["name"] or name, arrays, **task["kwargs"]))
  except UserInputError as e:
    _write_json(task["result_path"], {"error": str(e)})
    return _USER_ERROR
  _write_json(task["result_path"], {"result": result})
  return 0


def _signal_name(returncode):
  try:
    return signal.Signals(-returncode).name
  except ValueError:
    return f"signal {-returncode}"


def _run_child(kind, model_path, name, arrays, kwargs, timeout_s):
  """Runs one benchmark in a child; returns (returncode, payload, stderr).

  `returncode` is None when the child was killed after `timeout_s`.
  """
  with tempfile.TemporaryDirectory(prefix="tfc_bench_") as tmp:
    inputs_path = os.path.join(tmp, "inputs.npz")
    np.savez(inputs_path, *arrays.values())
    task = {"kind": kind, "model_path": model_path, "name": name,
            "names": list(arrays), "inputs_path": inputs_path,
            "result_path": os.path.join(tmp, "result.json"),
            "kwargs": kwargs}
    task_path = os.path.join(tmp, "task.json")
    _write_json(task_path, task)
    command = [sys.executable, "-c", _BOOTSTRAP, _PACKAGE_ROOT, task_path]
    try:
      process = subprocess.run(command, capture_output=True, text=True,
                               errors="replace", timeout=timeout_s,
                               check=False)
    except subprocess.TimeoutExpired:
      return None, {}, ""
    try:
      with open(task["result_path"], encoding="utf-8") as f:
        payload = json.load(f)
    except (OSError, ValueError):
      payload = {}  # None written, or cut short by a crash.
    return process.returncode, payload, process.stderr


def _in_child(kind, failed, model_path, name, arrays, kwargs, timeout_s):
  """One benchmark's result from a child, or `failed(...)`'s when it failed.

  `failed(name, returncode, payload, stderr, timeout_s)` raises or returns
  the result to report instead.
  """
  code, payload, stderr = _run_child(kind, model_path, name, arrays, kwargs,
                                     timeout_s)
  if code == 0:
    return payload["result"]
  return failed(name, code, payload, stderr, timeout_s)


def _cpu_failure(name, code, payload, stderr, timeout_s):
  """Raises the `UserInputError` that says why a CPU child failed."""
  if code is None:
    raise UserInputError(
        f"LiteRT did not finish benchmarking {name} within {timeout_s} s; "
        "the file may be damaged (export it again), or lower num_runs.")
  if code < 0:
    raise UserInputError(
        f"LiteRT crashed ({_signal_name(code)}) running {name}: the file "
        "passes the flatbuffer verifier but its contents are inconsistent "
        "(damaged bytes?), or the delegate crashed; export it again.")
  if "error" in payload:
    raise UserInputError(payload["error"])
  lines = [line for line in stderr.splitlines() if line.strip()]
  raise UserInputError(
      f"benchmarking {name} failed: "
      f"{lines[-1] if lines else f'exit status {code}'}.")


def _gpu_failure(name, code, payload, stderr, timeout_s):
  """The `available: false` result that says why a GPU child failed."""
  del name  # The GPU result does not name the model.
  if code is None:
    return gpu.unavailable(
        f"the GPU benchmark did not finish within {timeout_s} s.")
  if code < 0:
    return gpu.unavailable(
        f"the GPU runtime crashed ({_signal_name(code)}) with this model; "
        f"runtime log: {gpu.failure_reason('', stderr)}")
  if code == _USER_ERROR and "error" in payload:
    return gpu.unavailable(payload["error"])  # e.g. inputs that do not fit
  return gpu.unavailable(gpu.failure_reason(payload.get("error", ""), stderr))


def _cpu_in_child(model_path, name, arrays, kwargs, timeout_s):
  return _in_child("cpu", _cpu_failure, model_path, name, arrays, kwargs,
                   timeout_s)


def _gpu_in_child(model_path, name, arrays, kwargs, timeout_s):
  return _in_child("gpu", _gpu_failure, model_path, name, arrays, kwargs,
                   timeout_s)


def benchmark_model(model, config=None, *, isolate=True, timeout_s=600,
                    **overrides):
  """Benchmarks one TFLite model on the CPU (thread sweep) and the GPU.

  Args:
    model: a .tflite file path or the model's bytes.
    config: a `BenchmarkConfig`; None for the defaults.
    isolate: measure each CPU result in a child process (crash-safe, clean
      memory figures). False measures in this process; the GPU result is
      always measured in a child.
    timeout_s: seconds before a child is killed.
    **overrides: `BenchmarkConfig` fields, applied when not None.

  Returns:
    A JSON-safe report: `model` (the path or a description of the bytes),
    `model_bytes`, `inputs` (see `make_inputs`), `config` (the fields of the
    config), and `results`: one dict per CPU thread count (see
    `cpu.benchmark_cpu`), then the GPU's (see `gpu.benchmark_gpu`, or
    `{"backend": "gpu", "available": False, "reason": ...}`). Measured
    results also hold `peak_memory_delta_mb` and `memory_method`.

  Raises:
    UserInputError: for a missing, empty, corrupt, truncated or non-TFLite
      file, bad config values, an input file that does not fit, a delegate
      library that cannot be used, or a model that LiteRT fails or crashes
      running on the CPU.
  """
  config = config if config is not None else BenchmarkConfig()
  if not isinstance(config, BenchmarkConfig):
    raise UserInputError(
        f"config must be a BenchmarkConfig, got {type(config).__name__}.")
  unknown = sorted(set(overrides) - {f.name for f in
                                     dataclasses.fields(BenchmarkConfig)})
  if unknown:
    raise UserInputError(
        f"unknown benchmark option(s) {unknown}; see BenchmarkConfig.")
  config = dataclasses.replace(
      config, **{k: v for k, v in overrides.items() if v is not None})
  if (isinstance(timeout_s, bool) or not isinstance(timeout_s, numbers.Real)
      or not timeout_s > 0):
    raise UserInputError(
        f"timeout_s must be a number of seconds > 0, got {timeout_s!r}.")
  data, name = litert.read_model_bytes(model)
  litert.verify_flatbuffer(data, name)
  interpreter, _ = litert.load_interpreter(data, default_delegates=False)
  arrays, input_info = make_inputs(interpreter.get_input_details(),
                                   config.seed, config.input_npy)
  del interpreter
  if config.delegate_path:
    # Fail fast on a bad path; the library is loaded where it runs.
    cpu.check_delegate_library(config.delegate_path, load=not isolate)
  runs = {"warmup_runs": config.warmup_runs, "num_runs": config.num_runs,
          "max_secs": config.max_secs}
  with tempfile.TemporaryDirectory(prefix="tfc_bench_model_") as tmp:
    if isinstance(model, (str, os.PathLike)):
      model_path = os.path.abspath(os.fspath(model))
    else:
      model_path = os.path.join(tmp, "model.tflite")
      with open(model_path, "wb") as f:
        f.write(data)
    results = []
    for threads in config.num_threads:
      kwargs = dict(runs, num_threads=threads, use_xnnpack=config.use_xnnpack,
                    delegate_path=config.delegate_path,
                    delegate_options=config.delegate_options)
      if isolate:
        results.append(_cpu_in_child(model_path, name, arrays, kwargs,
                                     timeout_s))
      else:
        results.append(_with_memory(
            lambda kw=kwargs: cpu.benchmark_cpu(data, name, arrays, **kw)))
    if config.use_gpu:
      results.append(_gpu_in_child(model_path, name, arrays, runs,
                                   timeout_s))
  return {
      "model": name,
      "model_bytes": len(data),
      "inputs": input_info,
      "config": dataclasses.asdict(config),
      "results": results,
  }

