"""A per-layer summary of a model as deployed: params, non-zeros, bits, MACs.

`model_summary` describes a Keras model or a `.tflite` file as one row per
layer (Keras) or operator (TFLite), with totals, and compression ratios
against a reference model. It is pure: models in, a JSON-safe dict out;
`model_summary_format.format_summary` prints it.

Keras models are counted as they would be deployed, not as they train:

* a tfmot pruning wrapper counts its layer's weights only (not the mask,
  threshold or step variables); non-zeros are those of `kernel * mask`;
* a tfmot clustering wrapper counts its layer's weights as `strip_clustering`
  exports them (centroids gathered by the current cluster indices). A
  clustered weight is stored as `ceil(log2(clusters))`-bit indices plus a
  float32 codebook, so its memory is `ceil(params * bits / 8)` bytes plus 4
  bytes per centroid, and its row reports `clusters` and `unique` values;
* a quantization-aware (QAT) wrapper counts its fake-quantized weights at
  the quantizer's bit width (int8: one byte each) and, when it has any, its
  layer's `bias` as int32, as TFLite's integer kernels store them; the
  quantizers' min/max and step variables are not parameters, and the input
  `QuantizeLayer` (a QUANTIZE op once exported) has none. Non-zeros are
  counted on the float (trained) values;
* a Keras 3 model being pruned (by the native engine, which instruments
  layers in place) counts its layers' weights only, not the pruning masks,
  and non-zeros are those of `kernel * mask`, as for tfmot's wrapper; tfmot
  is not imported for Keras 3 models;
* other weights are counted at their dtype (float32: 4 bytes; a Keras 3
  int8-quantized kernel: 1 byte); nested models are flattened into rows
  named `outer/inner`.

A `.tflite` file is read from its flatbuffer (verified first, see
`tf_compress.export.inspect_tflite`, so a corrupt file raises
`UserInputError` rather than crashing). Each operator's parameters are the
elements of its constant (buffer-backed) inputs that hold weights: floating
or quantized tensors, and the kernel/bias operands of CONV_2D,
DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV and CONV_3D. Integer
constants without quantization (the shape operand of a RESHAPE, paddings,
axes) are not parameters, so a float32 export has the Keras model's
parameter count (once batch normalization, which the converter folds into
the convolution, is left aside). A constant read through a DEQUANTIZE op (a
float16 export's weights) belongs to the op consuming the dequantized value,
and a constant that several ops share is counted once, at its first use. The
converter may drop an all-zero bias (or share one between ops), so an
untrained model's export can count fewer parameters than the Keras model.
MACs are counted for batch size 1 from the shapes, as `count_macs` does for
Keras: output positions x kernel elements (TRANSPOSE_CONV: input positions).
"""

import collections
import functools
import math
import os

import numpy as np

from tf_compress._keras import is_keras3_object
from tf_compress._keras import keras
from tf_compress.analysis.flops import count_macs
from tf_compress.analysis.keras3_weights import pruning_masks
from tf_compress.analysis.keras3_weights import weight_values
from tf_compress.errors import ModelError, UserInputError
from tf_compress.export import flatbuffer
from tf_compress.export import litert
from tf_compress.models.graph import check_any_model
from tf_compress.models.graph import check_graph_model
from tf_compress.models.graph import graph_nodes
from tf_compress.models.graph import is_graph_model
from tf_compress.models.graph import is_model
from tf_compress.models.graph import unwrap
from tf_compress.models.persistence import load_tfmot_model

__all__ = ["model_summary", "RATIO_KEYS"]

# Totals compared with a reference model, as reference / model.
RATIO_KEYS = ("params", "nonzero", "memory_bytes", "macs")

_CODEBOOK_BITS = 32  # tfmot's centroids are float32.
_KERNEL_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
               "TRANSPOSE_CONV", "CONV_3D")
_BITS = {"int4": 4, "uint4": 4, "bfloat16": 16, "bool": 8}

_Wrappers = collections.namedtuple("_Wrappers", "prune cluster quantize")


@functools.lru_cache(maxsize=None)
def _tfmot_wrappers():
  """tfmot's pruning, clustering and QAT wrapper classes.

  tfmot is imported on first use, not when `tf_compress.analysis` is.
  """
  # pylint: disable=g-import-not-at-top,line-too-long
  from tf_compress._tfmot import tfmot, tfmot_module
  # tfmot exports neither the pruning nor the clustering wrapper class.
  ClusterWeights = tfmot_module(
      "python.core.clustering.keras.cluster_wrapper").ClusterWeights
  PruneLowMagnitude = tfmot_module(
      "python.core.sparsity.keras.pruning_wrapper").PruneLowMagnitude
  # pylint: enable=g-import-not-at-top,line-too-long
  return _Wrappers(PruneLowMagnitude, ClusterWeights,
                   tfmot.quantization.keras.QuantizeWrapper)


def model_summary(model_or_path, reference=None, *, safe_mode=True):
  """Summarizes a model layer by layer, as deployed, with totals and ratios.

  Args:
    model_or_path: a tf_keras model (plain, or with tfmot pruning,
      clustering or QAT wrappers), a Keras 3 model (plain or being pruned),
      a path to a `.keras`/`.h5` file of either Keras (or a SavedModel
      directory) or to a `.tflite` file, or a TFLite model's bytes.
    reference: None, or a model to compare with, given in any of the same
      forms or as a summary this function returned.
    safe_mode: refuse Keras files that would run code on loading (see
      `tf_compress.load_model`); False only for files you trust.

  Returns:
    A JSON-safe dict:

    * `name`, `source` ("keras" or "tflite"), `file_bytes` (the file's size,
      or None for a model in memory);
    * `rows`: per layer (Keras, in graph order, input layers left out) or
      operator (TFLite, in execution order): `name`, `type` (layer class or
      op name), `output_shape` (a list, None for unknown sizes; a list of
      lists for several outputs; None when unknown), `params`, `nonzero`,
      `dtypes` (the weights' storage labels such as "float32", "int8" or
      "2-bit" for clustered weights), `bits` (their distinct bit widths),
      `memory_bytes`, `macs` (None when shapes are unknown) and `weights`:
      per weight `name`, `shape`, `params`, `nonzero`, `dtype`, `bits`,
      `bytes`, plus `clusters` and `unique` for clustered weights;
    * `totals`: `layers`, `params`, `nonzero`, `memory_bytes`, `macs` (None
      when unknown), `params_by_bits` (bit width as a string -> params),
      `float32_bytes` (4 bytes per param) and `float32_ratio`
      (`float32_bytes / memory_bytes`, None for 0 bytes);
    * `reference`: None, or the reference's `name`, `source` and `totals`;
      `ratios`: None, or reference / model for each of `RATIO_KEYS`
      (None where the model's value is 0 or either is unknown).

  Raises:
    TypeError: for an object that is not a model.
    ModelError: a file that is missing or is not a Keras model, or that
      `safe_mode` refuses (a Lambda layer, a full-model `.h5` file, ...).
    UserInputError: a `.tflite` file that is corrupt or not a model.

  Example:
    >>> model_summary(model, reference=wide_model)["ratios"]["params"]
    1.91...
  """
  summary = _summarize(model_or_path, "model_or_path", safe_mode)
  summary["reference"] = summary["ratios"] = None
  if reference is not None:
    ref = (reference if isinstance(reference, dict) and "totals" in reference
           else _summarize(reference, "reference", safe_mode))
    summary["reference"] = {"name": ref["name"], "source": ref["source"],
                            "totals": ref["totals"]}
    summary["ratios"] = {key: _ratio(ref["totals"][key],
                                     summary["totals"][key])
                         for key in RATIO_KEYS}
  return summary


def _ratio(reference, value):
  if reference is None or value is None or value == 0:
    return None
  return reference / value


def _summarize(obj, argument, safe_mode=True):
  if isinstance(obj, (bytes, bytearray, memoryview)):
    return _tflite_summary(bytes(obj), "<TFLite model bytes>", None)
  if isinstance(obj, (str, os.PathLike)):
    path = os.fspath(obj)
    name = os.path.basename(path.rstrip(os.sep)) or path
    if not os.path.exists(path):
      raise ModelError(f"model file not found: '{path}'; give a .keras, .h5 "
                       "or .tflite file")
    size = os.path.getsize(path) if os.path.isfile(path) else None
    if _is_tflite_file(path):
      return _tflite_summary(path, name, size)
    summary = _keras_summary(load_tfmot_model(path, safe_mode=safe_mode))
    summary["name"], summary["file_bytes"] = name, size
    return summary
  check_any_model(obj, argument)
  return _keras_summary(obj)


def _is_tflite_file(path):
  if path.lower().endswith(".tflite"):
    return True
  if not os.path.isfile(path):
    return False
  with open(path, "rb") as handle:
    return handle.read(8)[4:8] == b"TFL3"  # The flatbuffer file identifier.


def _totals(rows):
  params = sum(r["params"] for r in rows)
  memory = sum(r["memory_bytes"] for r in rows)
  macs = [r["macs"] for r in rows]
  by_bits = {}
  for row in rows:
    for weight in row["weights"]:
      by_bits[weight["bits"]] = by_bits.get(weight["bits"], 0) + weight[
          "params"]
  return {
      "layers": len(rows),
      "params": params,
      "nonzero": sum(r["nonzero"] for r in rows),
      "memory_bytes": memory,
      "macs": None if any(m is None for m in macs) else sum(macs),
      "params_by_bits": {str(b): by_bits[b] for b in sorted(by_bits)},
      "float32_bytes": 4 * params,
      "float32_ratio": 4 * params / memory if memory else None,
  }


def _row(name, kind, output_shape, weights, macs):
  labels = []
  for weight in weights:
    label = (f"{weight['bits']}-bit" if weight.get("clusters")
             else weight["dtype"])
    if label not in labels:
      labels.append(label)
  return {
      "name": name, "type": kind, "output_shape": output_shape,
      "params": sum(w["params"] for w in weights),
      "nonzero": sum(w["nonzero"] for w in weights),
      "dtypes": labels,
      "bits": sorted({w["bits"] for w in weights}),
      "memory_bytes": sum(w["bytes"] for w in weights),
      "macs": macs, "weights": weights,
  }


def _summary(name, source, rows, file_bytes):
  return {"name": name, "source": source, "file_bytes": file_bytes,
          "rows": rows, "totals": _totals(rows)}


# Keras models.


def _keras_summary(model):
  try:
    macs = {r["layer"]: r["macs"] for r in count_macs(model)["per_layer"]}
  except UserInputError:  # a subclassed model or unknown dimensions
    macs = None
  masks = pruning_masks(model) if is_keras3_object(model) else None
  rows = []
  _collect(model, "", rows, macs, set(), masks)
  return _summary(model.name, "keras", rows, None)


def _shape(shape):
  if shape is None:
    return None
  if isinstance(shape, list) and len(shape) == 1:
    shape = shape[0]
  if isinstance(shape, list):
    return [_shape(s) for s in shape]
  return [None if d is None else int(d) for d in shape]


def _calls(model):
  """`(layer, output shape)` per call, in graph order (None: unknown)."""
  if is_keras3_object(model) and is_graph_model(model):
    try:
      return [(node.layer, node.output_shapes)
              for node in graph_nodes(model)]
    except UserInputError:  # a Sequential not built yet
      pass
  elif is_graph_model(model) and getattr(model, "_nodes_by_depth", None):
    return [(node.layer, node.output_shapes) for node in graph_nodes(model)]
  return [(layer, None) for layer in model.layers]


def _strip_clustering(model):
  """tfmot's `strip_clustering` of `model`, or None without its wrappers.

  Clustered layers are counted as they are exported. tfmot refreshes each
  wrapper's cluster assignments as it strips; the wrappers' variables are
  restored afterwards, so `model` is left as it was.
  """
  # pylint: disable-next=g-import-not-at-top
  from tf_compress._tfmot import tfmot
  wrappers = [layer for layer in model.layers
              if isinstance(layer, _tfmot_wrappers().cluster)]
  if not wrappers:
    return None
  check_graph_model(model, "summarizing clustering wrappers")
  variables = [v for wrapper in wrappers for v in wrapper.variables]
  saved = keras.backend.batch_get_value(variables)
  try:
    return tfmot.clustering.keras.strip_clustering(model)
  finally:
    keras.backend.batch_set_value(list(zip(variables, saved)))


def _tfmot_weigher(model):
  """For tf_keras `model`: layer -> (the layer deployed, its weight entries)."""
  stripped = _strip_clustering(model)

  def weigh(layer):
    return _tfmot_inner(layer), _layer_weights(layer, stripped)

  return weigh


def _keras3_weigh(masks, layer):
  """Like `_tfmot_weigher`'s, for a Keras 3 layer (`masks`: the model's)."""
  return layer, [_entry(variable, value, bits=8 * value.dtype.itemsize,
                        dtype=value.dtype.name)
                 for variable, value in weight_values(layer, masks)]


def _collect(model, prefix, rows, macs, seen, masks):
  """Appends the rows of `model`; `masks`: None for a tf_keras model."""
  weigh = (_tfmot_weigher(model) if masks is None
           else functools.partial(_keras3_weigh, masks))
  for layer, output_shape in _calls(model):
    inner = unwrap(layer)
    if is_model(inner):
      _collect(inner, f"{prefix}{layer.name}/", rows, macs, seen, masks)
      continue
    if id(layer) in seen:  # A shared layer: count_macs added every call.
      continue
    seen.add(id(layer))
    deployed, weights = weigh(layer)
    rows.append(_row(
        f"{prefix}{deployed.name}", type(deployed).__name__,
        _shape(output_shape), weights,
        None if macs is None else macs.get(f"{prefix}{layer.name}", 0)))


def _tfmot_inner(layer):
  if isinstance(layer, _tfmot_wrappers()):
    return layer.layer
  return layer


def _is_input_quantizer(layer):
  return any(base.__name__ == "QuantizeLayer" and
             (base.__module__ or "").startswith("tensorflow_model_optimization")
             for base in type(layer).__mro__)


def _basename(variable):
  return variable.name.split(":")[0].rpartition("/")[2]


def _entry(variable, value, bits=None, dtype=None, nbytes=None):
  value = np.asarray(value)
  dtype = dtype or np.dtype(variable.dtype.as_numpy_dtype).name
  bits = bits or 8 * np.dtype(variable.dtype.as_numpy_dtype).itemsize
  return {"name": _basename(variable), "shape": [int(d) for d in value.shape],
          "params": int(value.size), "nonzero": int(np.count_nonzero(value)),
          "dtype": dtype, "bits": int(bits),
          "bytes": int(math.ceil(value.size * bits / 8) if nbytes is None
                       else nbytes)}


def _layer_weights(layer, stripped):
  """Weight entries of one layer (or tfmot wrapper), as deployed."""
  wrappers = _tfmot_wrappers()
  if isinstance(layer, wrappers.prune):
    masks = {id(w): m for w, m, _ in layer.pruning_vars}
    variables = list(layer.layer.weights)
    values = keras.backend.batch_get_value(
        variables + [masks[id(v)] for v in variables if id(v) in masks])
    mask_values = iter(values[len(variables):])
    return [_entry(v, value * next(mask_values) if id(v) in masks else value)
            for v, value in zip(variables, values)]
  if isinstance(layer, wrappers.cluster):
    return _clustered_weights(layer, stripped.get_layer(layer.layer.name))
  if isinstance(layer, wrappers.quantize):
    return _quantized_weights(layer)
  if _is_input_quantizer(layer):
    return []  # Only range and step variables: a QUANTIZE op's parameters.
  variables = list(layer.weights)
  return [_entry(v, value) for v, value in
          zip(variables, keras.backend.batch_get_value(variables))]


def _clustered_weights(wrapper, clean):
  clustered = set(wrapper.original_clusterable_weights)
  entries = []
  for variable, value in zip(clean.weights, clean.get_weights()):
    name = _basename(variable)
    if name not in clustered:
      entries.append(_entry(variable, value))
      continue
    clusters = int(wrapper.number_of_clusters)
    bits = max(1, math.ceil(math.log2(clusters)))
    codebook = int(np.prod(wrapper.cluster_centroids[name].shape))
    entry = _entry(variable, value, bits=bits, nbytes=(
        math.ceil(value.size * bits / 8) + codebook * _CODEBOOK_BITS // 8))
    entry["clusters"] = clusters
    entry["unique"] = int(np.unique(value).size)
    entries.append(entry)
  return entries


def _quantized_weights(wrapper):
  # The wrapper swaps its layer's kernel attribute for the fake-quantized
  # tensor, so the kernel variable is found in the wrapper's weight list.
  # pylint: disable-next=protected-access
  quantized = [(w, q) for w, q, _ in wrapper._weight_vars]
  ids = {id(w) for w, _ in quantized}
  rest = [w for w in wrapper.layer.weights if id(w) not in ids]
  variables = [w for w, _ in quantized] + rest
  values = keras.backend.batch_get_value(variables)
  entries = []
  for (variable, quantizer), value in zip(quantized, values):
    bits = int(getattr(quantizer, "num_bits", 8))
    entries.append(_entry(variable, value, bits=bits, dtype=(
        f"int{bits}" if bits in (4, 8, 16) else f"{bits}-bit int")))
  for variable, value in zip(rest, values[len(quantized):]):
    if quantized and _basename(variable) == "bias":
      # TFLite's integer kernels add an int32 bias.
      entries.append(_entry(variable, value, bits=32, dtype="int32"))
    else:
      entries.append(_entry(variable, value))
  return entries


# TFLite flatbuffers.


def _ints(values):
  return [] if values is None else [int(v) for v in values]


def _is_param(weight):
  return (weight["dtype"].startswith(("float", "bfloat")) or
          weight["quantization"] is not None or
          weight["role"] in ("kernel", "bias"))


def _tflite_bits(weight):
  if weight["dtype"] in _BITS:
    return _BITS[weight["dtype"]]
  try:
    return 8 * np.dtype(weight["dtype"]).itemsize
  except TypeError:
    return 8 * weight["bytes"] // max(1, weight["size"] or 1)


def _tflite_entry(weight):
  bits = _tflite_bits(weight)
  size = weight["size"]
  if size is None:  # No numpy form (int4...): count from the bytes.
    size = 8 * weight["bytes"] // bits
  nonzero = weight["nonzero"] if weight["nonzero"] is not None else size
  return {"name": weight["name"], "shape": weight["shape"], "params": size,
          "nonzero": nonzero, "dtype": weight["dtype"], "bits": bits,
          "bytes": weight["bytes"]}


def _tflite_macs(op_name, inputs, outputs, tensors, resolve):
  """MACs of one kernel op for batch size 1 (0 for other ops).

  `inputs` keeps the op's operand positions (-1 for an absent operand).
  """
  needed = 3 if op_name == "TRANSPOSE_CONV" else 2
  if (op_name not in _KERNEL_OPS or not outputs or len(inputs) < needed
      or min(inputs[:needed]) < 0):
    return 0
  kernel = _ints(tensors[resolve(inputs[1])].shape)
  if op_name == "TRANSPOSE_CONV":  # (output_shape, weights, input, bias)
    spatial = _ints(tensors[inputs[2]].shape)[1:-1]
  elif op_name == "FULLY_CONNECTED":
    spatial = _ints(tensors[outputs[0]].shape)[:-1]
  else:
    spatial = _ints(tensors[outputs[0]].shape)[1:-1]
  return int(np.prod(spatial, dtype=np.int64) *
             np.prod(kernel, dtype=np.int64))


def _tflite_summary(path_or_bytes, name, file_bytes):
  # inspect_tflite runs LiteRT's verifier first, so parsing is safe below.
  info = flatbuffer.inspect_tflite(path_or_bytes, per_tensor=True)
  data, _ = litert.read_model_bytes(path_or_bytes)
  model = flatbuffer.parse_model(data, name)
  subgraph = model.subgraphs[0]
  tensors = subgraph.tensors or []
  opcodes = [flatbuffer.op_name(code) for code in model.operatorCodes or []]
  constants = {w["index"]: w for w in info["weights"]}
  operators = [(opcodes[op.opcodeIndex] if op.opcodeIndex < len(opcodes)
                else f"UNKNOWN_OPCODE_{op.opcodeIndex}",
                [i if i < len(tensors) else -1 for i in _ints(op.inputs)],
                [i for i in _ints(op.outputs) if 0 <= i < len(tensors)])
               for op in subgraph.operators or []]
  dequantized = {outputs[0]: inputs[0] for op_name, inputs, outputs
                 in operators if op_name == "DEQUANTIZE" and inputs
                 and outputs and inputs[0] in constants}

  def resolve(index):
    return dequantized.get(index, index)

  rows, claimed = [], set()
  for op_name, inputs, outputs in operators:
    weights = []
    if not (op_name == "DEQUANTIZE" and outputs and outputs[0] in
            dequantized):
      for index in map(resolve, inputs):
        weight = constants.get(index) if index >= 0 else None
        if weight is None or index in claimed or not _is_param(weight):
          continue
        claimed.add(index)
        weights.append(_tflite_entry(weight))
    if outputs:
      out = tensors[outputs[0]]
      signature = (out.shapeSignature if out.shapeSignature is not None
                   else out.shape)
      shape = [None if d < 0 else d for d in _ints(signature)]
      label = flatbuffer.decode_text(out.name).split(";")[0]
    else:
      shape, label = None, op_name.lower()
    rows.append(_row(label, op_name, shape, weights,
                     _tflite_macs(op_name, inputs, outputs, tensors,
                                  resolve)))
  return _summary(name, "tflite", rows, file_bytes)
