"""Magnitude pruning of a Keras model with tfmot's `prune_low_magnitude`.

`prune_model` copies the caller's model, then wraps the selected layers of
the copy with tfmot's `PruneLowMagnitude` (tfmot's wrappers reuse the layer
objects they wrap, so wrapping the caller's layers would prune the caller's
kernels too). Train the result with `PruningCallback`, then export it with
`strip_pruning`.

Block pruning (`PruningConfig.block_size`) is passed to tfmot per layer:
tfmot pools only 2-D weights into blocks (and raises for any other rank),
so layers whose prunable weights are not all 2-D with both sides > 1
(convolutions, a Dense with one input or one output) are wrapped with the
default (1, 1) and pruned unstructured to the same target.
"""

import re

from tf_compress._tfmot import tfmot

from tf_compress._keras import check_model, is_keras3_object, keras
from tf_compress.errors import ModelError, UserInputError
from tf_compress.models.graph import check_graph_model
from tf_compress.models.graph import clone_with_weights
from tf_compress.models.graph import copy_layer
from tf_compress.models.graph import is_graph_model
from tf_compress.models.graph import iter_layers
from tf_compress.models.persistence import load_model
from tf_compress.pruning import keras3_pruning
from tf_compress.pruning import schedules
from tf_compress.pruning.wrappers import find_pruning_wrappers
from tf_compress.pruning.wrappers import prunable_status
from tf_compress.pruning.wrappers import prunable_weights
from tf_compress.pruning.wrappers import PruneLowMagnitude
from tf_compress.pruning.pruning_config import PruningConfig

__all__ = ["prune_model", "strip_pruning", "load_pruned_model",
           "pruning_custom_objects", "selected_layers", "takes_blocks"]

_MAKE_PRUNABLE = (
    "make it prunable by implementing tfmot.sparsity.keras.PrunableLayer "
    "(a get_prunable_weights() method returning the kernels to prune), or "
    "leave it out with PruningConfig.include (layer name patterns) or "
    "PruningConfig.layer_types")


def _check_graph_model(model, what):
  check_graph_model(
      model, what, "whose layers tfmot cannot reach: build it with the "
      "Functional API, or prune its Functional sub-model (e.g. the student) "
      "before wrapping it")


def selected_layers(model, config):
  """The layers `prune_model(model, config)` wraps, as `[(path, layer)]`.

  Args:
    model: a built Sequential or Functional model.
    config: a `PruningConfig`.

  Returns:
    `(path, layer)` pairs in model order; `path` is `outer/inner` for layers
    of nested models.

  Raises:
    TypeError: for a Keras 3 model.
    ModelError: a selected layer cannot be pruned, or none is selected.
  """
  check_model(model)
  patterns = [re.compile(p) for p in config.include]
  chosen = []
  for path, layer in iter_layers(model, into_subclassed=False):
    if patterns and not any(
        p.fullmatch(layer.name) or p.fullmatch(path) for p in patterns):
      continue
    if config.layer_types and not any(
        cls.__name__ in config.layer_types for cls in type(layer).__mro__):
      continue
    status = prunable_status(layer)
    if status == "nothing":
      continue
    if status == "unprunable":
      kind = ("sub-model" if isinstance(layer, keras.Model) else "layer")
      raise ModelError(
          f"{kind} {path!r} ({type(layer).__name__}) was selected for "
          f"pruning, but tfmot cannot prune it: {_MAKE_PRUNABLE}")
    chosen.append((path, layer))
  if config.keep_first:
    chosen = chosen[1:]
  if config.keep_last:
    chosen = chosen[:-1]
  if not chosen:
    raise ModelError(
        f"no layer of model {model.name!r} is selected for pruning (include="
        f"{list(config.include)}, layer_types={list(config.layer_types)}, "
        f"keep_first={config.keep_first}, keep_last={config.keep_last}); "
        "widen the selection")
  if config.m_by_n is not None:
    for path, layer in chosen:
      for weight in prunable_weights(layer):
        if weight.shape.rank not in (2, 4):
          raise ModelError(
              f"m_by_n={config.m_by_n} needs rank-2 (Dense) or rank-4 "
              f"(Conv2D) kernels, but layer {path!r} prunes a weight of "
              f"shape {tuple(weight.shape)}: leave it out with "
              "PruningConfig.include or layer_types")
  return chosen


def takes_blocks(layer):
  """True when tfmot can prune `layer` (built) in 2-D blocks.

  Every prunable weight must be 2-D with both sides > 1: tfmot raises for
  other ranks, and squeezes a side of 1 away before pooling, which fails.
  """
  weights = prunable_weights(layer)
  return bool(weights) and all(
      w.shape.rank == 2 and min(w.shape) > 1 for w in weights)


def prune_model(model, config, steps_per_epoch=None):
  """Returns the model to train with magnitude pruning of its selected layers.

  The engine follows the model's type. A tf_keras model gets tfmot's
  wrappers on a copy; the caller's model and its weights are never changed.
  A Keras 3 model gets the native engine (`keras3_pruning`): a Sequential or
  Functional one is copied, a subclassed one is instrumented in place. In
  both cases compile the result and train it with `PruningCallback`.

  Args:
    model: a built tf_keras Sequential or Functional model (nested
      Sequential/Functional sub-models are pruned too), or any built Keras 3
      model (subclassed and nested ones included).
    config: a `PruningConfig`.
    steps_per_epoch: training steps per epoch, needed when the config's
      begin or end is in epochs.

  Returns:
    tf_keras: a new, uncompiled `keras.Model` with `PruneLowMagnitude`
    wrappers. With `config.block_size` other than (1, 1), the wrappers of
    layers with 2-D kernels (see `takes_blocks`) prune in blocks, the others
    unstructured. Keras 3: the instrumented copy, or the subclassed model
    itself.

  Raises:
    ModelError: a tf_keras model is subclassed, the model is not built, or
      a selected layer cannot be pruned.
    UserInputError: a bad config or steps_per_epoch.
  """
  if is_keras3_object(model):
    return keras3_pruning.prune_keras3_model(model, config, steps_per_epoch)
  check_model(model)
  if not isinstance(config, PruningConfig):
    raise UserInputError(
        f"config must be a PruningConfig, got {type(config).__name__}")
  _check_graph_model(model, "prune_model")
  if not model.built or not model.inputs:
    raise ModelError(
        f"model {model.name!r} is not built: give it an Input (or call "
        "build(input_shape)) before pruning")
  if find_pruning_wrappers(model):
    raise ModelError(
        f"model {model.name!r} already has pruning wrappers; strip them "
        "with strip_pruning first, or keep training the pruned model")
  schedule = schedules.make_pruning_schedule(config, steps_per_epoch)
  wrap_args = {"pruning_schedule": schedule}
  if config.m_by_n is not None:
    wrap_args = {"pruning_schedule": schedules.MbyNSparsity(*config.m_by_n),
                 "sparsity_m_by_n": config.m_by_n}
  elif config.scope == "global":
    wrap_args = {"pruning_schedule": schedules.GlobalSparsity(schedule)}

  copy = clone_with_weights(model, copy_layer, what="pruning")
  layers = [layer for _, layer in selected_layers(copy, config)]
  chosen = {id(layer) for layer in layers}
  blocked = set()
  if config.block_size != (1, 1):
    blocked = {id(layer) for layer in layers if takes_blocks(layer)}
  block_args = {"block_size": config.block_size,
                "block_pooling_type": config.block_pooling}

  def wrap(layer):
    if isinstance(layer, keras.Model) and is_graph_model(layer):
      return keras.models.clone_model(layer, clone_function=wrap)
    if id(layer) in blocked:
      return tfmot.sparsity.keras.prune_low_magnitude(
          layer, **wrap_args, **block_args)
    if id(layer) in chosen:
      return tfmot.sparsity.keras.prune_low_magnitude(layer, **wrap_args)
    return layer

  return keras.models.clone_model(copy, clone_function=wrap)


def strip_pruning(model):
  """Returns a plain Keras copy of a pruned model, for export.

  A Keras 3 model goes to `keras3_pruning.strip_keras3_pruning` (a copy of
  a graph model; a subclassed one is stripped in place).

  tfmot's `strip_pruning` removes the wrappers; the result is then copied
  again with each kernel multiplied by its mask, so it shares no layer or
  variable with `model` and its zeros are exact whatever step training
  stopped at.

  Args:
    model: a Sequential or Functional model with pruning wrappers (a model
      without any is simply copied).

  Returns:
    A new, uncompiled `keras.Model` with the original layer classes, whose
    pruned weights hold exact zeros.

  Raises:
    TypeError: for a Keras 3 model.
    ModelError: for a subclassed model.
  """
  if is_keras3_object(model):
    return keras3_pruning.strip_keras3_pruning(model)
  _check_graph_model(model, "strip_pruning")
  masked = {}
  for _, wrapper in find_pruning_wrappers(model):
    for weight, mask, _ in wrapper.pruning_vars:
      masked[id(weight)] = (weight * mask).numpy()
  shared = tfmot.sparsity.keras.strip_pruning(model)
  values = [masked[id(v)] if id(v) in masked else v.numpy()
            for v in shared.weights]
  export = keras.models.clone_model(shared)
  export.set_weights(values)
  return export


def pruning_custom_objects():
  """The Keras custom objects a saved pruned model needs to load."""
  objects = {"PruneLowMagnitude": PruneLowMagnitude.resolve()}
  for cls in (schedules.GlobalSparsity, schedules.MbyNSparsity):
    objects[keras.utils.get_registered_name(cls)] = cls
  return objects


def load_pruned_model(path, safe_mode=True):
  """Loads a model saved in the middle of pruning (`.keras` or `.h5`).

  Masks, thresholds and each wrapper's `pruning_step` are weights, so they
  come back, and training with `PruningCallback` continues the schedule
  where it stopped (the optimizer too, when it was saved).

  Args:
    path: the saved file.
    safe_mode: refuse files that would run code on loading, `.h5` ones
      included (see `tf_compress.load_model`).

  Returns:
    The model, with its pruning wrappers (compiled when saved compiled).

  Raises:
    ModelError: the file is missing, corrupt, refused by `safe_mode` or
      not a Keras 2 model.
  """
  with tfmot.sparsity.keras.prune_scope():
    return load_model(path, custom_objects=pruning_custom_objects(),
                      safe_mode=safe_mode)
