"""Turns kept channel sets into weights: sliced (a smaller model) or masked.

Both start from the same per-layer description: for each weight of a layer
with channel-indexed weights, the axes that index its input channels (`in`),
its output channels (`out`), or its input channels times a depthwise
multiplier (`in_dm`, the rows of a SeparableConv's pointwise kernel).
Slicing keeps those positions (`np.take`); masking zeroes the others.
"""

import numpy as np

from tf_compress._keras import is_keras3_object
from tf_compress._keras import keras
from tf_compress.pruning import keras3_slicing
from tf_compress.pruning.channel_groups import is_prelu
from tf_compress.pruning.channel_groups import PRODUCERS

__all__ = ["layer_indices", "slice_layer_weights", "channel_masks",
           "rebuild_model"]

# kind -> [(attributes, [(axis, which)], masked)]. `masked` says whether the
# weight is zeroed by masking: the moving statistics of BatchNormalization
# are not (gamma = beta = 0 already makes the channel's output 0). Of
# several attributes, the first the layer has is the weight (Keras 3 names
# a DepthwiseConv's kernel `kernel`).
_SPECS = {
    "conv": [("kernel", [(-2, "in"), (-1, "out")], True),
             ("bias", [(0, "out")], True)],
    "conv_transpose": [("kernel", [(-1, "in"), (-2, "out")], True),
                       ("bias", [(0, "out")], True)],
    "dense": [("kernel", [(0, "in"), (1, "out")], True),
              ("bias", [(0, "out")], True)],
    "separable": [("depthwise_kernel", [(-2, "in")], True),
                  ("pointwise_kernel", [(-2, "in_dm"), (-1, "out")], True),
                  ("bias", [(0, "out")], True)],
    "depthwise": [(("depthwise_kernel", "kernel"), [(-2, "in")], True),
                  ("bias", [(0, "out")], True)],
    "bn": [("gamma", [(0, "in")], True), ("beta", [(0, "in")], True)],
    "prelu": [("alpha", [(-1, "in")], False)],
}


def _spec(role):
  if role.kind != "channelwise":
    return _SPECS[role.kind]
  if is_prelu(role.layer):
    return _SPECS["prelu"]
  return _SPECS["bn"]


def layer_indices(graph, role, keep):
  """The kept positions `{"in", "out", "in_dm"}` of a role's tensors."""
  idx = {"in": graph.kept_positions(role.in_map, keep),
         "out": graph.kept_positions(role.out_map, keep)}
  multiplier = int(getattr(role.layer, "depth_multiplier", 1))
  idx["in_dm"] = (idx["in"][:, None] * multiplier +
                  np.arange(multiplier)).ravel()
  return idx


def _weight_plan(role, idx):
  """Yields (position in layer.weights, [(axis, indices)], masked)."""
  by_id = {}
  for attrs, axes, masked in _spec(role):
    attrs = (attrs,) if isinstance(attrs, str) else attrs
    variable = next((getattr(role.layer, a) for a in attrs
                     if getattr(role.layer, a, None) is not None), None)
    if variable is not None:
      by_id[id(variable)] = ([(axis, idx[which]) for axis, which in axes],
                             masked)
  for position, variable in enumerate(role.layer.weights):
    if id(variable) in by_id:
      yield (position,) + by_id[id(variable)]
    elif role.kind == "channelwise":
      # Moving statistics (and renorm's) are per-channel vectors too.
      yield position, [(0, idx["in"])], False
    else:
      raise AssertionError(
          f"unexpected weight {variable.name} in layer {role.name!r}")


def slice_layer_weights(role, idx):
  """The layer's `get_weights()` with the removed channels cut out."""
  arrays = role.layer.get_weights()
  for position, axes, _ in _weight_plan(role, idx):
    for axis, kept in axes:
      arrays[position] = np.take(arrays[position], kept, axis=axis)
  return arrays


def channel_masks(graph, keep):
  """0/1 masks that zero the removed channels of every affected weight.

  Args:
    graph: the model's `ChannelGraph`.
    keep: `{group root: kept group channels}`.

  Returns:
    A list of `(variable, mask)` with a float32 numpy `mask` of the
    variable's shape, for variables with at least one zero.
  """
  masks = []
  for role in graph.roles.values():
    idx = layer_indices(graph, role, keep)
    for position, axes, masked in _weight_plan(role, idx):
      if not masked:
        continue
      variable = role.layer.weights[position]
      mask = np.ones(variable.shape, np.float32)
      for axis, kept in axes:
        dropped = np.setdiff1d(np.arange(variable.shape[axis]), kept)
        index = [slice(None)] * len(variable.shape)
        index[axis] = dropped
        mask[tuple(index)] = 0.0
      if not mask.all():
        masks.append((variable, mask))
  return masks


def rebuild_model(model, graph, keep):
  """Builds the smaller model in which `keep` holds for every group.

  Args:
    model: the original model (not modified).
    graph: its `ChannelGraph`.
    keep: `{group root: kept group channels}`.

  Returns:
    A new model of the same Keras and kind (Functional or Sequential)
    whose producer layers have fewer filters/units and whose weights are
    sliced copies.
  """
  indices = {name: layer_indices(graph, role, keep)
             for name, role in graph.roles.items()}

  keras3 = is_keras3_object(model)

  def clone_layer(layer):
    role = graph.roles.get(layer.name)
    resized = role is not None and role.layer is layer and (
        role.kind in PRODUCERS)
    reshaped = layer.name in graph.reshapes and hasattr(layer,
                                                        "target_shape")
    if keras3 and not (resized or reshaped):
      return keras3_slicing.copy_layer(layer)
    config = layer.get_config()
    if resized:
      key = "units" if role.kind == "dense" else "filters"
      config[key] = int(len(indices[layer.name]["out"]))
    if reshaped:
      channels = len(graph.kept_positions(graph.reshapes[layer.name], keep))
      config["target_shape"] = tuple(config["target_shape"][:-1]) + (
          int(channels),)
    return layer.__class__.from_config(config)

  if keras3:
    new_model = keras3_slicing.clone_keeping_input_names(model, clone_layer)
  else:
    new_model = keras.models.clone_model(model, clone_function=clone_layer)
  for layer in model.layers:
    if not layer.weights:
      continue
    role = graph.roles.get(layer.name)
    weights = (slice_layer_weights(role, indices[layer.name])
               if role is not None else layer.get_weights())
    new_model.get_layer(layer.name).set_weights(weights)
  return new_model
