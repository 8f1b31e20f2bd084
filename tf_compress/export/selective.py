"""Selective int8 quantization: some Keras layers kept in float.

The TFLite converter calibrates a model (activation ranges on
representative data) and then quantizes it with its MLIR quantizer. Its
quantization debugger (`tf.lite.experimental.QuantizationDebugger`) splits
the two steps, and the quantizer takes a denylist of ops, named by their
output tensors, to leave in float: `QuantizationDebugOptions(
denylisted_nodes=...)` and `get_nondebug_quantized_model()` do exactly
`mlir_quantize(calibrated, denylisted_nodes=...)`, which is what this module
calls. The ops of a denylisted layer then take and give float32 tensors,
with QUANTIZE and DEQUANTIZE ops at their edges, and keep float32 weights.

`Calibrated` holds a model calibrated once, with its map from Keras layers
to ops (`layer_map`), so that many selections are quantized from one
calibration: `quantize(keep=[...])` for mixed precision, `quantize(only=
[...])` for one-layer-at-a-time sensitivity. Without a selection the result
is the converter's own int8 file.

`keep_dtype="float16"` stores the kept layers' float weights in float16
with a DEQUANTIZE op in front of their consumers, as the converter's
float16 mode does (the op still computes in float32).
"""

import dataclasses

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils
from tensorflow.lite.python import convert as lite_convert

from tf_compress._keras import tf
from tf_compress.errors import UserInputError
from tf_compress.export import flatbuffer
from tf_compress.export import layer_map
from tf_compress.export import quiet

__all__ = ["KEEP_DTYPES", "Calibrated"]

KEEP_DTYPES = ("float32", "float16")
# Ops whose float weights `keep_dtype="float16"` stores in float16.
_WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
               "TRANSPOSE_CONV", "CONV_3D", "BATCH_MATMUL")


@dataclasses.dataclass(frozen=True, eq=False)
class Calibrated:
  """A model calibrated for int8, ready to quantize with layers kept float.

  Built by `tf_compress.export.calibrate_int8(model, data)`.

  Attributes:
    model: the Keras model (for matching layer names).
    data: the calibrated float TFLite bytes, its layers tagged.
    tokens: {token: layer path} (see `layer_map.tagged_layers`).
    ops: `layer_map.op_layers(data, tokens)`.

  Example:
    >>> calibrated = export.calibrate_int8(model, splits.x_train)
    >>> mixed = calibrated.quantize(keep=["fc1"])
  """
  model: object
  data: bytes
  tokens: dict
  ops: list

  def layer_paths(self):
    """The paths of the layers that own at least one op, in model order."""
    owned = {p for op in self.ops for p in op["layers"]}
    return [p for p in self.tokens.values() if p in owned]

  def quantize(self, keep=(), only=None, keep_dtype="float32", int8_io=False,
               verbose=False):
    """The int8 TFLite model with a selection of layers in float.

    Args:
      keep: Keras layer names or glob patterns to keep in float; their ops
        (and those of layers nested in them) stay float.
      only: instead of `keep`, the names or patterns of the only layers to
        quantize: every other op stays float (for sensitivity analysis).
      keep_dtype: "float32", or "float16" to store the kept ops' weights in
        float16 (dequantized to float32 at load time).
      int8_io: int8 model input and output, as for `mode="int8"`.
      verbose: show the quantizer's log output.

    Returns:
      The TFLite model's bytes, tensor names in terms of the Keras layers.

    Raises:
      UserInputError: an unknown layer name or pattern, a layer without an
        op of its own, both `keep` and `only`, or a bad `keep_dtype`.
    """
    if keep_dtype not in KEEP_DTYPES:
      raise UserInputError(
          f"keep_float_dtype must be one of {', '.join(KEEP_DTYPES)}, got "
          f"{keep_dtype!r}.")
    if only is not None and keep:
      raise UserInputError(
          "give keep (layers to keep in float) or only (the only layers to "
          "quantize), not both.")
    if only is not None:
      wanted = {op["index"] for op in
                layer_map.ops_of(self.model, self.ops, only, "only")}
      denied = [op for op in self.ops if op["index"] not in wanted]
    else:
      denied = (layer_map.ops_of(self.model, self.ops, keep) if keep
                else [])
    nodes = [op["output"] for op in denied if op["output"]]
    io_type = tf.int8 if int8_io else tf.float32
    with quiet.quiet_converter(verbose):
      data = lite_convert.mlir_quantize(
          self.data, disable_per_channel=False, input_data_type=io_type,
          output_data_type=io_type, denylisted_nodes=nodes or None,
          disable_per_channel_for_dense_layers=False)
    if keep_dtype == "float16" and nodes:
      data = _float16_weights(data, set(nodes))
    return layer_map.restore_names(data, self.tokens)


def _opcode_index(model, builtin):
  """The index of `builtin`'s OperatorCode in `model`, added if missing."""
  for index, code in enumerate(model.operatorCodes):
    if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
      return index
  code = schema.OperatorCodeT()
  code.builtinCode = builtin
  code.deprecatedBuiltinCode = min(builtin, 127)
  code.version = 3  # DEQUANTIZE of float16 inputs.
  model.operatorCodes.append(code)
  return len(model.operatorCodes) - 1


def _float16_weights(data, nodes):
  """Stores the float32 weights of the weight ops named in `nodes` in float16.

  Each such weight gets a float16 copy in a new buffer and a DEQUANTIZE op
  (float16 -> float32) at the start of the graph writing the original
  tensor, which loses its constant buffer: the layout the converter's
  float16 mode produces.
  """
  model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
  graph = model.subgraphs[0]
  opcodes = [flatbuffer.op_name(c) for c in model.operatorCodes]
  float32 = schema.TensorType.FLOAT32
  converted, original_buffers = {}, {}
  for op in graph.operators:
    if opcodes[op.opcodeIndex] not in _WEIGHT_OPS:
      continue
    outputs = [int(i) for i in op.outputs if i >= 0]
    if not outputs or flatbuffer.decode_text(
        graph.tensors[outputs[0]].name) not in nodes:
      continue
    for index in (int(i) for i in op.inputs if i >= 0):
      tensor = graph.tensors[index]
      buffer = model.buffers[tensor.buffer] if tensor.buffer else None
      if (index in converted or tensor.type != float32 or buffer is None
          or buffer.data is None or not len(buffer.data)):
        continue
      values = np.frombuffer(np.asarray(buffer.data, np.uint8).tobytes(),
                             "<f4")
      half = schema.BufferT()
      half.data = np.frombuffer(values.astype("<f2").tobytes(), np.uint8)
      model.buffers.append(half)
      copy = schema.TensorT()
      copy.shape = tensor.shape
      copy.shapeSignature = tensor.shapeSignature
      copy.type = schema.TensorType.FLOAT16
      copy.buffer = len(model.buffers) - 1
      copy.name = flatbuffer.decode_text(tensor.name) + "_fp16"
      graph.tensors.append(copy)
      converted[index] = len(graph.tensors) - 1
      original_buffers[index] = tensor.buffer
      tensor.buffer = 0
  if not converted:
    return data
  # Drop the float32 copies no tensor refers to any more.
  used = {t.buffer for g in model.subgraphs for t in g.tensors or []}
  for target in converted:
    old = original_buffers[target]
    if old not in used:
      model.buffers[old].data = None
  dequantize = _opcode_index(model, schema.BuiltinOperator.DEQUANTIZE)
  ops = []
  for target, source in converted.items():
    op = schema.OperatorT()
    op.opcodeIndex = dequantize
    op.inputs = np.array([source], np.int32)
    op.outputs = np.array([target], np.int32)
    ops.append(op)
  # Their inputs are constants, so they may run first.
  graph.operators = ops + list(graph.operators)
  return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
