"""GPU benchmarks with LiteRT's CompiledModel and its GPU accelerator.

`CompiledModel.from_file(path, hardware_accel=GPU | CPU)` compiles the
model for LiteRT's bundled GPU accelerator (WebGPU, Dawn over Vulkan); ops
the GPU cannot run fall back to the CPU, which `is_fully_accelerated()`
reports. A result from a model that is not fully accelerated is marked
`fully_accelerated: false, cpu_fallback: true`, so CPU work is never passed
off as GPU numbers.

`benchmark_gpu` runs in the calling process and must only be given a file
that LiteRT's flatbuffer verifier accepted: `CompiledModel.from_file` does
not verify, and crashes (SIGSEGV) on corrupt files.
`tf_compress.benchmark.benchmark_model` verifies the file, then runs this in
a child process whose standard error it keeps: when no GPU can be used the
Python exception carries only source locations, and the reason ("No
adapters found") is in the runtime's log, which `failure_reason` extracts.
"""

import re
import time

import numpy as np

from tf_compress.benchmark import timing
from tf_compress.errors import UserInputError

__all__ = ["benchmark_gpu", "failure_reason", "unavailable"]

# Runtime log lines worth quoting as the reason the GPU could not be used.
_LOG_PATTERNS = (
    # "ERROR: [delegate_webgpu.cc:359] Failed to ...: No adapters found"
    re.compile(r"^\s*(?:ERROR|E\d{4}[^\]]*\])[:\s]*(?:\[[^\]]*\])?\s*(.+)$"),
    # "Warning: Couldn't load Vulkan: libvulkan.so.1: cannot open ..."
    re.compile(r"^\s*Warning:\s*(Couldn't load .+)$"),
)
_MAX_REASON_CHARS = 400


def failure_reason(error_text, log_text):
  """The reason the GPU accelerator could not be used, in one line.

  Args:
    error_text: the Python exception's text (may hold only source
      locations), or "".
    log_text: what the runtime wrote to standard error.

  Returns:
    The distinct error messages of the runtime log (the ones with text
    beyond a source location), joined with "; ", or the exception's text
    when the log has none.
  """
  messages = []
  for line in (log_text or "").splitlines():
    for pattern in _LOG_PATTERNS:
      match = pattern.match(line)
      if not match:
        continue
      message = match.group(1).strip()
      # Lines holding only a source location ("ERROR: [file.cc:12]").
      if message and not re.fullmatch(r"[\[\]\w./:-]*\.(cc|h)(:\d+)?\]?",
                                      message):
        if message not in messages:
          messages.append(message)
      break
  reason = "; ".join(messages) or " ".join(str(error_text).split())
  reason = reason or "the GPU accelerator failed without a message"
  if len(reason) > _MAX_REASON_CHARS:
    reason = reason[:_MAX_REASON_CHARS - 3] + "..."
  return reason


def unavailable(reason):
  """The result of a GPU benchmark that could not run."""
  return {"backend": "gpu", "available": False, "reason": reason}


def _input_buffers(model, arrays):
  """Input TensorBuffers of signature 0, filled from `arrays` by name."""
  signatures = model.get_signature_list()
  if not signatures:
    raise UserInputError(
        "the model has no signature, which LiteRT's CompiledModel needs; "
        "export it with tf_compress.export.")
  key = next(iter(signatures))
  index = model.get_signature_index(key)
  details = model.get_input_tensor_details(key)
  names = signatures[key]["inputs"]
  buffers = model.create_input_buffers(index)
  for signature_name, buffer in zip(names, buffers):
    tensor_name = details[signature_name]["name"]
    if tensor_name not in arrays:
      raise UserInputError(
          f"no data for model input '{tensor_name}'; give one array per "
          "input.")
    array = np.ascontiguousarray(arrays[tensor_name])
    expected = tuple(details[signature_name]["shape"])
    if array.shape != expected:
      # CompiledModel buffers are created for the compiled shapes.
      raise UserInputError(
          f"input '{tensor_name}' has shape {array.shape} but the GPU model "
          f"is compiled for {expected}; benchmark the GPU with inputs of "
          "the model's own shape.")
    buffer.write(array)
  return index, buffers


def benchmark_gpu(model_path, arrays, warmup_runs=1, num_runs=50,
                  max_secs=None, clock=time.perf_counter):
  """Benchmarks a model on LiteRT's GPU accelerator, in this process.

  Initialisation (`init_ms`) covers compiling the model for the GPU and
  creating and filling the buffers. Each timed run is `run_by_index` plus
  reading the first output back to host memory, which waits for the GPU to
  finish.

  Args:
    model_path: a .tflite file that LiteRT's verifier has accepted.
    arrays: a dict from input tensor name to its input array.
    warmup_runs, num_runs, max_secs: see `timing.time_invocations`.
    clock: a monotonic clock in seconds.

  Returns:
    A result dict: `backend` ("gpu"), `available` (True), `accelerator`,
    `fully_accelerated`, `cpu_fallback`, `init_ms`, `first_inference_ms`,
    `warmup_runs`, `warmup_mean_ms`, `stopped_by` and the fields of
    `timing.latency_stats`.

  Raises:
    RuntimeError: from LiteRT when the GPU accelerator cannot be used (no
      adapter, unsupported model); see `failure_reason`.
    UserInputError: for invalid counts, or inputs that do not fit.
  """
  # Imported here: loading the compiled-model runtime registers the GPU
  # and NPU accelerators, which only the child process needs.
  # pylint: disable-next=g-import-not-at-top
  from ai_edge_litert import compiled_model

  timing.check_run_counts(warmup_runs, num_runs, max_secs)
  accel = compiled_model.HardwareAccelerator
  start = clock()
  model = compiled_model.CompiledModel.from_file(
      str(model_path), hardware_accel=accel.GPU | accel.CPU)
  fully_accelerated = bool(model.is_fully_accelerated())
  index, inputs = _input_buffers(model, arrays)
  outputs = model.create_output_buffers(index)
  first_output = outputs[0].get_tensor_details()
  size = int(np.prod(first_output["shape"]))
  dtype = np.dtype(first_output["dtype"])
  init_s = clock() - start

  def invoke():
    model.run_by_index(index, inputs, outputs)
    outputs[0].read(size, dtype)

  timings = timing.time_invocations(invoke, warmup_runs, num_runs, max_secs,
                                   clock)
  result = {
      "backend": "gpu",
      "available": True,
      "accelerator": "GPU|CPU",
      "fully_accelerated": fully_accelerated,
      "cpu_fallback": not fully_accelerated,
  }
  result.update(timing.timing_fields(init_s, timings))
  return result
