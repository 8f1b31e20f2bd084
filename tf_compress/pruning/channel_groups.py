"""Channel dependencies of a Keras 3 or tf_keras graph, for slicing.

Slicing a filter out of a Conv2D also removes an input channel of every layer
that reads it, possibly through BatchNormalization, activations, pooling,
Flatten or Concatenate, and ties it to every other tensor it is added to. This
module walks the functional graph once and describes the last axis of every
tensor as a *channel map* over *channel groups*:

- a group is a set of channels pruned together: the filters of one layer, or
  of several layers whose outputs meet in an `Add` (or another elementwise
  join), with one shared keep-set;
- `Leaf(group, size, mult)` is a tensor whose channel `c * mult + m` comes
  from group channel `c` (`mult` > 1 after a depthwise multiplier);
- `Concat(parts)` lays maps end to end (a channel-axis Concatenate);
- `Tile(inner, reps)` repeats a map for every spatial position (a Flatten).

A group is *fixed* (left whole) when its channels reach the model outputs or a
layer whose effect on channels is unknown (Lambda, custom layers, nested
models, a Reshape of the channel axis, ...); the reasons are kept for the
report. Both Keras are read the same way: their layer classes are looked up
in the model's own Keras, and Keras 3 ops on KerasTensors (`x + 3.0`) are
classified by `keras3_slicing`.
"""

import dataclasses
import functools
import types

import keras as keras3
import numpy as np

from tf_compress._keras import is_keras3_object
from tf_compress._keras import keras
from tf_compress._keras import tf
from tf_compress.errors import UserInputError
from tf_compress.models.graph import Call
from tf_compress.models.graph import graph_nodes
from tf_compress.models.graph import is_model
from tf_compress.pruning import keras3_slicing

__all__ = ["Leaf", "Concat", "Tile", "LayerRole", "ChannelGraph",
           "analyze_channels", "PRODUCERS", "keras_of", "is_batch_norm",
           "is_prelu"]

# Layers whose output channels are their own (filters / units): they start a
# group. "depthwise" and "channelwise" layers carry their input's channels.
PRODUCERS = ("conv", "conv_transpose", "dense", "separable")

_ELEMENTWISE_ACTIVATIONS = frozenset([
    "linear", "relu", "relu6", "sigmoid", "tanh", "elu", "selu", "gelu",
    "swish", "silu", "hard_sigmoid", "hard_silu", "hard_swish", "softplus",
    "softsign", "exponential", "mish", "leaky_relu"])

_PASSTHROUGH_NAMES = (
    "ReLU", "LeakyReLU", "ELU", "ThresholdedReLU", "Dropout", "GaussianNoise",
    "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
    "AveragePooling2D", "AveragePooling3D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "GlobalMaxPooling3D", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "GlobalAveragePooling3D", "ZeroPadding1D",
    "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D",
    "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D")
_MERGE_NAMES = ("Add", "Subtract", "Multiply", "Average", "Maximum",
                "Minimum")
_CLASS_NAMES = {
    "separable": ("SeparableConv1D", "SeparableConv2D"),
    "depthwise": ("DepthwiseConv1D", "DepthwiseConv2D"),
    "transpose": ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"),
    "conv": ("Conv1D", "Conv2D", "Conv3D"), "dense": ("Dense",),
    "bn": ("BatchNormalization",), "prelu": ("PReLU",),
    "activation": ("Activation",), "dropout": ("Dropout",),
    "passthrough": _PASSTHROUGH_NAMES, "rescaling": ("Rescaling",),
    "flatten": ("Flatten",), "reshape": ("Reshape",),
    "concat": ("Concatenate",), "merges": _MERGE_NAMES}


def keras_of(obj):
  """The Keras module of a model, layer or variable: Keras 3 or tf_keras."""
  return keras3 if is_keras3_object(obj) else keras


@functools.lru_cache(maxsize=None)
def _classes_of(module):
  """The layer classes of one Keras, by role (those it has)."""
  layers = module.layers
  return types.SimpleNamespace(**{
      role: tuple(getattr(layers, name) for name in names
                  if hasattr(layers, name))
      for role, names in _CLASS_NAMES.items()})


def _classes(layer):
  return _classes_of(keras_of(layer))


def is_batch_norm(layer):
  """True for a BatchNormalization layer of either Keras."""
  return isinstance(layer, _classes(layer).bn)


def is_prelu(layer):
  """True for a PReLU layer of either Keras."""
  return isinstance(layer, _classes(layer).prelu)


@dataclasses.dataclass(frozen=True)
class Leaf:
  """`size` channels of one group, each repeated `mult` times in a row."""
  group: int
  size: int
  mult: int = 1


@dataclasses.dataclass(frozen=True)
class Concat:
  """Maps laid end to end along the channel axis."""
  parts: tuple


@dataclasses.dataclass(frozen=True)
class Tile:
  """`inner` repeated `reps` times (Flatten: once per spatial position)."""
  inner: object
  reps: int


@dataclasses.dataclass
class LayerRole:
  """A layer with channel-indexed weights and the maps of its tensors.

  `kind` is one of `PRODUCERS`, `"depthwise"` (DepthwiseConv: output channels
  follow the input's) or `"channelwise"` (BatchNormalization, PReLU).
  """
  name: str
  kind: str
  layer: object
  in_map: object
  out_map: object


def _leaves(cmap):
  if isinstance(cmap, Leaf):
    return [cmap]
  if isinstance(cmap, Concat):
    return [leaf for part in cmap.parts for leaf in _leaves(part)]
  return _leaves(cmap.inner)


def _compatible(a, b):
  if isinstance(a, Leaf) and isinstance(b, Leaf):
    return a.size == b.size and a.mult == b.mult
  if isinstance(a, Concat) and isinstance(b, Concat):
    return len(a.parts) == len(b.parts) and all(
        _compatible(x, y) for x, y in zip(a.parts, b.parts))
  if isinstance(a, Tile) and isinstance(b, Tile):
    return a.reps == b.reps and _compatible(a.inner, b.inner)
  return False


def _multiply(cmap, factor):
  """The map after a depthwise layer with `depth_multiplier=factor`."""
  if isinstance(cmap, Leaf):
    return Leaf(cmap.group, cmap.size, cmap.mult * factor)
  if isinstance(cmap, Concat):
    return Concat(tuple(_multiply(p, factor) for p in cmap.parts))
  return Tile(_multiply(cmap.inner, factor), cmap.reps)


class ChannelGraph:
  """Channel groups of a model, with the roles of its weighted layers.

  Attributes:
    roles: `{layer name: LayerRole}` in graph order.
    reshapes: `{Reshape layer name: input map}`: their `target_shape` ends
      in the channel count, which the rebuild must update.
    unknown: `[{"layer", "reason"}]` for layers left whole by their kind.
  """

  def __init__(self):
    self._parent = []
    self._size = []
    self._reasons = []
    self.roles = {}
    self.reshapes = {}
    self.unknown = []

  def new_group(self, size, reason=None):
    self._parent.append(len(self._parent))
    self._size.append(int(size))
    self._reasons.append([reason] if reason else [])
    return len(self._parent) - 1

  def find(self, group):
    while self._parent[group] != group:
      self._parent[group] = self._parent[self._parent[group]]
      group = self._parent[group]
    return group

  def union(self, a, b):
    a, b = self.find(a), self.find(b)
    if a != b:
      self._parent[b] = a
      self._reasons[a].extend(self._reasons[b])

  def fix(self, cmap, reason):
    for leaf in _leaves(cmap):
      root = self.find(leaf.group)
      if reason not in self._reasons[root]:
        self._reasons[root].append(reason)

  def size(self, root):
    return self._size[self.find(root)]

  def fixed_reason(self, root):
    """Why group `root` is left whole, or None when it can be sliced."""
    reasons = self._reasons[self.find(root)]
    return "; ".join(reasons) if reasons else None

  def group_of(self, name):
    """The group (root) of a producer layer's output channels."""
    return self.find(self.roles[name].out_map.group)

  def producers(self):
    """`{root: [producer names]}` of every group with a producer."""
    groups = {}
    for role in self.roles.values():
      if role.kind in PRODUCERS:
        groups.setdefault(self.group_of(role.name), []).append(role.name)
    return groups

  def locate(self, cmap):
    """The (group root, group channel) of every position of a tensor's axis.

    Returns:
      Two int arrays of the tensor's channel count.
    """
    if isinstance(cmap, Leaf):
      groups = np.full(cmap.size * cmap.mult, self.find(cmap.group))
      return groups, np.repeat(np.arange(cmap.size), cmap.mult)
    if isinstance(cmap, Concat):
      located = [self.locate(p) for p in cmap.parts]
      if not located:
        return np.zeros(0, int), np.zeros(0, int)
      return (np.concatenate([g for g, _ in located]),
              np.concatenate([c for _, c in located]))
    groups, channels = self.locate(cmap.inner)
    return np.tile(groups, cmap.reps), np.tile(channels, cmap.reps)

  def kept_positions(self, cmap, keep):
    """Positions of a tensor's channel axis that survive `keep`.

    Args:
      cmap: the tensor's channel map.
      keep: `{group root: kept group channels}`; other groups keep all.

    Returns:
      A sorted int array of positions.
    """
    groups, channels = self.locate(cmap)
    alive = np.ones(len(groups), bool)
    for root, kept in keep.items():
      hit = groups == root
      alive[hit] = np.isin(channels[hit], kept)
    return np.flatnonzero(alive)

  def unify(self, maps, reason):
    """Ties the channels of tensors joined elementwise (Add, ...)."""
    first = maps[0]
    if all(_compatible(first, other) for other in maps[1:]):
      for other in maps[1:]:
        for a, b in zip(_leaves(first), _leaves(other)):
          self.union(a.group, b.group)
    else:
      for cmap in maps:
        self.fix(cmap, reason)


def _activation_name(layer):
  try:
    name = keras_of(layer).activations.serialize(layer.activation)
  except Exception:  # pylint: disable=broad-except
    return None
  return name if isinstance(name, str) else None


def _mixes_channels(layer):
  """Whether a layer's own activation mixes channels (softmax, custom)."""
  if not hasattr(layer, "activation") or layer.activation is None:
    return None
  name = _activation_name(layer)
  if name in _ELEMENTWISE_ACTIVATIONS:
    return None
  return f"its activation {name or layer.activation!r} may mix channels"


def _channels_last(layer):
  return getattr(layer, "data_format", "channels_last") == "channels_last"


def _axes(axis, rank):
  axes = axis if isinstance(axis, (list, tuple)) else [axis]
  return [int(a) % rank for a in axes] if rank else list(axes)


def _classify(layer, in_shapes, n_outputs, calls):
  """Returns (kind, reason); kind "unknown" comes with the reason."""
  name = type(layer).__name__
  if n_outputs != 1:
    return "unknown", f"{name} layer with {n_outputs} outputs"
  if getattr(layer, "weights", None) and calls > 1:
    return "unknown", f"{name} layer shared by {calls} calls"
  if not _channels_last(layer):
    return "unknown", f"{name} layer with data_format='channels_first'"
  if getattr(layer, "lora_enabled", False) or getattr(
      layer, "quantization_mode", None):
    return "unknown", f"{name} layer with LoRA or quantized weights"
  rank = len(in_shapes[0]) if in_shapes and in_shapes[0] is not None else 0
  found = _classes(layer)
  if isinstance(layer, found.separable):
    return "separable", None
  if isinstance(layer, found.depthwise):
    return "depthwise", None
  if isinstance(layer, found.transpose):
    return "conv_transpose", None
  if isinstance(layer, found.conv):
    if getattr(layer, "groups", 1) != 1:
      return "unknown", f"grouped {name} (groups={layer.groups})"
    return "conv", None
  if isinstance(layer, found.dense):
    return "dense", None
  if isinstance(layer, found.bn):
    if _axes(layer.axis, rank) != [rank - 1]:
      return "unknown", f"BatchNormalization over axis {layer.axis}"
    return "channelwise", None
  if isinstance(layer, found.prelu):
    return ("passthrough" if layer.alpha.shape[-1] == 1 else "channelwise",
            None)
  if isinstance(layer, found.activation):
    reason = _mixes_channels(layer)
    return ("unknown", f"Activation {reason}") if reason else (
        "passthrough", None)
  if isinstance(layer, found.dropout) and getattr(layer, "noise_shape",
                                                  None):
    if layer.noise_shape[-1] not in (None, 1):
      return "unknown", "Dropout with a fixed channel noise_shape"
  if isinstance(layer, found.passthrough):
    return "passthrough", None
  if isinstance(layer, found.rescaling):
    if np.ndim(layer.scale) == 0 and np.ndim(layer.offset) == 0:
      return "passthrough", None
    return "unknown", "Rescaling with per-channel scale or offset"
  if isinstance(layer, found.flatten):
    return "flatten", None
  if isinstance(layer, found.reshape):
    if tuple(layer.target_shape)[-1:] == tuple(in_shapes[0])[-1:]:
      return "reshape", None
    return "unknown", "Reshape that changes the channel axis"
  if isinstance(layer, found.concat):
    return ("concat" if layer.axis in (-1, rank - 1) else "merge"), None
  if isinstance(layer, found.merges):
    return _merge_kind(name, in_shapes)
  if is_model(layer):
    return "unknown", f"nested model ({name})"
  return "unknown", f"{name} layer, not known to keep channels apart"


def _merge_kind(name, in_shapes):
  """An elementwise join: "merge", unless it broadcasts the channel axis."""
  if len({tuple(s)[-1:] for s in in_shapes}) != 1:
    return "unknown", f"{name} that broadcasts the channel axis"
  return "merge", None


def _last_dim(tensor):
  shape = tuple(tensor.shape)
  return int(shape[-1]) if shape and shape[-1] is not None else 0


def _producer_name(tensor):
  # tf_keras' history starts with the layer, Keras 3's with the operation.
  return tensor._keras_history[0].name  # pylint: disable=protected-access


def _node_io(node):
  """`(input tensors, output tensors, Keras 3 arguments or None)`."""
  if isinstance(node, Call):  # Keras 3
    return (list(node.node.input_tensors), list(node.node.outputs),
            node.node.arguments)
  return list(node.keras_inputs), tf.nest.flatten(node.outputs), None


def analyze_channels(model):
  """Builds the `ChannelGraph` of a Functional or Sequential model.

  Args:
    model: a built Keras 3 or tf_keras graph model.

  Returns:
    A `ChannelGraph`.

  Raises:
    UserInputError: for a subclassed (non-graph) model, or one with tfmot
      pruning or quantization wrappers (or the Keras 3 engine's).
  """
  if is_keras3_object(model):
    keras3_slicing.check_not_instrumented(model)
  wrapped = [layer.name for layer in model.layers
             if type(layer).__module__.startswith(
                 "tensorflow_model_optimization")]
  if wrapped:
    raise UserInputError(
        f"model {model.name!r} has tfmot wrappers ({', '.join(wrapped[:3])}"
        f"{', ...' if len(wrapped) > 3 else ''}); slice the plain model: "
        "call tfmot.sparsity.keras.strip_pruning(model) first, or slice "
        "before quantization-aware training")
  graph = ChannelGraph()
  nodes = list(graph_nodes(model))
  calls = {}
  for node in nodes:
    calls[id(node.layer)] = calls.get(id(node.layer), 0) + 1
  maps = {}
  for tensor in model.inputs:
    size = _last_dim(tensor)
    reason = f"shares channels with the model input {_producer_name(tensor)!r}"
    maps[str(id(tensor))] = Leaf(graph.new_group(size, reason), size)
  for node in nodes:
    _visit(graph, node, maps, calls[id(node.layer)])
  for tensor in model.outputs:
    graph.fix(maps[str(id(tensor))],
              f"reaches the model output {_producer_name(tensor)!r}")
  return graph


def _add_role(graph, layer, kind, in_map, out_map):
  """Records the channel role of a layer with channel-indexed weights.

  A producer or depthwise layer computes its outputs' channels itself, so
  an activation of its own that mixes channels fixes them.
  """
  if kind != "channelwise":
    mixing = _mixes_channels(layer)
    if mixing:
      graph.fix(out_map, f"{mixing} ({layer.name!r})")
  graph.roles[layer.name] = LayerRole(layer.name, kind, layer, in_map,
                                      out_map)


def _visit(graph, node, maps, calls):
  """Gives the outputs of `node` their channel maps."""
  layer = node.layer
  inputs, outputs, arguments = _node_io(node)
  in_maps = [maps[str(id(t))] for t in inputs]
  in_shapes = [tuple(t.shape) for t in inputs]
  if arguments is not None and not isinstance(layer, keras3.layers.Layer):
    # A Keras 3 op applied to KerasTensors (`x + 3.0`, `keras.ops.relu`).
    kind, reason = keras3_slicing.classify_operation(layer, inputs,
                                                     outputs, arguments)
    if kind == "merge":
      kind, reason = _merge_kind(type(layer).__name__, in_shapes)
  else:
    kind, reason = _classify(layer, in_shapes, len(outputs), calls)
  out_map = None
  if kind in PRODUCERS:
    size = _last_dim(outputs[0])
    out_map = Leaf(graph.new_group(size, None), size)
    _add_role(graph, layer, kind, in_maps[0], out_map)
  elif kind == "depthwise":
    out_map = _multiply(in_maps[0], int(layer.depth_multiplier))
    _add_role(graph, layer, kind, in_maps[0], out_map)
  elif kind == "channelwise":
    out_map = in_maps[0]
    _add_role(graph, layer, kind, in_maps[0], out_map)
  elif kind == "passthrough":
    out_map = in_maps[0]
  elif kind == "reshape":
    out_map = in_maps[0]
    graph.reshapes[layer.name] = in_maps[0]
  elif kind == "flatten":
    spatial = int(np.prod(in_shapes[0][1:-1], dtype=np.int64))
    out_map = Tile(in_maps[0], spatial) if spatial != 1 else in_maps[0]
  elif kind == "concat":
    out_map = Concat(tuple(in_maps))
  elif kind == "merge":
    graph.unify(in_maps, f"is joined by {type(layer).__name__} "
                f"{layer.name!r} with tensors of another channel layout")
    out_map = in_maps[0]
  else:
    entry = {"layer": layer.name, "reason": f"{reason}: left whole"}
    if entry not in graph.unknown:  # a shared layer: once
      graph.unknown.append(entry)
    for cmap in in_maps:
      graph.fix(cmap, f"feeds {type(layer).__name__} {layer.name!r}, which "
                "cannot be sliced through")
    why = (f"shares channels with the output of {type(layer).__name__} "
           f"{layer.name!r}, which is left whole")
    for tensor in outputs:
      size = _last_dim(tensor)
      maps[str(id(tensor))] = Leaf(graph.new_group(size, why), size)
    return
  maps[str(id(outputs[0]))] = out_map
