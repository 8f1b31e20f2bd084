"""A small wrapper around the LiteRT interpreter: load, quantize, run batches.

`ai_edge_litert.interpreter.Interpreter` is used rather than the deprecated
`tf.lite.Interpreter`. It verifies the flatbuffer when it loads a model, so a
corrupt or truncated file raises `ValueError` instead of crashing the process;
`load_interpreter` turns that into a `UserInputError` naming the file.

The verifier checks the file's structure, not its meaning: a file with a few
damaged bytes can pass it and still crash LiteRT (SIGSEGV) when tensors are
allocated or the model runs. `run_isolated` therefore runs a model in a child
process, which loads this file on its own (only numpy and `ai_edge_litert`,
no TensorFlow; about 0.3 s to start), so a crash becomes a `UserInputError`
in the caller. For the same reason this module imports nothing from
tf_compress at the top.
"""

import os
import signal
import subprocess
import sys
import tempfile

import numpy as np
from ai_edge_litert import interpreter as litert_interpreter

__all__ = [
    "read_model_bytes",
    "verify_flatbuffer",
    "load_interpreter",
    "quantize_input",
    "dequantize_output",
    "check_inputs",
    "run_interpreter",
    "run_isolated",
]

_NO_DEFAULT_DELEGATES = (
    litert_interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)


def _user_input_error(message):
  # Imported here: the isolated worker loads this file without tf_compress.
  from tf_compress.errors import UserInputError
  return UserInputError(message)


_INVALID_FLATBUFFER = "not a valid flatbuffer"


def read_model_bytes(path_or_bytes):
  """Returns the bytes of a TFLite model and a name for error messages.

  Args:
    path_or_bytes: a file path (str or path-like) or the model's bytes.

  Returns:
    `(data, name)`: the model as `bytes`, and the file path or a description
    of the in-memory buffer.

  Raises:
    UserInputError: if the file does not exist, cannot be read or is empty,
      or the argument is neither a path nor bytes.
  """
  if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
    data = bytes(path_or_bytes)
    return _check_not_empty(
        data, f"<in-memory TFLite model, {len(data)} bytes>")
  if not isinstance(path_or_bytes, (str, os.PathLike)):
    raise _user_input_error(
        "expected a .tflite file path or the model's bytes, got "
        f"{type(path_or_bytes).__name__}.")
  path = os.fspath(path_or_bytes)
  if not os.path.isfile(path):
    raise _user_input_error(
        f"TFLite model file '{path}' does not exist or is not a file; "
        "check the path or export the model first.")
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise _user_input_error(
        f"cannot read TFLite model file '{path}': {e.strerror or e}.") from e
  return _check_not_empty(data, path)


def _check_not_empty(data, name):
  if not data:
    raise _user_input_error(
        f"{name} is not a valid TFLite model (it is empty); export the model "
        "again.")
  return data, name


def _invalid_model_error(name, error):
  return _user_input_error(
      f"{name} is not a valid TFLite model ({error}); the file is corrupt or "
      "truncated: export it again.")


def _check_details(interpreter, name):
  """Reads the input and output details, which a damaged file can break.

  The verifier checks structure, not text: a tensor name that is not UTF-8
  raises `UnicodeDecodeError` in `get_input_details()`.
  """
  try:
    interpreter.get_input_details()
    interpreter.get_output_details()
  except (ValueError, IndexError, RuntimeError) as e:
    raise _invalid_model_error(
        name, f"its input and output tensors cannot be read: {e}") from e


def verify_flatbuffer(data, name):
  """Runs LiteRT's flatbuffer verifier over a model's bytes.

  Args:
    data: the model's bytes.
    name: how the model is named in the error message.

  Raises:
    UserInputError: if the verifier rejects the buffer (corrupt, truncated or
      not a TFLite model), or the input and output tensors cannot be read
      (a name that is not UTF-8). A valid buffer whose ops cannot all be
      resolved (custom ops) passes: the verifier runs before op resolution.
  """
  try:
    interpreter = litert_interpreter.Interpreter(
        model_content=data,
        experimental_op_resolver_type=_NO_DEFAULT_DELEGATES)
  except ValueError as e:
    if _INVALID_FLATBUFFER in str(e).lower():
      raise _invalid_model_error(name, e) from e
    return
  _check_details(interpreter, name)


def load_interpreter(path_or_bytes, num_threads=None, default_delegates=True):
  """Loads a TFLite model into a LiteRT interpreter (tensors not allocated).

  Args:
    path_or_bytes: a .tflite file path or the model's bytes.
    num_threads: CPU threads for the interpreter; None lets LiteRT choose.
    default_delegates: apply LiteRT's default delegates (XNNPACK). False uses
      the built-in kernels only.

  Returns:
    `(interpreter, name)`: an `ai_edge_litert.interpreter.Interpreter` and the
    model's name for messages (its path, or a description of the bytes).

  Raises:
    UserInputError: if the file is missing, or is not a valid TFLite
      flatbuffer (corrupt or truncated), or the interpreter refuses it (for
      example an unresolved custom op).
  """
  data, name = read_model_bytes(path_or_bytes)
  resolver = (litert_interpreter.OpResolverType.AUTO if default_delegates
              else _NO_DEFAULT_DELEGATES)
  try:
    interpreter = litert_interpreter.Interpreter(
        model_content=data, num_threads=num_threads,
        experimental_op_resolver_type=resolver)
  except ValueError as e:
    if _INVALID_FLATBUFFER in str(e).lower():
      raise _invalid_model_error(name, e) from e
    raise _user_input_error(f"LiteRT cannot load {name}: {e}.") from e
  _check_details(interpreter, name)
  return interpreter, name


def _quantization(detail):
  scale, zero_point = detail["quantization"]
  return float(scale), int(zero_point)


def quantize_input(x, detail):
  """Converts float inputs into the dtype an input tensor expects.

  For quantized integer inputs, `q = round(x / scale + zero_point)`, clipped
  to the dtype's range; float inputs are only cast.

  Args:
    x: float array of inputs.
    detail: the tensor's entry from `interpreter.get_input_details()`.

  Returns:
    An array of the tensor's dtype.

  Raises:
    UserInputError: if the input is integer but carries no quantization
      parameters (scale 0), so floats cannot be mapped onto it.
  """
  dtype = np.dtype(detail["dtype"])
  if not np.issubdtype(dtype, np.integer):
    return np.asarray(x, dtype=dtype)
  scale, zero_point = _quantization(detail)
  if scale == 0.0:
    raise _user_input_error(
        f"input tensor '{detail['name']}' is {dtype.name} without "
        "quantization parameters; feed it integer data directly.")
  info = np.iinfo(dtype)
  q = np.round(np.asarray(x, dtype=np.float64) / scale + zero_point)
  return np.clip(q, info.min, info.max).astype(dtype)


def dequantize_output(y, detail):
  """Converts an output tensor's values to float32 (`(q - zero_point) * scale`).

  Args:
    y: the array read from the output tensor.
    detail: the tensor's entry from `interpreter.get_output_details()`.

  Returns:
    A float32 array; float outputs are returned as float32 unchanged.
  """
  dtype = np.dtype(detail["dtype"])
  if np.issubdtype(dtype, np.integer):
    scale, zero_point = _quantization(detail)
    if scale != 0.0:
      return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)
  return np.asarray(y, dtype=np.float32)


def _resizable(detail):
  signature = detail.get("shape_signature")
  return signature is not None and len(signature) > 0 and signature[0] == -1


def _run_batched(interpreter, x, batch_size, in_detail, out_index):
  """Runs `x` in batches of `batch_size`; the last batch is padded."""
  interpreter.resize_tensor_input(
      in_detail["index"], [batch_size] + list(x.shape[1:]))
  interpreter.allocate_tensors()
  out_detail = interpreter.get_output_details()[out_index]
  outputs = []
  for start in range(0, len(x), batch_size):
    batch = x[start:start + batch_size]
    n = len(batch)
    if n < batch_size:
      pad = np.repeat(batch[-1:], batch_size - n, axis=0)
      batch = np.concatenate([batch, pad])
    interpreter.set_tensor(in_detail["index"], quantize_input(batch, in_detail))
    interpreter.invoke()
    outputs.append(dequantize_output(
        interpreter.get_tensor(out_detail["index"]), out_detail)[:n])
  return np.concatenate(outputs)


def _run_one_by_one(interpreter, x, in_detail, out_index):
  """Runs `x` one sample at a time at the model's own input shape."""
  # Always resize: a failed batched attempt may have left another shape.
  interpreter.resize_tensor_input(in_detail["index"], [1] + list(x.shape[1:]))
  interpreter.allocate_tensors()
  out_detail = interpreter.get_output_details()[out_index]
  outputs = []
  for i in range(len(x)):
    interpreter.set_tensor(in_detail["index"],
                           quantize_input(x[i:i + 1], in_detail))
    interpreter.invoke()
    outputs.append(dequantize_output(
        interpreter.get_tensor(out_detail["index"]), out_detail))
  return np.concatenate(outputs)


def run_interpreter(interpreter, x, batch_size=64, output_index=0):
  """Runs float inputs through a single-input model; returns float outputs.

  Integer (quantized) inputs are quantized with the tensor's scale and zero
  point, integer outputs are dequantized. Batches are run by resizing the
  input tensor when its batch dimension is dynamic; if that is impossible
  (a fixed batch size, or an op that refuses the new shape), samples are run
  one at a time.

  Args:
    interpreter: a LiteRT interpreter (tensors need not be allocated).
    x: float array of inputs, first axis the samples.
    batch_size: samples per invocation when batching.
    output_index: which output tensor to read (position in
      `get_output_details()`).

  Returns:
    `(outputs, batched)`: a float32 array with one row per sample, and whether
    batched execution was used.

  Raises:
    UserInputError: if the model has more than one input, or `x` does not
      match the input's per-sample shape.
  """
  in_detail = check_inputs(interpreter, x)
  x = np.asarray(x, dtype=np.float32)
  if batch_size > 1 and len(x) > 1 and _resizable(in_detail):
    try:
      return _run_batched(interpreter, x, batch_size, in_detail,
                          output_index), True
    except (RuntimeError, ValueError):
      pass  # Some models refuse a new batch size; fall back below.
  return _run_one_by_one(interpreter, x, in_detail, output_index), False


def check_inputs(interpreter, x):
  """Checks that `x` fits a single-input model; returns the input's details.

  Args:
    interpreter: a LiteRT interpreter.
    x: the inputs, first axis the samples.

  Returns:
    The input tensor's entry from `get_input_details()`.

  Raises:
    UserInputError: if the model has more than one input, or `x` is empty or
      does not match the input's per-sample shape.
  """
  in_details = interpreter.get_input_details()
  if len(in_details) != 1:
    raise _user_input_error(
        f"the TFLite model has {len(in_details)} inputs; only single-input "
        "models can be run here.")
  in_detail = in_details[0]
  x = np.asarray(x)
  expected = tuple(int(d) for d in in_detail["shape_signature"][1:])
  got = tuple(x.shape[1:])
  if len(expected) != len(got) or any(
      e not in (-1, g) for e, g in zip(expected, got)):
    raise _user_input_error(
        f"inputs have per-sample shape {got} but the TFLite model expects "
        f"{expected}; pass data shaped like the model's training inputs.")
  if x.ndim == 0 or len(x) == 0:
    raise _user_input_error("no samples given to run the TFLite model on.")
  return in_detail


# Started with `python -c`: loads this file by path as a plain module (so
# that neither tf_compress nor TensorFlow is imported) and runs the worker.
_BOOTSTRAP = """\
import importlib.util, sys
spec = importlib.util.spec_from_file_location("_tfc_litert_worker", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
sys.exit(module.worker_main(sys.argv[2:]))
"""


def worker_main(argv):
  """Entry point of the isolated worker; see `run_isolated`.

  Args:
    argv: model path, inputs .npy path, outputs .npz path, batch size and
      thread count (0 for LiteRT's default).

  Returns:
    The process exit status: 0 on success, 3 if LiteRT raised an error
    (its message is written to stderr).
  """
  model_path, x_path, out_path, batch_size, num_threads = argv
  try:
    interpreter = litert_interpreter.Interpreter(
        model_path=model_path, num_threads=int(num_threads) or None)
    outputs, batched = run_interpreter(interpreter, np.load(x_path),
                                       batch_size=int(batch_size))
  except Exception as e:  # pylint: disable=broad-except
    print(f"{type(e).__name__}: {e}", file=sys.stderr)
    return 3
  np.savez(out_path, outputs=outputs, batched=batched)
  return 0


def run_isolated(path_or_bytes, x, batch_size=64, num_threads=None,
                 timeout_s=600):
  """Like `run_interpreter`, but in a child process that may crash safely.

  Args:
    path_or_bytes: a .tflite file path or the model's bytes.
    x: float array of inputs, first axis the samples.
    batch_size: samples per invocation when batching.
    num_threads: interpreter threads; None lets LiteRT choose.
    timeout_s: seconds before the child is killed.

  Returns:
    `(outputs, batched)` as for `run_interpreter` (first output only).

  Raises:
    UserInputError: if the model is not valid, `x` does not fit it, LiteRT
      raises an error running it, or the child process crashes or hangs.
  """
  interpreter, name = load_interpreter(path_or_bytes)
  check_inputs(interpreter, x)
  with tempfile.TemporaryDirectory(prefix="tfc_litert_") as tmp:
    if isinstance(path_or_bytes, (str, os.PathLike)):
      model_path = os.fspath(path_or_bytes)
    else:
      model_path = os.path.join(tmp, "model.tflite")
      with open(model_path, "wb") as f:
        f.write(bytes(path_or_bytes))
    x_path = os.path.join(tmp, "inputs.npy")
    out_path = os.path.join(tmp, "outputs.npz")
    np.save(x_path, np.asarray(x, dtype=np.float32))
    command = [sys.executable, "-c", _BOOTSTRAP, os.path.abspath(__file__),
               model_path, x_path, out_path, str(int(batch_size)),
               str(int(num_threads or 0))]
    try:
      process = subprocess.run(command, capture_output=True, text=True,
                               timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as e:
      raise _user_input_error(
          f"LiteRT did not finish running {name} within {timeout_s} s; the "
          "file may be damaged: export it again.") from e
    if process.returncode < 0:
      try:
        signame = signal.Signals(-process.returncode).name
      except ValueError:
        signame = f"signal {-process.returncode}"
      raise _user_input_error(
          f"LiteRT crashed ({signame}) running {name}: the file passes the "
          "flatbuffer verifier but its contents are inconsistent (damaged "
          "bytes?); export it again.")
    if process.returncode != 0:
      lines = [line for line in process.stderr.splitlines() if line.strip()]
      raise _user_input_error(
          f"LiteRT cannot run {name}: "
          f"{lines[-1] if lines else f'exit status {process.returncode}'}.")
    with np.load(out_path) as result:
      return result["outputs"], bool(result["batched"])
