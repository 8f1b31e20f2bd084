"""The Keras 3 side of structured slicing: what differs from tf_keras.

Slicing itself (`slicing`, `channel_groups`, `rebuild`) is shared by both
Keras: their layer APIs are nearly the same. What differs is collected here:

- the guard (`check_slicing_model`, both engines): only Functional and
  Sequential models have a graph to rebuild, and a model that the Keras 3
  engine prunes or quantizes in place must be stripped first;
- reading a variable (`to_numpy`) and a DepthwiseConv's kernel;
- Keras 3 ops called on KerasTensors (`x + 3.0`, `keras.ops.relu(x)`, as in
  keras.applications' MobileNetV3) are nodes of the graph too, without a
  layer; the elementwise ones keep channels apart;
- copying a layer: a `Lambda` is rebuilt around its own function (its
  config holds the function's bytecode, which Keras 3 refuses to load in
  safe mode) and nested graph models are copied layer by layer;
- re-applying masks during `fit` (`KerasMasks`), with `keras.ops`.
"""

import keras
from keras import ops
import numpy as np

from tf_compress._keras import check_model
from tf_compress._keras import is_keras3_object
from tf_compress._keras import keras as tf_keras
from tf_compress.errors import ModelError
from tf_compress.errors import UserInputError
from tf_compress.models.graph import check_any_model
from tf_compress.models.graph import is_graph_model
from tf_compress.models.graph import is_model
from tf_compress.models.graph import iter_layers
from tf_compress.pruning.keras3_pruning import find_pruner

__all__ = ["check_slicing_model", "check_keras3_model",
           "check_not_instrumented", "to_numpy", "depthwise_kernel",
           "classify_operation", "copy_layer", "clone_keeping_input_names",
           "KerasMasks"]

# keras3_qat.QAT_STATE_ATTRIBUTE: the quantization package imports pruning,
# so pruning does not import it back.
_QAT_ATTRIBUTE = "_tf_compress_qat"

_OP_MODULES = ("keras.src.ops.numpy", "keras.src.ops.nn", "keras.src.ops.core")
# Elementwise ops of one tensor (and scalar parameters), finite at 0 with
# their gradients: a masked channel holds zeros, and an inf there (log, 1/x,
# sqrt's gradient) would turn into NaN in the zeroed weights that read it.
_UNARY_OPS = frozenset([
    "Relu", "Relu6", "Sigmoid", "HardSigmoid", "HardSilu", "Silu", "Gelu",
    "Elu", "Selu", "Celu", "Softplus", "Softsign", "LeakyRelu", "LogSigmoid",
    "HardTanh", "Tanh", "Abs", "Absolute", "Negative", "Square", "Exp",
    "Clip", "Cast"])
# Elementwise ops of two operands: a tensor and a scalar, or two tensors.
_BINARY_OPS = frozenset(["Add", "Subtract", "Multiply", "Maximum",
                         "Minimum"])
# Only as `tensor / scalar`.
_DIVISIONS = frozenset(["Divide", "TrueDivide"])


def check_slicing_model(model, what):
  """Checks that `model` is a model slicing can rebuild (either Keras).

  Args:
    model: the caller's model: a Keras 3 or tf_keras model.
    what: the public function's name, for the message.

  Returns:
    `model`, unchanged.

  Raises:
    TypeError: for an object that is not a Keras model.
    ModelError: for a subclassed Keras 3 model (a subclassed tf_keras one
      is refused by the graph analysis, with a `UserInputError`).
  """
  check_any_model(model)
  if is_keras3_object(model):
    return check_keras3_model(model, what)
  return check_model(model)


def to_numpy(variable):
  """A variable's value as a numpy array, for either Keras."""
  if is_keras3_object(variable):
    return np.asarray(ops.convert_to_numpy(variable))
  return np.asarray(tf_keras.backend.get_value(variable))


def depthwise_kernel(layer):
  """A DepthwiseConv's kernel (Keras 3 names it `kernel`)."""
  kernel = getattr(layer, "depthwise_kernel", None)
  return layer.kernel if kernel is None else kernel


def check_keras3_model(model, what):
  """Checks that a Keras 3 `model` has a layer graph that slicing can rebuild.

  Args:
    model: a Keras 3 model.
    what: the public function's name, for the message.

  Returns:
    `model`, unchanged.

  Raises:
    ModelError: for a subclassed model.
  """
  if is_graph_model(model):
    return model
  raise ModelError(
      f"{what} needs a Functional or Sequential model: slicing rebuilds the "
      "layer graph with fewer channels, but got the subclassed model "
      f"{model.name!r} ({type(model).__name__}), whose graph Keras does not "
      "know. Build the same layers with keras.Input (functionally, or in a "
      "keras.Sequential) and copy the weights with set_weights, or use "
      "magnitude pruning (tf_compress.pruning.prune_model), which works on "
      "subclassed models in place")


def check_not_instrumented(model):
  """Refuses a model that the Keras 3 engine prunes or quantizes in place.

  Raises:
    UserInputError: naming what to strip first.
  """
  if find_pruner(model) is not None:
    raise UserInputError(
        f"model {model.name!r} is being pruned (its kernels carry pruning "
        "masks); slice the plain model: call "
        "tf_compress.pruning.strip_pruning(model) first, or slice before "
        "pruning")
  quantized = [path for path, layer in iter_layers(model)
               if hasattr(layer, _QAT_ATTRIBUTE)]
  if quantized:
    raise UserInputError(
        f"model {model.name!r} is instrumented for quantization-aware "
        f"training ({', '.join(quantized[:3])}"
        f"{', ...' if len(quantized) > 3 else ''}); slice the float model: "
        "call tf_compress.quantization.strip_quantization(model) first, or "
        "slice before quantization-aware training")


def _scalar(value):
  return value is None or isinstance(value, (bool, str)) or (
      isinstance(value, (int, float, np.number, np.ndarray)) and
      np.ndim(value) == 0)


def classify_operation(operation, inputs, outputs, arguments):
  """The channel kind of a Keras 3 op node, as `channel_groups` names them.

  Args:
    operation: the `keras.Operation` (not a layer) the node calls.
    inputs: the node's input KerasTensors.
    outputs: its output KerasTensors.
    arguments: its `SymbolicArguments` (tensors and constants).

  Returns:
    `(kind, reason)`: `("passthrough", None)` for an elementwise op of one
    tensor and scalar constants (finite where the tensor is 0), `("merge",
    None)` for an elementwise op of two tensors, else `("unknown", reason)`.
  """
  name = type(operation).__name__
  known = type(operation).__module__ in _OP_MODULES
  constants = [value for value in keras.tree.flatten(
      (arguments.args, arguments.kwargs))
               if not isinstance(value, keras.KerasTensor)]
  if len(outputs) != 1:
    return "unknown", f"op {name} with {len(outputs)} outputs"
  if not all(_scalar(value) for value in constants):
    return "unknown", f"op {name} with a tensor constant"
  if known and name in _UNARY_OPS and len(inputs) == 1:
    return "passthrough", None
  if known and name in _BINARY_OPS:
    if len(inputs) == 1:
      return "passthrough", None
    if len(inputs) == 2:
      return "merge", None
  if known and name in _DIVISIONS and len(inputs) == 1 and (
      arguments.args and arguments.args[0] is inputs[0]):
    return "passthrough", None
  return "unknown", f"op {name}, not known to keep channels apart"


def copy_layer(layer):
  """A new, unbuilt Keras 3 layer (or op) like `layer`, for `clone_model`.

  Args:
    layer: a layer, op or graph sub-model of a Keras 3 model.

  Returns:
    The new layer; nested Sequential and Functional models are copied
    layer by layer, a `Lambda` around the same function.
  """
  if isinstance(layer, keras.layers.Lambda):
    # pylint: disable=protected-access
    return keras.layers.Lambda(
        layer.function, output_shape=layer._output_shape, mask=layer.mask,
        arguments=dict(layer.arguments), name=layer.name,
        dtype=layer.dtype_policy, trainable=layer.trainable)
  if is_model(layer) and is_graph_model(layer):
    return clone_keeping_input_names(layer, copy_layer)
  return layer.__class__.from_config(layer.get_config())


def clone_keeping_input_names(model, clone_function):
  """`keras.models.clone_model`, with the input layers' names kept.

  Keras names a cloned Functional model's inputs after their tensors
  (`keras_tensor_7`); the copy keeps `input_layer`, as a Sequential does.
  """
  if isinstance(model, keras.Sequential):
    return keras.models.clone_model(model, clone_function=clone_function)
  inputs = keras.tree.map_structure(
      lambda tensor: keras.Input(
          batch_shape=tensor.shape, dtype=tensor.dtype,
          # pylint: disable-next=protected-access
          name=tensor._keras_history[0].name),
      model.input)
  return keras.models.clone_model(model, input_tensors=inputs,
                                  clone_function=clone_function)


class KerasMasks:
  """Multiplies Keras 3 variables by fixed 0/1 masks, on any backend.

  Called after every training batch. On TensorFlow the assignments run as
  one traced function (eager updates of mirrored variables are slow); on
  JAX the trainer's state is written back to the variables first, so that
  the next step reads the masked values.

  Args:
    model: the model being trained.
    masks: `[(variable, numpy mask)]`.
  """

  def __init__(self, model, masks):
    self._model = model
    self._masks = [(variable, ops.convert_to_tensor(mask, variable.dtype))
                   for variable, mask in masks]
    self._apply = self._assign
    if keras.backend.backend() == "tensorflow":
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      self._apply = tf.function(self._assign)

  def _assign(self):
    for variable, mask in self._masks:
      variable.assign(ops.multiply(variable, mask))

  def __call__(self):
    sync = getattr(self._model, "jax_state_sync", None)
    if sync is not None:
      sync()
    self._apply()
