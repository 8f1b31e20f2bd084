"""A TFLite converter over a model's frozen inference function.

`TFLiteConverter.from_keras_model` and `from_saved_model` write the model
as a SavedModel and load it back (twice) before converting. For a model
with one input and one output the converter can instead freeze the traced
inference function's variables into constants in memory
(`from_concrete_functions` with `experimental_lower_to_saved_model=False`),
which gives the same graph and the same LiteRT outputs. Measured on the
2-core machine (Keras 3): MobileNetV2 (alpha 0.35, 96x96) float32 6.2 s
-> 1.3 s, and as a QAT int8 file 16.5 s -> 2.7 s; a QAT EfficientNetB0
27.7 s -> 7.8 s; ResNet50, whose 24 MB of constants dominate, 25 s either
way.

That path writes no signature and names the input and output tensors
after the graph's own placeholders, so `add_signature` writes in what the
SavedModel path gives: a `serving_default` signature (the input keyed by
the Keras input name; the output `output_0` for Keras 3 models and the
output layer's name for tf_keras ones) and the tensor names
`serving_default_<input>:0` and `StatefulPartitionedCall:0`. LiteRT's
`CompiledModel` (the GPU benchmark) needs that signature.
"""

import dataclasses

from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils

from tf_compress._keras import tf
from tf_compress.export import keras3_convert

__all__ = ["FrozenSource", "frozen_source", "add_signature"]

SIGNATURE_KEY = "serving_default"
_OUTPUT_TENSOR = "StatefulPartitionedCall:0"


@dataclasses.dataclass
class FrozenSource:
  """A converter over a frozen inference function, and its signature."""
  converter: object
  input_key: str
  output_key: str


def _keras3_input(model):
  """`(shape with batch, dtype, name)` of a one-input Keras 3 model."""
  shapes = keras3_convert.keras3_input_shapes(model)
  if len(shapes) != 1 or isinstance(
      getattr(model, "_inputs_struct", None), dict):
    return None
  inputs = getattr(model, "inputs", None)
  if inputs:
    return (None,) + tuple(shapes[0]), inputs[0].dtype, inputs[0].name
  return (None,) + tuple(shapes[0]), model.compute_dtype, "inputs"


def _tf_keras_input(model):
  """`(shape, dtype, name)` of a one-input tf_keras graph model."""
  inputs = getattr(model, "inputs", None)
  names = getattr(model, "input_names", None)
  if not inputs or len(inputs) != 1 or not names or isinstance(
      getattr(model, "_nested_inputs", None), dict):
    return None
  return tuple(inputs[0].shape), inputs[0].dtype, names[0]


def frozen_source(model, keras3):
  """A `FrozenSource` for `model`, or None where this path does not apply.

  It applies to models with one (non-dict) input and one output tensor: a
  Keras 3 model of any kind that `keras3_input_shapes` accepts, or a
  tf_keras Functional or Sequential model. The caller converts the others
  through the SavedModel path.
  """
  found = _keras3_input(model) if keras3 else _tf_keras_input(model)
  if found is None:
    return None
  shape, dtype, name = found
  if keras3:
    output_key = "output_0"
  else:
    output_names = getattr(model, "output_names", None) or []
    if len(output_names) != 1:
      return None
    output_key = output_names[0]
  spec = tf.TensorSpec(shape, dtype, name=name)
  function = tf.function(lambda x: model(x, training=False),
                         input_signature=[spec])
  concrete = function.get_concrete_function()
  if len(concrete.outputs) != 1:
    return None
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [concrete], model)
  converter.experimental_lower_to_saved_model = False
  return FrozenSource(converter, name, output_key)


def add_signature(data, input_key, output_key):
  """TFLite bytes `data` with the SavedModel path's signature and names.

  Args:
    data: a one-subgraph model with one input and one output and no
      signature (what `frozen_source`'s converter writes).
    input_key: the signature's input name (the Keras input's name).
    output_key: the signature's output name.

  Returns:
    The same graph and weights, with the `serving_default` signature and
    the input and output tensors renamed as the SavedModel path names them.
  """
  model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
  graph = model.subgraphs[0]
  if len(model.subgraphs) != 1 or model.signatureDefs or len(
      graph.inputs) != 1 or len(graph.outputs) != 1:
    return data
  input_index, output_index = int(graph.inputs[0]), int(graph.outputs[0])
  graph.tensors[input_index].name = f"{SIGNATURE_KEY}_{input_key}:0"
  graph.tensors[output_index].name = _OUTPUT_TENSOR
  signature = schema.SignatureDefT()
  signature.signatureKey = SIGNATURE_KEY
  signature.subgraphIndex = 0
  signature.inputs = [_tensor_map(input_key, input_index)]
  signature.outputs = [_tensor_map(output_key, output_index)]
  model.signatureDefs = [signature]
  return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _tensor_map(name, index):
  entry = schema.TensorMapT()
  entry.name = name
  entry.tensorIndex = index
  return entry
