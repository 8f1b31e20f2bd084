"""CPU benchmarks on the LiteRT interpreter: XNNPACK, built-in kernels and
external delegates.

`benchmark_cpu` runs in the calling process. It trusts the model: a file
that passes LiteRT's flatbuffer verifier can still crash the process when
tensors are allocated or the model runs (see `tf_compress.export.litert`).
`tf_compress.benchmark.benchmark_model` therefore runs it in a child process
by default.

XNNPACK is LiteRT's default delegate: the interpreter applies it when
tensors are first allocated, and each subgraph a delegate takes over then
appears as a `DELEGATE` node beside the model's own nodes. Each result
counts those (`delegate_partitions`), so a model that XNNPACK could not take
is visible as `delegate_partitions: 0`.
"""

import ctypes
import os
import time

from ai_edge_litert import interpreter as litert_interpreter

from tf_compress.benchmark import timing
from tf_compress.errors import one_line
from tf_compress.errors import UserInputError
from tf_compress.export import litert

__all__ = [
    "DELEGATE_SYMBOLS", "check_delegate_library", "load_external_delegate",
    "make_interpreter", "set_inputs", "count_delegate_partitions",
    "benchmark_cpu",
]

# The C entry points of a TFLite external delegate library
# (tensorflow/lite/delegates/external/external_delegate_interface.h).
DELEGATE_SYMBOLS = ("tflite_plugin_create_delegate",
                    "tflite_plugin_destroy_delegate")


def check_delegate_library(path, load=True):
  """Checks that `path` is a loadable TFLite external delegate library.

  With `load`, the library is opened with `ctypes` (which runs its
  initialisers) and must export both `DELEGATE_SYMBOLS`.

  Args:
    path: the shared library's path.
    load: also load the library and look for the symbols; False checks only
      that a non-empty file is there.

  Returns:
    The absolute path (a bare file name would make the dynamic loader search
    the library path instead).

  Raises:
    UserInputError: if the file does not exist, is empty, cannot be loaded
      as a shared library, or is not a delegate library.
  """
  if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
    raise UserInputError(
        f"delegate_path must be the path of a TFLite delegate shared library "
        f"(.so), got {path!r}.")
  path = os.path.abspath(os.fspath(path))
  if not os.path.isfile(path):
    raise UserInputError(
        f"delegate library '{path}' does not exist or is not a file; give "
        "the path of a TFLite external delegate shared library (.so).")
  if os.path.getsize(path) == 0:
    raise UserInputError(
        f"delegate library '{path}' is empty; give the path of a TFLite "
        "external delegate shared library (.so).")
  if not load:
    return path
  try:
    library = ctypes.CDLL(path)
  except OSError as e:
    raise UserInputError(
        f"cannot load delegate library '{path}' ({one_line(e)}); give the "
        "path of a TFLite external delegate shared library built for this "
        "machine.") from e
  missing = [name for name in DELEGATE_SYMBOLS if not hasattr(library, name)]
  if missing:
    raise UserInputError(
        f"'{path}' is a shared library but not a TFLite external delegate: "
        f"it does not export {', '.join(missing)}; give a delegate library "
        "built on external_delegate_interface.h.")
  return path


def load_external_delegate(path, options=None):
  """Loads a TFLite external delegate through LiteRT's `load_delegate`.

  Args:
    path: the delegate's shared library.
    options: a dict of the delegate's options (keys and values are passed
      as strings), or None.

  Returns:
    The `ai_edge_litert.interpreter.Delegate`; keep it alive as long as the
    interpreter that uses it.

  Raises:
    UserInputError: if the library is missing or not a delegate library
      (see `check_delegate_library`), or it refuses to create a delegate
      with these options.
  """
  path = check_delegate_library(path)
  if options is not None and not isinstance(options, dict):
    raise UserInputError(
        f"delegate options must be a dict of strings, got "
        f"{type(options).__name__}.")
  try:
    return litert_interpreter.load_delegate(path, options)
  except (ValueError, RuntimeError, OSError, AttributeError) as e:
    raise UserInputError(
        f"the delegate library '{path}' did not create a delegate "
        f"({one_line(e) or 'no message'}); check its options "
        f"{options or {}}.") from e


def make_interpreter(data, name, num_threads=1, use_xnnpack=True,
                     delegate=None):
  """Creates a LiteRT interpreter for a benchmark (tensors not allocated).

  Args:
    data: the model's bytes (verified or not: the interpreter verifies).
    name: the model's name for messages.
    num_threads: CPU threads (>= 1).
    use_xnnpack: apply LiteRT's default XNNPACK delegate.
    delegate: an external delegate from `load_external_delegate`, or None.

  Returns:
    An `ai_edge_litert.interpreter.Interpreter`.

  Raises:
    UserInputError: if the model is invalid or the delegate cannot be
      applied to it.
  """
  if delegate is None:
    interpreter, _ = litert.load_interpreter(
        data, num_threads=num_threads, default_delegates=use_xnnpack)
    return interpreter
  litert.verify_flatbuffer(data, name)
  resolver = (litert_interpreter.OpResolverType.AUTO if use_xnnpack else
              litert_interpreter.OpResolverType
              .BUILTIN_WITHOUT_DEFAULT_DELEGATES)
  try:
    return litert_interpreter.Interpreter(
        model_content=data, num_threads=num_threads,
        experimental_delegates=[delegate],
        experimental_op_resolver_type=resolver)
  except (ValueError, RuntimeError) as e:
    raise UserInputError(
        f"the external delegate could not be applied to {name} "
        f"({one_line(e)}).") from e


def set_inputs(interpreter, arrays):
  """Resizes inputs where needed, allocates tensors and sets the inputs.

  Args:
    interpreter: a LiteRT interpreter.
    arrays: a dict from input tensor name to an array of that tensor's
      dtype (see `harness.make_inputs`).

  Raises:
    UserInputError: if an input is missing or LiteRT refuses a shape.
  """
  details = interpreter.get_input_details()
  missing = [d["name"] for d in details if d["name"] not in arrays]
  if missing:
    raise UserInputError(
        f"no data for model input(s) {missing}; give one array per input.")
  for detail in details:
    shape = tuple(arrays[detail["name"]].shape)
    if shape != tuple(detail["shape"]):
      interpreter.resize_tensor_input(detail["index"], list(shape),
                                      strict=False)
  interpreter.allocate_tensors()
  for detail in details:
    interpreter.set_tensor(detail["index"], arrays[detail["name"]])


def count_delegate_partitions(interpreter):
  """Returns `(partitions, model_ops)` for an allocated interpreter.

  `partitions` counts the `DELEGATE` nodes: each stands for a subgraph that
  a delegate (XNNPACK or an external one) took over. `model_ops` counts the
  model's own nodes (LiteRT keeps them in the graph, delegated or not).
  Returns `(None, None)` where this LiteRT build does not expose the nodes.
  """
  try:
    ops = interpreter._get_ops_details()  # pylint: disable=protected-access
  except (AttributeError, RuntimeError, ValueError):
    return None, None
  partitions = sum(1 for op in ops if op.get("op_name") == "DELEGATE")
  return partitions, len(ops) - partitions


def benchmark_cpu(data, name, arrays, num_threads=1, use_xnnpack=True,
                  delegate_path=None, delegate_options=None, warmup_runs=1,
                  num_runs=50, max_secs=None, clock=time.perf_counter):
  """Benchmarks a model on the LiteRT interpreter, in this process.

  Initialisation (`init_ms`) covers loading the delegate, building the
  interpreter from the bytes, resizing and allocating tensors (which applies
  XNNPACK) and setting the inputs. Each timed run is one `invoke()`; the
  inputs are set once, as in `benchmark_model`.

  Args:
    data: the model's bytes.
    name: the model's name for messages.
    arrays: a dict from input tensor name to its input array (see
      `harness.make_inputs`).
    num_threads: CPU threads.
    use_xnnpack: apply LiteRT's default XNNPACK delegate; False runs the
      built-in kernels only.
    delegate_path: a TFLite external delegate library to apply, or None.
    delegate_options: that delegate's options (dict), or None.
    warmup_runs, num_runs, max_secs: see `timing.time_invocations`.
    clock: a monotonic clock in seconds.

  Returns:
    A result dict: `backend` ("cpu"), `delegate` ("xnnpack", "none" or
    "external"), `delegate_path`, `num_threads`, `delegate_partitions`,
    `model_ops`, `init_ms`, `first_inference_ms`, `warmup_runs`,
    `warmup_mean_ms` (None without warm-up), `stopped_by`, and the fields of
    `timing.latency_stats`.

  Raises:
    UserInputError: for invalid arguments, an invalid model, a delegate
      that cannot be loaded or applied, or an error LiteRT raises running
      the model.
  """
  timing.check_run_counts(warmup_runs, num_runs, max_secs)
  if (isinstance(num_threads, bool) or not isinstance(num_threads, int) or
      num_threads < 1):
    raise UserInputError(
        f"num_threads must be an integer >= 1, got {num_threads!r}.")
  start = clock()
  delegate = (load_external_delegate(delegate_path, delegate_options)
              if delegate_path else None)
  interpreter = make_interpreter(data, name, num_threads, use_xnnpack,
                                 delegate)
  try:
    set_inputs(interpreter, arrays)
    init_s = clock() - start
    timings = timing.time_invocations(interpreter.invoke, warmup_runs,
                                     num_runs, max_secs, clock)
  except (RuntimeError, ValueError) as e:
    if isinstance(e, UserInputError):
      raise
    raise UserInputError(f"LiteRT cannot run {name}: {one_line(e)}") from e
  partitions, model_ops = count_delegate_partitions(interpreter)
  if delegate is not None:
    kind = "external"
  else:
    kind = "xnnpack" if use_xnnpack else "none"
  result = {
      "backend": "cpu",
      "delegate": kind,
      "delegate_path": (os.path.abspath(os.fspath(delegate_path))
                        if delegate_path else None),
      "num_threads": num_threads,
      "delegate_partitions": partitions,
      "model_ops": model_ops,
  }
  result.update(timing.timing_fields(init_s, timings))
  return result
