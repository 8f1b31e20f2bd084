"""Structured pruning that really shrinks a model: slicing whole channels.

`slice_model` ranks the filters of Conv layers and the units of Dense layers,
removes the lowest-ranked fraction of each, and rebuilds a smaller model whose
later layers read only the channels that remain; weights are sliced copies.
Channels that meet in an `Add` are ranked and pruned together, Concatenate
maps each input's channels through its offset, and a Dense after a Flatten
loses the rows of every spatial position of a removed channel.

`mask_channels` zeroes the same channels in a copy of the original instead;
before fine-tuning, the sliced model predicts exactly what the masked
original does. The gradual mode (`SlicingCallback`) masks during training,
then `slice_masked_model` cuts the masked channels out.

Both Keras are sliced by the same code: a Keras 3 model comes back as a
Keras 3 model, a tf_keras one as tf_keras (`keras3_slicing` holds what
differs). Only graph models (Functional, Sequential) can be rebuilt.
"""

import dataclasses
import math
import numbers
import warnings

import numpy as np

from tf_compress._keras import is_keras3_object
from tf_compress.analysis.flops import count_macs
from tf_compress.analysis.model_stats import count_params
from tf_compress.errors import UserInputError
from tf_compress.models.graph import clone_with_weights
from tf_compress.models.graph import is_model
from tf_compress.pruning import channel_groups
from tf_compress.pruning import keras3_slicing
from tf_compress.pruning import rebuild

__all__ = ["CRITERIA", "SliceResult", "channel_scores", "mask_channels",
           "slice_masked_model", "slice_model"]

CRITERIA = ("l1", "l2", "bn_gamma")


@dataclasses.dataclass(frozen=True)
class SliceResult:
  """What `slice_model` built and what it cost.

  Attributes:
    model: the new, smaller model (the input model is not modified).
    kept: `{layer name: sorted kept output-channel indices}` for every
      sliced layer (Conv/Dense filters, and the BatchNormalization and
      DepthwiseConv layers that carry those channels).
    removed: `{layer name: number of output channels removed}`.
    skipped: `[{"layer", "reason"}]` for layers left whole on purpose.
    macs_before, macs_after: multiply-accumulates per sample.
    params_before, params_after: weight counts (trainable and not).
    per_layer: `[{"layer", "type", "criterion", "channels_before",
      "channels_after", "macs_before", "macs_after", "params_before",
      "params_after"}]` for the layers (not Keras 3 ops) in graph order.
    ratio: the ratio asked for (None when built from given kept sets).
    criterion: the ranking asked for (None when built from kept sets).

  Example:
    >>> result = slice_model(model, 0.5)
    >>> result.macs_before / result.macs_after
    3.9
  """
  model: object
  kept: dict
  removed: dict
  skipped: list
  macs_before: int
  macs_after: int
  params_before: int
  params_after: int
  per_layer: list
  ratio: object = None
  criterion: object = None


def check_ratio(ratio, name="ratio"):
  """Returns `ratio` as a float, or raises UserInputError unless in [0, 1)."""
  if (isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or
      not 0 <= ratio < 1):
    raise UserInputError(
        f"`{name}` must be a number in [0, 1), got {ratio!r}; it is the "
        "fraction of each layer's output channels to remove")
  return float(ratio)


def check_criterion(criterion):
  """Returns `criterion`, or raises UserInputError unless in `CRITERIA`."""
  if criterion not in CRITERIA:
    raise UserInputError(
        f"unknown slicing criterion {criterion!r}; use one of "
        f"{', '.join(CRITERIA)}")
  return criterion


def _value(variable):
  return np.asarray(keras3_slicing.to_numpy(variable), np.float64)


def _norms(array, axis, criterion):
  """Norm of every slice of `array` along `axis` (over the other axes)."""
  moved = np.moveaxis(array, axis, -1).reshape(-1, array.shape[axis])
  if criterion == "l2":
    return np.sqrt(np.sum(moved**2, axis=0))
  return np.sum(np.abs(moved), axis=0)


def _role_scores(role, criterion):
  """Per-tensor-channel scores a role adds to its groups, or None."""
  layer = role.layer
  if criterion == "bn_gamma":
    if (role.kind == "channelwise" and channel_groups.is_batch_norm(layer)
        and layer.gamma is not None):
      return role.in_map, np.abs(_value(layer.gamma))
    return None
  if role.kind == "depthwise":
    kernel = _value(keras3_slicing.depthwise_kernel(layer))
    flat = kernel.reshape(-1, kernel.shape[-2] * kernel.shape[-1])
    return role.out_map, _norms(flat, -1, criterion)
  if role.kind in channel_groups.PRODUCERS:
    if role.kind == "separable":
      return role.out_map, _norms(_value(layer.pointwise_kernel), -1,
                                  criterion)
    axis = -2 if role.kind == "conv_transpose" else -1
    return role.out_map, _norms(_value(layer.kernel), axis, criterion)
  return None


def _group_scores(graph, criterion, roots):
  """`{root: scores}` and `{root: criterion used}` for groups `roots`."""
  scores = {root: np.zeros(graph.size(root)) for root in roots}
  used = {root: None for root in roots}
  for attempt in (criterion, "l1"):
    for role in graph.roles.values():
      found = _role_scores(role, attempt)
      if found is None:
        continue
      cmap, values = found
      groups, channels = graph.locate(cmap)
      for root in roots:
        if used[root] not in (None, attempt):
          continue
        hit = groups == root
        if hit.any():
          np.add.at(scores[root], channels[hit], values[hit])
          used[root] = attempt
    if all(value is not None for value in used.values()):
      break
  return scores, used


def _select(scores, ratio, names, forced=None):
  """Kept group channels: all but the `round(ratio * n)` lowest scores."""
  size = len(scores)
  drop = int(math.floor(ratio * size + 0.5))
  if drop >= size and ratio > 0:
    raise UserInputError(
        f"ratio {ratio} would remove all {size} channels of "
        f"{', '.join(map(repr, names))}; use a smaller ratio or leave "
        "these layers out with `layers=`")
  scores = np.array(scores, np.float64)
  if forced is not None:
    scores[np.setdiff1d(np.arange(size), forced)] = -np.inf
  order = np.argsort(scores, kind="stable")
  return np.sort(order[drop:])


def _graph(model, what):
  keras3_slicing.check_slicing_model(model, what)
  return channel_groups.analyze_channels(model)


def _selected_groups(graph, layers):
  """`{root: producers}` of the groups to slice, and the skipped list."""
  producers = graph.producers()
  if layers is not None:
    if isinstance(layers, str):
      layers = [layers]
    owner = {name: root for root, names in producers.items()
             for name in names}
    for name in layers:
      if name not in owner:
        raise UserInputError(
            f"layer {name!r} in `layers` is not a Conv/Dense layer of the "
            f"model that can be sliced; sliceable layers: "
            f"{', '.join(sorted(owner))}")
    wanted = {owner[name] for name in layers}
    producers = {r: n for r, n in producers.items() if r in wanted}
  skipped = list(graph.unknown)
  selected = {}
  for root, names in producers.items():
    reason = graph.fixed_reason(root)
    if reason:
      skipped.extend({"layer": n, "reason": reason} for n in names)
    else:
      selected[root] = names
  return selected, skipped


def channel_scores(model, criterion="l1"):
  """Ranks the output channels of every sliceable layer.

  Args:
    model: a Keras 3 or tf_keras Functional or Sequential model.
    criterion: `l1` or `l2` (norm of each filter's weights, summed over the
      layers of a channel group) or `bn_gamma` (|gamma| of the
      BatchNormalization that follows; groups without one fall back to l1).

  Returns:
    `{layer name: scores}`: one float array per Conv/Dense layer whose
    channels can be sliced, holding its channel group's scores (lowest are
    removed first).

  Raises:
    TypeError: for an object that is not a Keras model.
    UserInputError: for an unknown criterion or a subclassed model
      (`ModelError` for a subclassed Keras 3 model).
  """
  check_criterion(criterion)
  graph = _graph(model, "channel_scores")
  selected, _ = _selected_groups(graph, None)
  scores, _ = _group_scores(graph, criterion, list(selected))
  return {name: scores[root] for root, names in selected.items()
          for name in names}


def kept_by_layer(graph, keep):
  """`{layer: kept output positions}` and `{layer: removed count}`.

  Covers every layer with channel-indexed weights whose output channels
  belong (at least in part) to a group in `keep`.
  """
  kept, removed = {}, {}
  for name, role in graph.roles.items():
    cmap = role.out_map
    groups, _ = graph.locate(cmap)
    if not np.isin(groups, list(keep)).any():
      continue
    positions = graph.kept_positions(cmap, keep)
    kept[name] = [int(i) for i in positions]
    removed[name] = int(len(groups) - len(positions))
  return kept, removed


def _per_layer(model, new_model, criteria):
  before, after = count_macs(model), count_macs(new_model)
  after_rows = {row["layer"]: row for row in after["per_layer"]}
  rows = []
  for row in before["per_layer"]:
    name = row["layer"]
    old, new = _nested_layer(model, name), _nested_layer(new_model, name)
    if old is None or new is None:
      continue  # a Keras 3 op (`x + 3.0`): no layer, no weights, no MACs
    rows.append({
        "layer": name, "type": row["type"],
        "criterion": criteria.get(name),
        "channels_before": _channels(old), "channels_after": _channels(new),
        "macs_before": row["macs"], "macs_after": after_rows[name]["macs"],
        "params_before": int(old.count_params()) if old.built else 0,
        "params_after": int(new.count_params()) if new.built else 0})
  return before["total"], after["total"], rows


def _nested_layer(model, path):
  """The layer named `"outer/inner"` (as count_macs names it), or None."""
  layer = model
  for part in path.split("/"):
    while not is_model(layer):
      layer = layer.layer
    found = [child for child in layer.layers if child.name == part]
    if not found:
      return None
    layer = found[0]
  return layer


def _channels(layer):
  """The last dimension of a layer's output, or None (several outputs)."""
  try:
    if is_keras3_object(layer):
      shape = tuple(layer.output.shape)
    else:
      shape = layer.output_shape
  except (AttributeError, RuntimeError, ValueError):  # several calls
    return None
  if isinstance(shape, tuple) and shape and isinstance(shape[-1], int):
    return int(shape[-1])
  return None


def _finish(model, graph, keep, skipped, criteria, ratio, criterion):
  new_model = rebuild.rebuild_model(model, graph, keep)
  kept, removed = kept_by_layer(graph, keep)
  macs_before, macs_after, rows = _per_layer(model, new_model, criteria)
  return SliceResult(
      model=new_model, kept=kept, removed=removed, skipped=skipped,
      macs_before=macs_before, macs_after=macs_after,
      params_before=count_params(model), params_after=count_params(new_model),
      per_layer=rows, ratio=ratio, criterion=criterion)


def plan_keep(graph, ratio, criterion, layers=None, previous=None):
  """Chooses the kept channels of every selected group.

  Args:
    graph: the model's `ChannelGraph`.
    ratio: fraction of channels to remove from each group.
    criterion: one of `CRITERIA`.
    layers: names of the producer layers to slice (their whole group is
      sliced), or None for all.
    previous: `{root: kept}` that must stay removed (gradual mode).

  Returns:
    `(keep, skipped, criteria)`: `{root: kept channels}`, the skipped list,
    and `{layer name: criterion used}`.
  """
  selected, skipped = _selected_groups(graph, layers)
  scores, used = _group_scores(graph, criterion, list(selected))
  keep, criteria, fallback = {}, {}, []
  for root, names in selected.items():
    forced = None if previous is None else previous.get(root)
    keep[root] = _select(scores[root], ratio, names, forced)
    label = used[root] or criterion
    if label != criterion:
      label = f"{label} (no BatchNormalization follows)"
      fallback.extend(names)
    criteria.update({name: label for name in names})
  if fallback:
    warnings.warn(
        "criterion 'bn_gamma': no BatchNormalization follows "
        f"{', '.join(map(repr, fallback))}, so these are ranked by l1",
        RuntimeWarning, stacklevel=3)
  return keep, skipped, criteria


def slice_model(model, ratio, criterion="l1", layers=None):
  """Removes the lowest-ranked channels of every layer and shrinks the model.

  Args:
    model: a built Keras 3 or tf_keras Functional or Sequential model
      (nested graph models are left whole); not modified.
    ratio: fraction in [0, 1) of each sliceable layer's output channels to
      remove, `round(ratio * channels)` of them.
    criterion: `l1`, `l2` (norm of each filter; summed over the layers of a
      channel group, e.g. those meeting in an Add) or `bn_gamma` (|gamma| of
      the following BatchNormalization; groups without one use l1, with a
      warning and the fallback named in `per_layer`).
    layers: names of the Conv/Dense layers to slice (the layers tied to them
      through an Add are sliced with them), or None for all that can be.

  Returns:
    A `SliceResult` with the new model. Layers that feed the model outputs
    (the classifier) or unknown layers (Lambda, custom layers, ...) are left
    whole and listed in `skipped`.

  Raises:
    TypeError: for an object that is not a Keras model.
    UserInputError: for a ratio outside [0, 1), a ratio that removes every
      channel of a layer, an unknown criterion or layer name, or a
      subclassed model (`ModelError` for a subclassed Keras 3 model).

  Example:
    >>> result = slice_model(model, 0.5, criterion="l1")
    >>> result.model.summary()
  """
  ratio = check_ratio(ratio)
  check_criterion(criterion)
  graph = _graph(model, "slice_model")
  keep, skipped, criteria = plan_keep(graph, ratio, criterion, layers)
  return _finish(model, graph, keep, skipped, criteria, ratio, criterion)


def keep_from_kept(graph, kept):
  """Turns `{layer name: kept channels}` into `{root: kept}` per group."""
  selected, _ = _selected_groups(graph, None)
  owner = {n: r for r, names in selected.items() for n in names}
  keep, source = {}, {}
  for name, indices in kept.items():
    if name not in graph.roles:
      raise UserInputError(
          f"`kept` names {name!r}, which is not a layer with channels to "
          "slice in this model")
    if graph.roles[name].kind not in channel_groups.PRODUCERS:
      continue  # BatchNorm/Depthwise entries follow their producers.
    if name not in owner:
      root = graph.group_of(name)
      raise UserInputError(
          f"`kept` slices layer {name!r}, which cannot be sliced: "
          f"{graph.fixed_reason(root)}")
    root = owner[name]
    size = graph.size(root)
    indices = np.unique(np.asarray(list(indices), np.int64))
    if not indices.size or indices.min() < 0 or indices.max() >= size:
      raise UserInputError(
          f"`kept[{name!r}]` must hold between 1 and {size} channel indices "
          f"in [0, {size}), got {list(kept[name])[:10]}")
    if root in keep and not np.array_equal(keep[root], indices):
      raise UserInputError(
          f"`kept` gives layers {source[root]!r} and {name!r} different "
          "channels, but their outputs are added together and must keep "
          "the same ones")
    keep[root], source[root] = indices, name
  return keep


def _kept_dict(kept):
  kept = getattr(kept, "kept", kept)
  if not isinstance(kept, dict):
    raise UserInputError(
        "`kept` must be a {layer name: channel indices} dict, a SliceResult "
        f"or a SlicingCallback, got {type(kept).__name__}")
  return kept


def mask_channels(model, kept):
  """A copy of `model` in which the channels not in `kept` are zeroed.

  The removed channels' filters and biases (and BatchNormalization gamma
  and beta) are zeroed, and so are the input weights of every layer that
  reads them. Their contribution downstream is then exactly 0, so the
  masked copy predicts what the sliced model does.

  Args:
    model: a Keras 3 or tf_keras Functional or Sequential model; not
      modified.
    kept: `{layer name: kept output channels}` (e.g. `SliceResult.kept`), a
      `SliceResult` or a `SlicingCallback`; layers not named keep all.

  Returns:
    A new model with the same architecture.

  Raises:
    TypeError: for an object that is not a Keras model.
    UserInputError: for names or indices that do not fit the model, or a
      subclassed model.
  """
  keras3_slicing.check_slicing_model(model, "mask_channels")
  kept = _kept_dict(kept)
  copy = None
  if is_keras3_object(model):
    # The copy would lose the in-place pruning or QAT instrumentation.
    keras3_slicing.check_not_instrumented(model)
    copy = keras3_slicing.copy_layer
  clone = clone_with_weights(model, copy)
  graph = channel_groups.analyze_channels(clone)
  keep = keep_from_kept(graph, kept)
  for variable, mask in rebuild.channel_masks(graph, keep):
    variable.assign(keras3_slicing.to_numpy(variable) * mask)
  return clone


def slice_masked_model(model, kept):
  """Slices out the channels that gradual slicing (or `kept`) masked.

  Args:
    model: the model trained with a `SlicingCallback` (not modified).
    kept: that `SlicingCallback`, or `{layer name: kept channels}`.

  Returns:
    A `SliceResult` (with `ratio` and `criterion` None).

  Raises:
    TypeError: for an object that is not a Keras model.
    UserInputError: for names or indices that do not fit the model, or a
      subclassed model.
  """
  keras3_slicing.check_slicing_model(model, "slice_masked_model")
  kept = _kept_dict(kept)
  graph = channel_groups.analyze_channels(model)
  keep = keep_from_kept(graph, kept)
  _, skipped = _selected_groups(graph, None)
  criteria = {name: "given" for name in kept}
  return _finish(model, graph, keep, skipped, criteria, None, None)
