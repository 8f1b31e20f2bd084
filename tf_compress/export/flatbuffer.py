"""Inspection of a TFLite flatbuffer: ops, weight dtypes, sparsity, sizes.

The file is parsed with the flatbuffer schema bindings that ship with LiteRT
(`ai_edge_litert.schema_py_generated`), not with an interpreter, so what is
reported is what is stored in the file. Before parsing, the buffer goes
through LiteRT's flatbuffer verifier (by loading it into an
`ai_edge_litert` interpreter without allocating tensors): a corrupt or
truncated file raises `UserInputError` instead of feeding garbage offsets to
the parser.

Terms used in the result:

* a *weight* (constant tensor) is a tensor whose buffer holds data;
* a *kernel* is the weight operand of CONV_2D, DEPTHWISE_CONV_2D,
  FULLY_CONNECTED or TRANSPOSE_CONV, followed through a DEQUANTIZE op (as in
  float16 exports, where the float16 kernel is dequantized at run time); a
  *bias* is their bias operand;
* an element is *nonzero* when its stored value differs from the tensor's
  zero point (0 for float tensors). TFLite quantizes weights symmetrically
  (zero point 0), so for int8 kernels this is the raw int8 value 0;
* 4-bit (`int4`) weights are stored two to a byte; they are unpacked, so
  their `size`, `nonzero` and `unique` count elements, not bytes.
"""

import collections
import gzip

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from tf_compress.errors import UserInputError
from tf_compress.export import litert

__all__ = ["inspect_tflite", "parse_model", "op_name", "decode_text"]

# Tensor dtypes (lower-case TensorType names) that numpy can read directly.
_NUMPY_DTYPES = frozenset((
    "float32", "float16", "float64", "int8", "uint8", "int16", "uint16",
    "int32", "uint32", "int64", "uint64", "bool", "complex64", "complex128"))

_TENSOR_DTYPES = {
    value: name.lower() for name, value in vars(schema.TensorType).items()
    if not name.startswith("_") and isinstance(value, int)
}

_OP_NAMES = {
    value: name for name, value in vars(schema.BuiltinOperator).items()
    if not name.startswith("_") and isinstance(value, int)
}

# Ops whose operand 1 is the kernel and operand 2 the bias...
_KERNEL_OPS = {"CONV_2D": (1, 2), "DEPTHWISE_CONV_2D": (1, 2),
               "FULLY_CONNECTED": (1, 2), "CONV_3D": (1, 2),
               # ...except TRANSPOSE_CONV: (output_shape, weights, input, bias).
               "TRANSPOSE_CONV": (1, 3)}


def op_name(opcode):
  """The name of an `OperatorCode`: `"CONV_2D"`, `"CUSTOM:<name>"`...

  Args:
    opcode: a `schema_py_generated.OperatorCodeT`.

  Returns:
    The builtin op's name, `CUSTOM:` and the custom code for a custom op,
    or `UNKNOWN_<code>` for a code this schema does not know.
  """
  # Builtin codes above 127 live in `builtinCode`; older files only fill the
  # deprecated int8 field, so the larger of the two is the real code.
  code = max(opcode.builtinCode, opcode.deprecatedBuiltinCode)
  if code == schema.BuiltinOperator.CUSTOM:
    custom = opcode.customCode
    if isinstance(custom, bytes):
      custom = custom.decode("utf-8", "replace")
    return f"CUSTOM:{custom}"
  return _OP_NAMES.get(code, f"UNKNOWN_{code}")


def decode_text(value):
  """A flatbuffer string field as `str` ("" for None; bytes as UTF-8)."""
  if value is None:
    return ""
  if isinstance(value, bytes):
    return value.decode("utf-8", "replace")
  return str(value)


def _array(values, dtype):
  if values is None:
    return np.zeros((0,), dtype)
  return np.asarray(values, dtype=dtype)


def _quantization(tensor):
  """JSON-safe quantization parameters of a tensor (None when unquantized)."""
  q = tensor.quantization
  if q is None:
    return None
  scales = _array(q.scale, np.float64)
  zero_points = _array(q.zeroPoint, np.int64)
  if scales.size == 0:
    return None
  if scales.size == 1:
    return {"scale": float(scales[0]),
            "zero_point": int(zero_points[0]) if zero_points.size else 0}
  return {"scale": scales.tolist(), "zero_point": zero_points.tolist(),
          "quantized_dimension": int(q.quantizedDimension)}


def _tensor_detail(tensor, index):
  shape = _array(tensor.shape, np.int64).tolist()
  signature = tensor.shapeSignature
  return {
      "name": decode_text(tensor.name),
      "index": int(index),
      "dtype": _TENSOR_DTYPES.get(tensor.type, f"type_{tensor.type}"),
      "shape": shape,
      "shape_signature": (_array(signature, np.int64).tolist()
                          if signature is not None else shape),
      "quantization": _quantization(tensor),
  }


def _io_details(subgraph, indices, role, name):
  """`_tensor_detail` of each input or output, checking the indices.

  The verifier checks the file's structure, not that its indices point at
  tensors that exist.
  """
  tensors = subgraph.tensors or []
  details = []
  for index in _array(indices, np.int64).tolist():
    if not 0 <= index < len(tensors):
      raise UserInputError(
          f"{name} names tensor {index} as a model {role}, but its subgraph "
          f"has {len(tensors)} tensors; the file is damaged: export it "
          "again.")
    details.append(_tensor_detail(tensors[index], index))
  return details


def _buffer_bytes(buffer, data):
  """The raw bytes of a buffer, inline or (for >2 GB models) out of line."""
  if buffer is None:
    return b""
  if buffer.data is not None and len(buffer.data):
    return np.asarray(buffer.data, dtype=np.uint8).tobytes()
  if buffer.offset > 1 and buffer.size:
    return data[buffer.offset:buffer.offset + buffer.size]
  return b""


def _int4_values(raw, tensor):
  """Packed 4-bit elements (two a byte, low nibble first) as int8, or None.

  TFLite stores INT4 tensors packed; a buffer of one byte an element (an
  unpacked int4 file) is read as it is.
  """
  count = int(np.prod(_array(tensor.shape, np.int64)))
  packed = np.frombuffer(raw, np.uint8)
  if packed.size == count:
    nibbles = packed & 0x0F
  elif packed.size == (count + 1) // 2:
    nibbles = np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(-1)
    nibbles = nibbles[:count]
  else:
    return None
  nibbles = nibbles.astype(np.int8)
  return np.where(nibbles > 7, nibbles - 16, nibbles).astype(np.int8)


def _values(raw, tensor):
  """The stored elements as a 1-D numpy array, or None if not numeric.

  4-bit tensors are unpacked into int8 values in [-8, 7].
  """
  name = _TENSOR_DTYPES.get(tensor.type)
  if name == "int4":
    return _int4_values(raw, tensor)
  if name not in _NUMPY_DTYPES:
    return None  # bfloat16, strings...: no element count.
  dtype = np.dtype(name).newbyteorder("<")
  if len(raw) % dtype.itemsize:
    return None
  return np.frombuffer(raw, dtype=dtype)


def _count_nonzero(values, tensor):
  """Counts stored elements that differ from the zero point."""
  if values is None:
    return None, None
  zero_points = _array(
      tensor.quantization.zeroPoint if tensor.quantization else None,
      np.int64)
  shape = _array(tensor.shape, np.int64)
  axis = int(tensor.quantization.quantizedDimension) if zero_points.size else 0
  if (zero_points.size > 1 and tensor.sparsity is None
      and values.size == int(np.prod(shape)) and axis < len(shape)
      and shape[axis] == zero_points.size):
    broadcast = [1] * len(shape)
    broadcast[axis] = zero_points.size
    reference = zero_points.reshape(broadcast)
    nonzero = np.count_nonzero(values.reshape(shape) != reference)
  elif zero_points.size and zero_points[0] != 0:
    nonzero = np.count_nonzero(values != zero_points[0])
  else:
    nonzero = np.count_nonzero(values)
  return int(values.size), int(nonzero)


def _roles(subgraph, op_names):
  """Maps tensor index -> "kernel" or "bias" for the kernel ops' operands."""
  dequantized = {}  # DEQUANTIZE output -> its (stored) input
  for op, name in zip(subgraph.operators or [], op_names):
    inputs, outputs = _array(op.inputs, np.int64), _array(op.outputs, np.int64)
    if name == "DEQUANTIZE" and len(inputs) and len(outputs):
      dequantized[int(outputs[0])] = int(inputs[0])
  roles = {}
  for op, name in zip(subgraph.operators or [], op_names):
    positions = _KERNEL_OPS.get(name)
    if positions is None:
      continue
    inputs = _array(op.inputs, np.int64)
    for role, position in zip(("kernel", "bias"), positions):
      if position >= len(inputs) or inputs[position] < 0:
        continue
      index = int(inputs[position])
      # float16 exports store the weight in float16 and dequantize it first.
      index = dequantized.get(index, index)
      roles.setdefault(index, role)
  return roles


def _weights(subgraph, buffers, data, roles, per_tensor):
  """Per-weight entries, and dtype counts of the non-constant tensors."""
  weights = []
  activation_dtypes = collections.Counter()
  for index, tensor in enumerate(subgraph.tensors or []):
    dtype = _TENSOR_DTYPES.get(tensor.type, f"type_{tensor.type}")
    raw = (_buffer_bytes(buffers[tensor.buffer], data)
           if 0 < tensor.buffer < len(buffers) else b"")
    if not raw:
      activation_dtypes[dtype] += 1
      continue
    values = _values(raw, tensor)
    size, nonzero = _count_nonzero(values, tensor)
    detail = _tensor_detail(tensor, index)
    entry = {
        "name": detail["name"], "index": index, "dtype": dtype,
        "shape": detail["shape"], "role": roles.get(index, "constant"),
        "size": size, "bytes": len(raw), "nonzero": nonzero,
        "quantization": detail["quantization"]}
    if per_tensor:
      # Distinct stored values: at most the cluster count after clustering.
      entry["unique"] = (int(np.unique(values).size) if values is not None
                         else None)
    weights.append(entry)
  return weights, activation_dtypes


def _fraction(entries):
  """(elements, nonzero elements, nonzero fraction) over weight entries."""
  counted = [w for w in entries if w["size"] is not None]
  total = sum(w["size"] for w in counted)
  nonzero = sum(w["nonzero"] for w in counted)
  return total, nonzero, (nonzero / total if total else None)


def parse_model(data, name):
  """Parses verified TFLite bytes into a `schema_py_generated.ModelT`.

  Args:
    data: the model's bytes, already through `litert.verify_flatbuffer`.
    name: how to name the model in messages.

  Returns:
    The parsed model (object API).

  Raises:
    UserInputError: the bytes are not a TFLite model.
  """
  if not schema.Model.ModelBufferHasIdentifier(data, 0):
    raise UserInputError(
        f"{name} is not a valid TFLite model (no 'TFL3' file identifier); "
        "give a .tflite file written by the TFLite converter.")
  try:
    return schema.ModelT.InitFromPackedBuf(data, 0)
  except Exception as e:  # pylint: disable=broad-except
    # The verifier passed, so this is unexpected; still never crash callers.
    raise UserInputError(f"cannot parse {name} as a TFLite model: {e}.") from e


def inspect_tflite(path_or_bytes, per_tensor=False):
  """Describes a TFLite model from its flatbuffer.

  Args:
    path_or_bytes: a .tflite file path or the model's bytes.
    per_tensor: also return `weights`, one entry per constant tensor.

  Returns:
    A JSON-safe dict:

    * `bytes`: file size; `gzip_bytes`: size after gzip level 9 (a proxy for
      what pruning and clustering save once the file is compressed);
    * `ops`: sorted list of the op names used (builtin names such as
      "CONV_2D", or "CUSTOM:<name>"); `op_counts`: name -> count;
    * `weight_dtypes`: dtype -> number of constant tensors;
      `kernel_dtypes`: the same for kernels only (see the module docstring);
      `activation_dtypes`: dtype -> number of non-constant tensors;
    * `num_weights`, `num_nonzero_weights`, `nonzero_fraction`: elements of
      all constant tensors with a numeric dtype, and the fraction that are
      nonzero (not equal to the zero point); `kernel_nonzero_fraction`: the
      same over kernels only (None without kernels);
    * `input_details`, `output_details`: per model input/output: name, index,
      dtype, shape, shape_signature and quantization (`{"scale",
      "zero_point"}`, lists for per-channel, or None);
    * `weights` (with `per_tensor`): per constant tensor: name, index, dtype,
      shape, role ("kernel", "bias" or "constant"), size (elements; None for
      dtypes without a numpy form), bytes, nonzero, unique (distinct stored
      values, which clustering bounds), quantization.

    Only the primary subgraph (subgraph 0) is inspected for tensors; ops are
    counted over all subgraphs.

  Raises:
    UserInputError: if the file is missing, corrupt, truncated or not a
      TFLite model.
  """
  data, name = litert.read_model_bytes(path_or_bytes)
  # Verify first, so that the parser never follows corrupt offsets.
  litert.verify_flatbuffer(data, name)
  model = parse_model(data, name)
  if not model.subgraphs:
    raise UserInputError(f"{name} holds no subgraph; export it again.")

  op_counts = collections.Counter()
  names_per_subgraph = []
  opcodes = [op_name(code) for code in model.operatorCodes or []]
  for subgraph in model.subgraphs:
    names = [opcodes[op.opcodeIndex] if op.opcodeIndex < len(opcodes)
             else f"UNKNOWN_OPCODE_{op.opcodeIndex}"
             for op in subgraph.operators or []]
    op_counts.update(names)
    names_per_subgraph.append(names)

  main = model.subgraphs[0]
  weights, activation_dtypes = _weights(
      main, model.buffers or [], data, _roles(main, names_per_subgraph[0]),
      per_tensor)

  kernels = [w for w in weights if w["role"] == "kernel"]
  num_weights, num_nonzero, fraction = _fraction(weights)
  result = {
      "bytes": len(data),
      "gzip_bytes": len(gzip.compress(data, compresslevel=9, mtime=0)),
      "ops": sorted(op_counts),
      "op_counts": dict(sorted(op_counts.items())),
      "weight_dtypes": dict(sorted(
          collections.Counter(w["dtype"] for w in weights).items())),
      "kernel_dtypes": dict(sorted(
          collections.Counter(w["dtype"] for w in kernels).items())),
      "activation_dtypes": dict(sorted(activation_dtypes.items())),
      "num_weights": num_weights,
      "num_nonzero_weights": num_nonzero,
      "nonzero_fraction": fraction,
      "kernel_nonzero_fraction": _fraction(kernels)[2],
      "input_details": _io_details(main, main.inputs, "input", name),
      "output_details": _io_details(main, main.outputs, "output", name),
  }
  if per_tensor:
    result["weights"] = weights
  return result
