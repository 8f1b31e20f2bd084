"""Quantization-aware training (QAT) of Keras 3 models, native (no tfmot).

The Keras 3 engine instruments layers where they stand, the way Keras 3's
own `model.quantize` does, so Sequential, Functional, subclassed and nested
models are all handled the same way. It simulates TFLite's 8-bit scheme:

* weights: symmetric int8 (narrow range, zero point 0), per output channel
  for convolutions (Conv1D/2D/3D, DepthwiseConv2D), per tensor for Dense;
* activations: asymmetric int8 per tensor, with ranges that follow a
  moving average of each batch's min and max (the first batch sets them);
* BatchNormalization after a convolution or Dense layer is folded into it:
  the kernel is scaled by `gamma / sqrt(moving_variance + epsilon)` before
  it is fake-quantized, the way the TFLite kernel will hold it, and the BN
  layer becomes an identity. Its moving statistics keep following the
  batches (recovered from the folded output) until `QATFreezeCallback`
  freezes them; training and inference both normalise with them;
* ReLU and ReLU6 are fused: no fake-quant op sits between a layer and its
  ReLU/ReLU6 (as an activation argument, or as the next layer).

Each instrumented layer gets a `QATState` sublayer holding its ranges, so
they are saved with the model's weights and restored by `BackupAndRestore`.
Where each fake-quant goes is read from the model's graph: the Functional
graph, or for a subclassed model a symbolic trace of its `call`. Without a
graph (a `call` that cannot be traced), every chosen layer quantizes its
inputs and outputs and BatchNormalization is not folded: still an int8
model, with some extra requantize steps.

The TFLite converter reads the fake-quant ops (`tf.quantization.
fake_quant_*`, which `keras.quantizers.fake_quant_with_min_max_vars` runs on
the TensorFlow backend), so `convert_to_tflite(qat, "int8")` needs no
calibration data.
"""

import os
import re
import tempfile
import zipfile

import keras
from keras import ops

from tf_compress.errors import ModelError
from tf_compress.errors import UserInputError
from tf_compress.models.graph import is_graph_model
from tf_compress.models.persistence import load_model

__all__ = ["QATState", "quantize_keras3_model", "strip_keras3_quantization",
           "keras3_qat_states", "is_keras3_qat", "freeze_keras3_qat",
           "unfolded_batch_norms", "load_keras3_qat_model",
           "QAT_STATE_ATTRIBUTE", "KERNEL_SOURCE_ATTRIBUTE"]

QAT_STATE_ATTRIBUTE = "_tf_compress_qat"
# A clustering or sparsity state (`keras3_kernel_source`) may stand in for
# a layer's kernel: the object at this attribute has `weight_name`,
# `forward_kernel(variable)` (the tensor the forward pass uses instead of
# the variable) and `weights` (its own variables, not the float model's).
KERNEL_SOURCE_ATTRIBUTE = "_tf_compress_kernel_source"
_MODEL_MARK = "_tf_compress_qat_layers"

_WEIGHT_LAYERS = ("Dense", "Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D")
_FOLDABLE = ("Dense", "Conv1D", "Conv2D", "DepthwiseConv2D")
# Layers that only move, select or drop values: TFLite keeps their input's
# quantization, so they need no range of their own.
_PASS_THROUGH = (
    "InputLayer", "Flatten", "Reshape", "Permute", "Dropout",
    "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "GaussianDropout", "AlphaDropout", "Identity",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "GlobalMaxPooling3D", "ZeroPadding1D",
    "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D",
    "Cropping3D", "UpSampling1D", "UpSampling2D", "RepeatVector")
# Weightless layers that compute new values: their outputs get a range.
_RANGE_LAYERS = (
    "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
    "Concatenate", "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU",
    "Softmax", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalAveragePooling3D", "BatchNormalization", "LayerNormalization",
    "Rescaling", "Normalization")
_EMA_DECAY = 0.99
_MIN_SCALE = 1e-8


def _class_name(layer):
  return type(layer).__name__


def _kind(layer):
  """`weights`, `range`, `pass` or None (a layer we cannot quantize)."""
  for base in type(layer).__mro__:
    name = base.__name__
    if name in _WEIGHT_LAYERS:
      return "weights"
    if name in _PASS_THROUGH:
      return "pass"
    if name in _RANGE_LAYERS:
      return "range"
  if not layer.weights:
    return "range"
  return None


def _activation_name(activation):
  if activation is None:
    return "linear"
  return getattr(activation, "__name__", type(activation).__name__)


def _fusible_activation(layer):
  """True when `layer` (a ReLU-like layer) fuses into its producer."""
  name = _class_name(layer)
  if name == "ReLU":
    return (float(layer.negative_slope) == 0.0 and
            float(layer.threshold) == 0.0 and
            layer.max_value in (None, 6.0, 6))
  if name == "Activation":
    return _activation_name(layer.activation) in ("relu", "relu6")
  return False


@keras.saving.register_keras_serializable(package="tf_compress")
class QATState(keras.layers.Layer):
  """The fake-quant ranges of one instrumented layer (a sublayer of it).

  Variables: `input_min_<i>`/`input_max_<i>` for each quantized input,
  `output_min`/`output_max` (and `pre_min`/`pre_max` before a non-fused
  activation), `seen` (ranges set by a first batch), `frozen` (1 after
  `QATFreezeCallback`) and `bn_frozen`.

  Args:
    inputs: indices of the inputs to quantize.
    output: quantize the output.
    pre_activation: also quantize before the layer's own activation.
    decay: moving-average decay of the ranges.
  """

  def __init__(self, inputs=(), output=True, pre_activation=False,
               decay=_EMA_DECAY, **kwargs):
    super().__init__(**kwargs)
    self.quantized_inputs = tuple(int(i) for i in inputs)
    self.quantize_output = bool(output)
    self.pre_activation = bool(pre_activation)
    self.decay = float(decay)
    self.ranges = {}

    def scalar(name, value):
      return self.add_weight(shape=(), initializer=keras.initializers.Constant(
          value), trainable=False, name=name, aggregation="mean")

    for i in self.quantized_inputs:
      self.ranges[f"input_{i}"] = (scalar(f"input_min_{i}", -6.0),
                                   scalar(f"input_max_{i}", 6.0))
    if self.pre_activation:
      self.ranges["pre"] = (scalar("pre_min", -6.0), scalar("pre_max", 6.0))
    if self.quantize_output:
      self.ranges["output"] = (scalar("output_min", -6.0),
                               scalar("output_max", 6.0))
    self.seen = scalar("seen", 0.0)
    self.frozen = scalar("frozen", 0.0)
    self.bn_frozen = scalar("bn_frozen", 0.0)
    self.built = True

  def fake_quant(self, key, x, training):
    """Fake-quantizes `x` with range `key`, updating it in training."""
    low, high = self.ranges[key]
    x32 = ops.cast(x, "float32")
    if training:
      batch_low = ops.minimum(ops.min(x32), 0.0)
      batch_high = ops.maximum(ops.max(x32), 0.0)
      seen = ops.cast(self.seen > 0.5, "float32")
      live = ops.cast(self.frozen < 0.5, "float32")

      def follow(variable, batch):
        ema = variable * self.decay + batch * (1.0 - self.decay)
        new = seen * ema + (1.0 - seen) * batch
        value = live * new + (1.0 - live) * variable
        variable.assign(ops.stop_gradient(value))
        return value

      low_value, high_value = follow(low, batch_low), follow(high, batch_high)
    else:
      low_value, high_value = low, high
    out = keras.quantizers.fake_quant_with_min_max_vars(
        x32, ops.stop_gradient(low_value), ops.stop_gradient(high_value),
        num_bits=8, narrow_range=False)
    return ops.cast(out, x.dtype)

  def mark_seen(self, training):
    if training:
      self.seen.assign(ops.ones_like(self.seen))

  def get_config(self):
    config = super().get_config()
    config.update(inputs=list(self.quantized_inputs),
                  output=self.quantize_output,
                  pre_activation=self.pre_activation, decay=self.decay)
    return config


def _quantize_kernel(kernel, per_channel, depthwise=False):
  """Symmetric int8 fake-quant of a kernel (narrow range, zero point 0)."""
  w = ops.cast(kernel, "float32")
  shape = ops.shape(w)
  if depthwise:  # (..., in, multiplier): TFLite's channels are in*mult.
    w = ops.reshape(w, tuple(shape[:-2]) + (shape[-2] * shape[-1],))
  if per_channel:
    axes = tuple(range(len(w.shape) - 1))
    bound = ops.max(ops.abs(w), axis=axes)
  else:
    bound = ops.max(ops.abs(w))
  bound = ops.stop_gradient(ops.maximum(bound, _MIN_SCALE))
  out = keras.quantizers.fake_quant_with_min_max_vars(
      w, -bound, bound, num_bits=8, narrow_range=True,
      axis=-1 if per_channel else None)
  if depthwise:
    out = ops.reshape(out, shape)
  return ops.cast(out, kernel.dtype)


def _linear_op(layer, inputs, kernel):
  """The layer's own linear op with `kernel` (no bias, no activation)."""
  name = _kind_name(layer)
  if name == "Dense":
    return ops.matmul(inputs, kernel)
  if name == "DepthwiseConv2D":
    return ops.depthwise_conv(inputs, kernel, strides=layer.strides,
                              padding=layer.padding,
                              dilation_rate=layer.dilation_rate,
                              data_format=layer.data_format)
  return layer.convolution_op(inputs, kernel)


def _kind_name(layer):
  for base in type(layer).__mro__:
    if base.__name__ in _WEIGHT_LAYERS:
      return base.__name__
  return _class_name(layer)


def _channels_last(layer):
  return getattr(layer, "data_format", "channels_last") == "channels_last"


def _bias_shape(layer, outputs):
  rank = len(outputs.shape)
  if _channels_last(layer):
    return (1,) * (rank - 1) + (-1,)
  return (1, -1) + (1,) * (rank - 2)


def _training(layer):
  """The training flag of the `__call__` in progress (Keras' call context)."""
  # pylint: disable-next=protected-access
  return bool(layer._get_call_context().training)


def _operation(tensor):
  # pylint: disable-next=protected-access
  return tensor._keras_history.operation


def _forward_kernel(layer):
  source = getattr(layer, KERNEL_SOURCE_ATTRIBUTE, None)
  if source is None:
    return layer.kernel
  return source.forward_kernel(layer.kernel)


def _weights_call(layer, state, plan):
  """The instrumented `call` of a Dense or convolution layer."""
  name = _kind_name(layer)
  depthwise = name == "DepthwiseConv2D"
  per_channel = name != "Dense"
  bn = plan.get("fold")
  activation = layer.activation
  fused = _activation_name(activation) in ("relu", "relu6", "linear")

  def call(inputs, *args, **kwargs):
    del args, kwargs
    training = _training(layer)
    x = inputs
    if 0 in state.quantized_inputs:
      x = state.fake_quant("input_0", x, training)
    kernel = _forward_kernel(layer)
    bias = layer.bias if layer.use_bias else None
    if bn is not None:
      scale = ops.rsqrt(ops.cast(bn.moving_variance, "float32") + bn.epsilon)
      if bn.scale:
        scale = scale * ops.cast(bn.gamma, "float32")
      scale = ops.cast(scale, kernel.dtype)
      if depthwise:
        kernel = kernel * ops.reshape(scale, tuple(kernel.shape[-2:]))
      else:
        kernel = kernel * scale
    outputs = _linear_op(layer, x, _quantize_kernel(kernel, per_channel,
                                                    depthwise))
    if bn is not None:
      mean = ops.cast(bn.moving_mean, outputs.dtype)
      if training and bn.trainable:
        _follow_batch_norm(layer, bn, state, outputs, scale, bias)
      folded = (bias if bias is not None else 0.0) - mean
      folded = folded * scale
      if bn.center:
        folded = folded + ops.cast(bn.beta, outputs.dtype)
      outputs = outputs + ops.reshape(folded, _bias_shape(layer, outputs))
    elif bias is not None:
      outputs = outputs + ops.reshape(bias, _bias_shape(layer, outputs))
    if activation is not None and _activation_name(activation) != "linear":
      if not fused and state.pre_activation:
        outputs = state.fake_quant("pre", outputs, training)
      outputs = activation(outputs)
    if state.quantize_output:
      outputs = state.fake_quant("output", outputs, training)
    state.mark_seen(training)
    return outputs

  return call


def _follow_batch_norm(layer, bn, state, outputs, scale, bias):
  """Updates `bn`'s moving statistics from a folded layer's batch output.

  `outputs` is the linear op with the folded kernel (`scale * kernel`), so
  `outputs / scale (+ bias)` is what BN would have seen.
  """
  safe = ops.where(ops.abs(scale) > 1e-12, scale, ops.ones_like(scale))
  raw = ops.stop_gradient(outputs) / ops.reshape(safe,
                                                 _bias_shape(layer, outputs))
  axes = [i for i in range(len(outputs.shape))
          if i != (len(outputs.shape) - 1 if _channels_last(layer) else 1)]
  batch_mean = ops.mean(raw, axis=axes)
  batch_var = ops.var(raw, axis=axes)
  if bias is not None:
    batch_mean = batch_mean + ops.stop_gradient(bias)
  live = ops.cast(state.bn_frozen < 0.5, bn.moving_mean.dtype)
  momentum = bn.momentum
  for variable, batch in ((bn.moving_mean, batch_mean),
                          (bn.moving_variance, batch_var)):
    batch = ops.cast(batch, variable.dtype)
    new = variable * momentum + batch * (1.0 - momentum)
    variable.assign(live * new + (1.0 - live) * variable)


def _range_call(layer, state, original):
  """The instrumented `call` of a weightless layer with a range."""

  def call(*args, **kwargs):
    training = _training(layer)
    if state.quantized_inputs and args:
      first = args[0]
      if isinstance(first, (list, tuple)):
        first = type(first)(
            state.fake_quant(f"input_{i}", t, training)
            if i in state.quantized_inputs else t
            for i, t in enumerate(first))
      elif 0 in state.quantized_inputs:
        first = state.fake_quant("input_0", first, training)
      args = (first,) + tuple(args[1:])
    outputs = original(*args, **kwargs)
    if state.quantize_output:
      outputs = state.fake_quant("output", outputs, training)
    state.mark_seen(training)
    return outputs

  return call


def _identity_call(*args, **kwargs):
  del kwargs
  return args[0]


# ---------------------------------------------------------------- the graph


def _sublayers(layer):
  # pylint: disable-next=protected-access
  return list(layer._flatten_layers(include_self=False, recursive=False))


def _input_shapes(model):
  inputs = getattr(model, "inputs", None)
  if inputs:
    return None
  shapes = getattr(model, "_build_shapes_dict", None)
  if not shapes or len(shapes) != 1:
    return None
  return list(shapes.values())[0]


def _graph_of(model):
  """(nodes, model inputs) of a Functional view of `model`, or None.

  Each node is `(operation, [producer operations])`. A subclassed model is
  traced by calling its `call` on symbolic inputs.
  """
  if isinstance(model, keras.Sequential):
    graph = getattr(model, "_functional", None)
  elif hasattr(model, "_nodes_by_depth"):
    graph = model
  else:
    shape = _input_shapes(model)
    if shape is None or not isinstance(shape, (tuple, list)):
      return None
    try:
      symbolic = keras.Input(batch_shape=tuple(shape),
                             dtype=model.compute_dtype)
      graph = keras.Model(symbolic, model.call(symbolic))
    except Exception:  # pylint: disable=broad-except
      return None
  by_depth = getattr(graph, "_nodes_by_depth", None)
  if not by_depth:
    return None
  nodes = []
  for depth in sorted(by_depth, reverse=True):
    for node in by_depth[depth]:
      producers = [_operation(t) for t in node.input_tensors]
      nodes.append((node.operation, producers))
  outputs = {id(_operation(t)) for t in graph.outputs}
  return nodes, outputs


class _Planner:
  """Decides, per layer, which fake-quants it runs and what it folds."""

  def __init__(self, chosen):
    self.chosen = chosen  # id -> layer
    self.plans = {}  # id(layer) -> dict(inputs=set, output=bool, ...)

  def plan(self, model):
    graph = _graph_of(model)
    if graph is None:
      return  # every chosen layer is then planned blind (the caller)
    nodes, outputs = graph
    consumers, uses = {}, {}
    for op, producers in nodes:
      uses[id(op)] = uses.get(id(op), 0) + 1
      for producer in producers:
        consumers.setdefault(id(producer), []).append(op)
    for op_id in outputs:
      consumers.setdefault(op_id, []).append(None)  # a model output

    def only_consumer(op):
      found = consumers.get(id(op), [])
      if len(found) != 1 or found[0] is None or uses.get(id(op), 0) != 1:
        return None
      nxt = found[0]
      return nxt if uses.get(id(nxt), 0) == 1 else None

    quantized = set()  # ids of operations whose outputs carry a range
    absorbed = set()   # BN folded into a producer, ReLU fused into one
    for op, _ in nodes:
      if isinstance(op, keras.Model):
        # A nested model: planned on its own; its outputs carry ranges.
        self.plan(op)
        quantized.add(id(op))
        continue
      if id(op) in absorbed or id(op) not in self.chosen:
        continue
      kind = _kind(op)
      if kind == "weights":
        plan = {"inputs": set(), "output": True}
        end = op
        fused = _activation_name(op.activation) in ("relu", "relu6")
        if _activation_name(op.activation) == "linear":
          nxt = only_consumer(op)
          if (nxt is not None and _class_name(nxt) == "BatchNormalization"
              and id(nxt) in self.chosen and _kind_name(op) in _FOLDABLE
              and nxt.axis in (-1, len(nxt.input.shape) - 1)
              and _channels_last(op)):
            plan["fold"] = nxt
            absorbed.add(id(nxt))
            self.plans[id(nxt)] = {"identity": True}
            end = nxt
            nxt = only_consumer(nxt)
          if nxt is not None and id(nxt) in self.chosen and _fusible_activation(
              nxt):
            plan["output"] = False
            self.plans[id(nxt)] = {"inputs": set(), "output": True}
            absorbed.add(id(nxt))
            end = nxt
        plan["pre_activation"] = not fused and _activation_name(
            op.activation) != "linear"
        self.plans[id(op)] = plan
        quantized.add(id(end))
      elif kind == "range":
        self.plans[id(op)] = {"inputs": set(), "output": True}
        quantized.add(id(op))
    # Inputs: each chosen layer quantizes an input whose value has no range.
    for op, producers in nodes:
      plan = self.plans.get(id(op))
      if not plan or plan.get("identity") or "inputs" not in plan:
        continue
      if id(op) in absorbed and _fusible_activation(op):
        continue
      for i, producer in enumerate(producers):
        if not self._has_range(producer, quantized, nodes):
          plan["inputs"].add(i)

  def _has_range(self, producer, quantized, nodes):
    seen = set()
    while producer is not None and id(producer) not in seen:
      seen.add(id(producer))
      if id(producer) in quantized:
        return True
      if _kind(producer) != "pass" or _class_name(producer) == "InputLayer":
        return False
      parents = [p for op, ps in nodes if op is producer for p in ps]
      producer = parents[0] if len(parents) == 1 else None
    return False


def _leaves(model):
  """Every leaf layer below `model` (nested models walked), in order."""
  out = []
  for child in _sublayers(model):
    if isinstance(child, QATState):
      continue
    if _sublayers(child) and not child.weights:
      out.extend(_leaves(child))
    elif isinstance(child, keras.Model) or (
        _sublayers(child) and _kind(child) is None):
      out.extend(_leaves(child))
    else:
      out.append(child)
  return out


def _names(field, value):
  if value is None:
    return None
  if isinstance(value, str):
    value = [value]
  try:
    value = list(value)
  except TypeError as error:
    raise UserInputError(f"quantize_model {field} must be a list of strings, "
                         f"got {value!r}") from error
  for item in value:
    if not isinstance(item, str) or not item:
      raise UserInputError(f"quantize_model {field} must be non-empty strings, "
                           f"got {item!r}")
  return value


def _chosen(model, layers, layer_types):
  patterns = _names("layers", layers)
  types = _names("layer_types", layer_types)
  try:
    compiled = [re.compile(p) for p in patterns or ()]
  except re.error as error:
    raise UserInputError(f"quantize_model layers: bad regular expression "
                         f"({error})") from error
  chosen = {}
  for layer in _leaves(model):
    if compiled and not any(p.fullmatch(layer.name) for p in compiled):
      continue
    if types and not any(base.__name__ in types
                         for base in type(layer).__mro__):
      continue
    if _kind(layer) is None:
      raise ModelError(
          f"quantize_model: layer {layer.name!r} ({_class_name(layer)}) has "
          "weights that the Keras 3 QAT engine cannot quantize (it quantizes "
          f"{', '.join(_WEIGHT_LAYERS)} kernels and weightless layers); "
          "leave it float by choosing the other layers with `layers=` "
          "(regular expressions of layer names) or `layer_types=`")
    chosen[id(layer)] = layer
  if not any(_kind(layer) == "weights" for layer in chosen.values()):
    raise ModelError(
        f"quantize_model: model {model.name!r} has no layer to quantize: "
        f"none of {', '.join(_WEIGHT_LAYERS)} matches layers/layer_types")
  return chosen


def _instrument(layer, plan):
  if plan.get("identity"):
    layer._tf_compress_qat_call = layer.call  # pylint: disable=protected-access
    layer._tf_compress_qat_folded = True  # pylint: disable=protected-access
    object.__setattr__(layer, "call", _identity_call)
    return
  state = QATState(inputs=sorted(plan.get("inputs", ())),
                   output=plan.get("output", True),
                   pre_activation=plan.get("pre_activation", False),
                   name=f"{layer.name}_qat")
  tracker = getattr(layer, "_tracker", None)
  locked = bool(getattr(tracker, "locked", False))
  if locked:
    tracker.unlock()
  try:
    setattr(layer, QAT_STATE_ATTRIBUTE, state)
  finally:
    if locked:
      tracker.lock()
  original = layer.call
  layer._tf_compress_qat_call = original  # pylint: disable=protected-access
  if _kind(layer) == "weights":
    new = _weights_call(layer, state, plan)
  else:
    new = _range_call(layer, state, original)
  object.__setattr__(layer, "call", new)


def quantize_keras3_model(model, layers=None, layer_types=None):
  """Makes a Keras 3 model quantization-aware with TFLite's 8-bit scheme.

  Sequential and Functional models are cloned (weights copied) and the copy
  is instrumented; the caller's model is left alone. A subclassed model
  cannot be cloned, so it is instrumented in place (and returned). Compile
  the result and fine-tune it; then export with `convert_to_tflite(qat,
  "int8")`.

  Args:
    model: a built Keras 3 model (Sequential, Functional, subclassed, or
      any of these nested).
    layers: None (all), or regular expressions matching whole layer names.
    layer_types: None (all), or class names such as `["Conv2D", "Dense"]`.

  Returns:
    The quantization-aware Keras 3 model.

  Raises:
    ModelError: the model is not built, is already quantization-aware, a
      chosen layer cannot be quantized (named, with how to leave it float),
      or no layer is chosen.
    UserInputError: bad `layers`/`layer_types`.
  """
  if not model.built:
    raise ModelError(f"quantize_model: Keras 3 model {model.name!r} is not "
                     "built; call it on data or build(input_shape) first")
  if is_keras3_qat(model):
    raise ModelError(f"quantize_model: model {model.name!r} is already "
                     "quantization-aware")
  if is_graph_model(model):
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    model = copy
  chosen = _chosen(model, layers, layer_types)
  planner = _Planner(chosen)
  planner.plan(model)
  # Layers the graph does not show (inside a custom layer's own call) are
  # planned blind: they quantize their inputs and outputs.
  for layer_id, layer in chosen.items():
    if layer_id not in planner.plans:
      kind = _kind(layer)
      if kind == "weights":
        planner.plans[layer_id] = {
            "inputs": {0}, "output": True,
            "pre_activation": _activation_name(layer.activation) not in (
                "relu", "relu6", "linear")}
      elif kind == "range":
        planner.plans[layer_id] = {"inputs": {0}, "output": True}
  instrumented = []
  for layer in _leaves(model):
    plan = planner.plans.get(id(layer))
    if plan is None:
      continue
    _instrument(layer, plan)
    instrumented.append(layer)
  object.__setattr__(model, _MODEL_MARK, instrumented)
  return model


def is_keras3_qat(model):
  """True when `model` (Keras 3) holds QAT-instrumented layers."""
  return bool(getattr(model, _MODEL_MARK, None)) or any(
      hasattr(layer, QAT_STATE_ATTRIBUTE) for layer in _leaves(model))


def keras3_qat_states(model):
  """`(layer, QATState)` of every instrumented layer of `model`."""
  return [(layer, getattr(layer, QAT_STATE_ATTRIBUTE))
          for layer in _leaves(model)
          if isinstance(getattr(layer, QAT_STATE_ATTRIBUTE, None), QATState)]


def unfolded_batch_norms(model):
  """The BatchNormalization layers of a QAT model that were not folded."""
  return [layer for layer in _leaves(model)
          if _class_name(layer) == "BatchNormalization" and
          not getattr(layer, "_tf_compress_qat_folded", False)]


def freeze_keras3_qat(model, frozen=True):
  """Freezes (or thaws) the ranges and folded BN statistics of `model`.

  Returns:
    The number of `QATState`s changed.
  """
  states = keras3_qat_states(model)
  value = 1.0 if frozen else 0.0
  for _, state in states:
    state.frozen.assign(value)
    state.bn_frozen.assign(value)
  for layer in unfolded_batch_norms(model):
    # A BN that is not folded runs in inference mode once frozen; thawing
    # gives it back the trainable flag it had.
    if frozen:
      if not hasattr(layer, "_tf_compress_bn_trainable"):
        # pylint: disable-next=protected-access
        layer._tf_compress_bn_trainable = layer.trainable
      layer.trainable = False
    elif hasattr(layer, "_tf_compress_bn_trainable"):
      # pylint: disable-next=protected-access
      layer.trainable = layer._tf_compress_bn_trainable
      del layer._tf_compress_bn_trainable
  return len(states)


def strip_keras3_quantization(model):
  """A float Keras 3 model with the weights QAT trained, fake-quants gone.

  Graph models are rebuilt from their config (BatchNormalization stays a
  layer of its own, holding the statistics the folded training kept); a
  subclassed model is restored in place.
  """
  if is_graph_model(model):
    copy = keras.models.clone_model(model)
    float_weights = _float_weights(model)
    copy.set_weights(float_weights)
    return copy
  for layer in _leaves(model):
    original = getattr(layer, "_tf_compress_qat_call", None)
    if original is not None:
      object.__setattr__(layer, "call", original)
      del layer._tf_compress_qat_call  # pylint: disable=protected-access
      if hasattr(layer, "_tf_compress_qat_folded"):
        del layer._tf_compress_qat_folded  # pylint: disable=protected-access
    if hasattr(layer, QAT_STATE_ATTRIBUTE):
      state = getattr(layer, QAT_STATE_ATTRIBUTE)
      # pylint: disable-next=protected-access
      layer._tracker.untrack(state) if hasattr(layer, "_tracker") else None
      # pylint: disable-next=protected-access
      layer._layers = [l for l in layer._layers if l is not state]
      object.__delattr__(layer, QAT_STATE_ATTRIBUTE)
  if hasattr(model, _MODEL_MARK):
    object.__delattr__(model, _MODEL_MARK)
  return model


def _float_weights(model):
  """`model.get_weights()` without the `QATState` variables, in order.

  A kernel with a kernel source (clustering, a sparsity mask) takes the
  value the forward pass uses; the source's own variables are left out.
  """
  skip = {id(v) for _, state in keras3_qat_states(model)
          for v in state.weights}
  values = {}
  # pylint: disable-next=protected-access
  for layer in model._flatten_layers(include_self=False):
    source = getattr(layer, KERNEL_SOURCE_ATTRIBUTE, None)
    if source is not None:
      skip.update(id(v) for v in source.weights)
      variable = getattr(layer, source.weight_name)
      values[id(variable)] = source.forward_kernel(variable)
  return [ops.convert_to_numpy(values.get(id(v), v)) for v in model.weights
          if id(v) not in skip]


def load_keras3_qat_model(path, layers=None, layer_types=None,
                          custom_objects=None, safe_mode=True):
  """Loads a Keras 3 QAT model saved as `.keras`, ranges included.

  Keras rebuilds the float model from the file (the instrumentation is not
  part of its config), `quantize_keras3_model` instruments it again with
  the same `layers`/`layer_types`, and the file's weights are then loaded
  into the instrumented model: kernels, ranges, flags and BatchNormalization
  statistics, exactly as saved.

  Raises:
    ModelError: the file does not load (see `tf_compress.load_model`: a
      `Lambda` layer is refused under safe mode), or its QAT state does not
      match the given layer selection.
  """
  path = os.fspath(path)
  model = load_model(path, custom_objects, safe_mode=safe_mode)
  qat = quantize_keras3_model(model, layers, layer_types)
  with tempfile.TemporaryDirectory(prefix="tf_compress_qat_") as workdir:
    weights = os.path.join(workdir, "model.weights.h5")
    try:
      with zipfile.ZipFile(path) as archive, open(weights, "wb") as out:
        out.write(archive.read("model.weights.h5"))
      qat.load_weights(weights)
    except Exception as error:  # pylint: disable=broad-except
      raise ModelError(
          f"cannot restore the QAT state of {path!r}: {error}. Was it "
          "saved from quantize_model with the same layers/layer_types?"
      ) from error
  return qat
