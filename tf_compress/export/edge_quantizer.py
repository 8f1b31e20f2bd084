"""Weight-only 4-bit export modes through ai-edge-quantizer.

ai-edge-quantizer (AEQ) quantizes a float TFLite file by recipe: per op
type and per regex over op output names, which algorithm and which bits.
These modes start from the model's float32 file (`mode="float32"`):

* `int4_weight_only`: 4-bit kernels, one scale per output channel, for
  FULLY_CONNECTED, CONV_2D, BATCH_MATMUL and EMBEDDING_LOOKUP; a DEQUANTIZE
  op turns each into float32 before its op, so activations and arithmetic
  stay float32 (AEQ's `weight_only_wi4_afp32`). DEPTHWISE_CONV_2D has no
  4-bit form in AEQ and keeps float32 weights.
* `int4_blockwise`: 4-bit FULLY_CONNECTED kernels with one scale per block
  of 32 input weights; activations stay float32 in the file and LiteRT's
  XNNPACK computes the layer in integers, quantizing its input on the fly
  (AEQ's `dynamic_wi4_afp32` with `BLOCKWISE_32`). Only FULLY_CONNECTED
  and EMBEDDING_LOOKUP have blockwise kernels; other ops keep float32.

There is no int8 blockwise mode: AEQ 0.10.0's policy offers blockwise
granularity for 4-bit (and 2-bit) weights only, and a file forced to int8
blockwise does not run on LiteRT 2.3.0 (XNNPACK rejects INT8 blockwise
tensors; the weight-only form crashes in DEQUANTIZE). Both were measured
here.

AEQ skips, silently, an op that its policy does not support, so every
file is checked: a model none of whose kernels became 4-bit is an error.
AEQ also gives an all-zero channel or block (a pruned unit) the scale 0,
which XNNPACK refuses for 4-bit tensors ("unsupported scale value"); such
a scale is set to 1, which changes nothing, every value it scales being 0.
"""

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils

from tf_compress.errors import ModelError
from tf_compress.export import flatbuffer
from tf_compress.export import quiet

__all__ = ["EDGE_QUANTIZER_MODES", "quantize_float_model"]

EDGE_QUANTIZER_MODES = ("int4_weight_only", "int4_blockwise")
_BLOCK = "BLOCKWISE_32"


def _recipe(quantizer, qtyping, mode):
  ops = qtyping.TFLOperationName
  if mode == "int4_weight_only":
    quantizer.add_weight_only_config(
        regex=".*", operation_name=ops.ALL_SUPPORTED, num_bits=4,
        granularity=qtyping.QuantGranularity.CHANNELWISE)
  else:
    for op in (ops.FULLY_CONNECTED, ops.EMBEDDING_LOOKUP):
      quantizer.add_dynamic_config(
          regex=".*", operation_name=op, num_bits=4,
          granularity=qtyping.QuantGranularity[_BLOCK])


def _without_zero_scales(data):
  """`data` with every quantization scale of 0 set to 1 (see above)."""
  model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
  changed = False
  floats = {schema.TensorType.FLOAT16: "<f2", schema.TensorType.FLOAT32: "<f4"}
  for graph in model.subgraphs or []:
    for tensor in graph.tensors or []:
      q = tensor.quantization
      if q is None:
        continue
      if q.scale is not None and len(q.scale):
        scale = np.asarray(q.scale, np.float32)
        if np.any(scale == 0):
          q.scale = np.where(scale == 0, 1.0, scale).astype(np.float32)
          changed = True
      blockwise = schema.QuantizationDetails.BlockwiseQuantization
      if q.detailsType != blockwise or q.details is None:
        continue
      scales = graph.tensors[q.details.scales]
      buffer = model.buffers[scales.buffer]
      dtype = floats.get(scales.type)
      if dtype is None or buffer.data is None:
        continue
      values = np.frombuffer(np.asarray(buffer.data, np.uint8).tobytes(),
                             dtype)
      if np.any(values == 0):
        fixed = np.where(values == 0, 1.0, values).astype(dtype)
        buffer.data = np.frombuffer(fixed.tobytes(), np.uint8)
        changed = True
  if not changed:
    return data
  return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def quantize_float_model(float_data, mode, model_name="model",
                         verbose=False):
  """Quantizes a float32 TFLite model in one of `EDGE_QUANTIZER_MODES`.

  Args:
    float_data: the float32 TFLite bytes (`convert_to_tflite(m, "float32")`).
    mode: one of `EDGE_QUANTIZER_MODES`.
    model_name: the Keras model's name, for messages.
    verbose: show ai-edge-quantizer's own output.

  Returns:
    The quantized TFLite bytes.

  Raises:
    ModelError: when no kernel of the model could be quantized in `mode`
      (for `int4_blockwise`: a model without Dense layers).
  """
  # Imported here: only these modes need it, and it pulls in its policies.
  # pylint: disable-next=g-import-not-at-top
  from ai_edge_quantizer import qtyping, quantizer as aeq
  with quiet.quiet_converter(verbose):
    engine = aeq.Quantizer(bytearray(float_data))
    _recipe(engine, qtyping, mode)
    result = engine.quantize(enable_progress_report=False)
  data = _without_zero_scales(bytes(result.quantized_model))
  kernels = flatbuffer.inspect_tflite(data)["kernel_dtypes"]
  if not kernels.get("int4"):
    supported = ("FULLY_CONNECTED (Dense)" if mode == "int4_blockwise" else
                 "FULLY_CONNECTED, CONV_2D, BATCH_MATMUL")
    raise ModelError(
        f"{mode} export of model '{model_name}' quantized no kernel (kernel "
        f"dtypes {kernels}); it applies to {supported} ops only. Use "
        "mode='int8' or 'dynamic' for this model.")
  return data
