"""Magnitude pruning of Keras 3 models, native (no tfmot), in place.

The Keras 3 engine instruments the layers where they stand, the way Keras
3's own `model.quantize` does, so Sequential, Functional, subclassed and
nested models are all pruned the same way. Each pruned kernel gets a 0/1
mask variable and a variable constraint that multiplies the kernel by it.
Keras 3 optimizers apply variable constraints inside the compiled train step
right after each update, so the forward pass sees the masked weights at
every step, whatever `steps_per_execution` is. `PruningCallback` updates the
masks on the schedule (`PruningConfig`: constant or polynomial, layer or
global scope, M:N, blocks, layer selection).

Backends. Masks are computed on the host (`keras3_masks`) and applied with
`keras.ops`. JAX's train step is a pure function of the model's state, so
each mask is in its layer's `variables` (hence in the state JAX carries)
but not in its `weights` (so `get_weights`, parameter counts and saved files
are the unpruned model's); the model's `train_step` hands the masks' values
to the constraints, and the callback syncs the state (`jax_state_sync`)
before it reads kernels or writes masks.

Saving and resuming. A model saved mid-pruning holds its masked kernels
(exact zeros) and its optimizer, whose `iterations` is the step. Load it
with `keras.models.load_model` and call `resume_keras3_pruning`: the masks
come back from the zeros, the step with the optimizer. After a
`BackupAndRestore` restore, `PruningCallback` re-derives the masks from the
restored zeros the same way, so the run goes on as if uninterrupted.
"""

import contextlib
import re
import threading

import keras
from keras import ops
import numpy as np

from tf_compress.errors import ModelError
from tf_compress.errors import UserInputError
from tf_compress.pruning import keras3_masks as masks_lib
from tf_compress.pruning.pruning_config import PruningConfig
from tf_compress.pruning.schedules import resolve_steps

__all__ = ["Keras3Pruner", "prune_keras3_model", "resume_keras3_pruning",
           "find_pruner", "strip_keras3_pruning", "keras3_sparsity_rows",
           "Keras3PruningDriver", "KERNEL_ATTRIBUTES", "PRUNER_ATTRIBUTE"]

# The prunable weights of each layer kind, by attribute name.
KERNEL_ATTRIBUTES = ("kernel", "depthwise_kernel", "pointwise_kernel",
                     "embeddings")
PRUNER_ATTRIBUTE = "_tf_compress_pruner"


# The masks' values inside a stateless (JAX) train step, by id of the mask.
_STEP_STATE = threading.local()


@contextlib.contextmanager
def _mask_values(values):
  previous = getattr(_STEP_STATE, "values", None)
  _STEP_STATE.values = values
  try:
    yield
  finally:
    _STEP_STATE.values = previous


class _MaskConstraint(keras.constraints.Constraint):
  """`inner(w) * mask`: applied by the optimizer after every update."""

  def __init__(self, mask, inner=None):
    self.mask = mask
    self.inner = inner

  def __call__(self, w):
    if self.inner is not None:
      w = self.inner(w)
    values = getattr(_STEP_STATE, "values", None)
    # In a JAX step the variable holds no value; the state does.
    mask = values.get(id(self.mask), self.mask) if values else self.mask
    mask = ops.cast(mask, w.dtype)
    return w * mask


class _MaskState:
  """Puts a mask in its layer's `variables` but not in its `weights`.

  Keras lists a layer's seed generators' `state` in `variables` only: that
  is the state a stateless train step carries without it being a weight.
  """

  def __init__(self, mask):
    self.state = mask


_STEP_MARK = "_tf_compress_masks_step"


def _show_masks_to_step(model):
  """JAX: wraps `model.train_step` to hand the masks' state to constraints.

  JAX's trainer calls `optimizer.stateless_apply` with the trainable and
  optimizer variables only; the masks (non-trainable state) would read as
  their stale or purged Python values. A no-op on other backends.
  """
  if keras.backend.backend() != "jax" or getattr(model.train_step,
                                                  _STEP_MARK, False):
    return
  config = getattr(keras, "config", None)
  if config is not None and getattr(config, "is_nnx_enabled", bool)():
    raise ModelError("Keras 3 pruning under JAX does not support Flax NNX "
                     "(keras.config.is_nnx_enabled() is True): its trainer "
                     "calls the class's train_step; disable NNX")
  step = model.train_step

  def train_step(state, data):
    values = {id(v): value for v, value in
              zip(model.non_trainable_variables, state[1])}
    with _mask_values(values):
      return step(state, data)

  setattr(train_step, _STEP_MARK, True)
  object.__setattr__(model, "train_step", train_step)
  model.train_function = None  # traced again, through the wrapper


def _sync_state(model):
  """JAX: writes the trainer's state back to the variables (else no-op).

  Mid-epoch the variables hold no values; after the sync the trainer reads
  its next step's state from them, with whatever was assigned meanwhile.
  """
  sync = getattr(model, "jax_state_sync", None)
  if sync is not None:
    sync()


def _sublayers(layer):
  # pylint: disable-next=protected-access
  return list(layer._flatten_layers(include_self=False, recursive=False))


def _walk(layer, prefix=""):
  """(path, layer) of every leaf layer below `layer`, in order."""
  for child in _sublayers(layer):
    path = f"{prefix}{child.name}"
    if _sublayers(child) and not _kernels_of(child):
      yield from _walk(child, path + "/")
    else:
      yield path, child


def _kernels_of(layer):
  out = []
  for name in KERNEL_ATTRIBUTES:
    variable = getattr(layer, name, None)
    if isinstance(variable, keras.Variable) and len(variable.shape) >= 2:
      out.append((name, variable))
  return out


def _kind(layer):
  return "embedding" if isinstance(layer, keras.layers.Embedding) else "kernel"


def _class_names(layer):
  return {cls.__name__ for cls in type(layer).__mro__}


def _selected(model, config):
  candidates = [(path, layer) for path, layer in _walk(model)
                if _kernels_of(layer)]
  chosen = []
  for path, layer in candidates:
    if config.include and not any(re.fullmatch(p, layer.name) or
                                  re.fullmatch(p, path)
                                  for p in config.include):
      continue
    if config.layer_types and not (_class_names(layer) &
                                   set(config.layer_types)):
      continue
    chosen.append((path, layer))
  if config.keep_first and chosen:
    chosen = chosen[1:]
  if config.keep_last and chosen:
    chosen = chosen[:-1]
  return chosen


def _schedule_sparsity(config, begin, end, step):
  """The target sparsity of the schedule at `step` (1-based, as tfmot)."""
  target = float(config.target_sparsity)
  if config.schedule == "constant" or config.m_by_n is not None:
    return target
  if step >= end:
    return target
  progress = max(0.0, (step - begin) / max(1, end - begin))
  initial = float(config.initial_sparsity)
  return target + (initial - target) * (1.0 - progress) ** config.power


class Keras3Pruner:
  """The pruning state of one Keras 3 model: its masks and schedule.

  Attributes:
    model: the pruned model (instrumented in place).
    config: the `PruningConfig`.
    targets: `(path, layer, weight name, variable, mask)` per pruned kernel.
    begin_step: first step at which masks are updated.
    end_step: last update step (-1: constant schedule without an end).
    skipped: `{path: reason}` of selected kernels left dense (M:N needs the
      input-channel count to be a multiple of N).
  """

  def __init__(self, model, config, steps_per_epoch=None):
    self.model = model
    self.config = config
    self.begin_step, self.end_step = resolve_steps(config, steps_per_epoch)
    self.targets = []
    self.skipped = {}
    selected = _selected(model, config)
    if not selected:
      raise ModelError(
          f"model {model.name!r} has no layer to prune: none with a kernel "
          "(Dense, EinsumDense, Conv, DepthwiseConv2D, SeparableConv2D, "
          "Embedding) matches PruningConfig's include/layer_types")
    for path, layer in selected:
      for name, variable in _kernels_of(layer):
        if (config.m_by_n is not None and int(variable.shape[
            masks_lib.input_axis(len(variable.shape), _kind(layer))]) %
            config.m_by_n[1]):
          self.skipped[f"{path}/{name}"] = (
              f"its input-channel count is not a multiple of "
              f"{config.m_by_n[1]}, so {config.m_by_n[0]}:{config.m_by_n[1]} "
              "groups do not tile it")
          continue
        # Resume: a kernel with exact zeros was saved mid-pruning.
        initial = ops.cast(ops.not_equal(variable, 0), variable.dtype)
        mask = keras.Variable(initial, trainable=False, dtype=variable.dtype,
                              name=f"{layer.name}_{name}_prune_mask")
        variable.constraint = _MaskConstraint(mask, variable.constraint)
        # pylint: disable-next=protected-access
        layer._seed_generators.append(_MaskState(mask))
        self.targets.append((path, layer, name, variable, mask))
    object.__setattr__(model, PRUNER_ATTRIBUTE, self)
    _show_masks_to_step(model)

  def is_update_step(self, step):
    """True when the masks are recomputed before training step `step`."""
    if step < max(1, self.begin_step):
      return False
    if self.config.m_by_n is not None:
      return step == max(1, self.begin_step)
    if self.end_step >= 0 and step > self.end_step:
      return False
    return (step - self.begin_step) % self.config.frequency == 0

  def first_update_step(self):
    """The first step at which the masks are computed."""
    first = max(1, self.begin_step)
    if self.config.m_by_n is None:
      first += (-(first - self.begin_step)) % self.config.frequency
    return first

  def restore_masks(self, step):
    """Sets the masks to those of a run that has trained `step` steps.

    Once an update has run, each mask is its kernel's nonzeros: the
    constraint keeps pruned weights at exact zeros, and saved files and
    `BackupAndRestore` checkpoints hold those kernels, not the masks.
    Before the first update the masks are left as they are.

    Returns:
      True when the masks were re-derived.
    """
    if not self.targets or step < self.first_update_step():
      return False
    for _, _, _, variable, mask in self.targets:
      mask.assign(ops.cast(ops.not_equal(variable, 0), mask.dtype))
    return True

  def target_sparsity(self, step):
    return _schedule_sparsity(self.config, self.begin_step,
                              self.end_step if self.end_step >= 0 else step,
                              step)

  def update(self, step):
    """Recomputes the masks for `step` if it is an update step.

    Returns:
      True when the masks changed.
    """
    if not self.targets or not self.is_update_step(step):
      return False
    config = self.config
    sparsity = self.target_sparsity(step)
    kernels = [np.asarray(ops.convert_to_numpy(variable))
               for _, _, _, variable, _ in self.targets]
    if config.m_by_n is not None:
      new = [masks_lib.m_by_n_mask(
          kernel, config.m_by_n[0], config.m_by_n[1],
          masks_lib.input_axis(kernel.ndim, _kind(layer)))
             for (_, layer, _, _, _), kernel in zip(self.targets, kernels)]
    elif config.scope == "global":
      new = masks_lib.global_masks(kernels, sparsity)
    else:
      new = []
      for kernel in kernels:
        if config.block_size != (1, 1) and kernel.ndim == 2 and min(
            kernel.shape) > 1:
          new.append(masks_lib.block_mask(kernel, sparsity,
                                          config.block_size,
                                          config.block_pooling))
        else:
          new.append(masks_lib.magnitude_mask(kernel, sparsity))
    for (_, _, _, variable, mask), kernel, value in zip(self.targets, kernels,
                                                        new):
      value = value.astype(kernel.dtype)
      mask.assign(value)
      variable.assign(kernel * value)
    return True

  def rows(self):
    """`sparsity_table` rows: per pruned layer, its kernels' zeros."""
    return _layer_rows((path, variable) for path, _, _, variable, _
                       in self.targets)

  def strip(self):
    """Removes the instrumentation; the kernels keep their exact zeros."""
    for _, layer, _, variable, mask in self.targets:
      variable.assign(variable * mask)
      constraint = variable.constraint
      if isinstance(constraint, _MaskConstraint):
        variable.constraint = constraint.inner
      # pylint: disable-next=protected-access
      layer._seed_generators[:] = [
          s for s in layer._seed_generators  # pylint: disable=protected-access
          if not (isinstance(s, _MaskState) and s.state is mask)]
    self.targets = []
    object.__setattr__(self.model, PRUNER_ATTRIBUTE, None)
    if getattr(self.model.__dict__.get("train_step"), _STEP_MARK, False):
      del self.model.__dict__["train_step"]
      self.model.train_function = None


def find_pruner(model):
  """The `Keras3Pruner` of `model` or of a model nested in it, or None."""
  pruner = getattr(model, PRUNER_ATTRIBUTE, None)
  if pruner is not None:
    return pruner
  for child in _sublayers(model):
    if isinstance(child, keras.Layer):
      found = find_pruner(child)
      if found is not None:
        return found
  return None


def _is_graph(model):
  return isinstance(model, keras.Sequential) or (
      isinstance(model, keras.Model) and
      type(model).__name__ == "Functional")


def prune_keras3_model(model, config, steps_per_epoch=None):
  """Prunes a Keras 3 model: a copy for Sequential/Functional, in place else.

  Sequential and Functional models are cloned (weights copied) and the copy
  is pruned; the caller's model is untouched. A subclassed model cannot be
  cloned, so it is pruned in place (its layers are instrumented where they
  stand). Train the result with `PruningCallback`.

  Args:
    model: a built Keras 3 model.
    config: a `PruningConfig`.
    steps_per_epoch: training steps per epoch, for begin/end in epochs.

  Returns:
    The model to compile and train (the copy, or `model` itself).

  Raises:
    ModelError: the model is not built, has no prunable layer, or is
      already being pruned.
    UserInputError: a bad config or steps_per_epoch.
  """
  if not isinstance(config, PruningConfig):
    raise UserInputError(
        f"config must be a PruningConfig, got {type(config).__name__}")
  if not model.built:
    raise ModelError(f"model {model.name!r} is not built: call it on data "
                     "or build(input_shape) before pruning")
  if find_pruner(model) is not None:
    raise ModelError(f"model {model.name!r} is already being pruned; strip "
                     "it with strip_pruning first")
  if _is_graph(model):
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    model = copy
  Keras3Pruner(model, config, steps_per_epoch)
  return model


def resume_keras3_pruning(model, config, steps_per_epoch=None):
  """Resumes pruning a model saved mid-pruning and loaded back, in place.

  `prune_keras3_model` would clone a Sequential or Functional model, and a
  clone is not compiled: its optimizer, whose `iterations` is the pruning
  step, would be lost. This instruments the loaded model itself, keeping
  the optimizer that `keras.models.load_model` compiled and restored; each
  mask comes back from its kernel's exact zeros. Train on with
  `PruningCallback` and the same `fit` arguments.

  Args:
    model: a Keras 3 model loaded with `keras.models.load_model` (compiled,
      so with its optimizer state), or any built model being trained on.
    config: the `PruningConfig` the model was being pruned with.
    steps_per_epoch: as given to `prune_keras3_model`.

  Returns:
    `model`, instrumented.

  Raises:
    ModelError: the model is not built or not compiled, has no prunable
      layer, or is already being pruned.
    UserInputError: a bad config or steps_per_epoch.

  Example:
    >>> pruned.save("mid.keras")  # during or between fit calls
    >>> model = keras.models.load_model("mid.keras")
    >>> model = resume_keras3_pruning(model, config, steps_per_epoch=40)
    >>> model.fit(data, epochs=2, callbacks=[PruningCallback()])
  """
  if not isinstance(config, PruningConfig):
    raise UserInputError(
        f"config must be a PruningConfig, got {type(config).__name__}")
  if not model.built:
    raise ModelError(f"model {model.name!r} is not built: load it with "
                     "keras.models.load_model before resuming its pruning")
  if getattr(model, "optimizer", None) is None:
    raise ModelError(
        f"model {model.name!r} has no optimizer, so the pruning step "
        "(optimizer.iterations) cannot carry over: load it with "
        "keras.models.load_model(path) (compile=True), or start a new "
        "schedule with prune_model")
  if find_pruner(model) is not None:
    raise ModelError(f"model {model.name!r} is already being pruned")
  Keras3Pruner(model, config, steps_per_epoch)
  return model


def strip_keras3_pruning(model):
  """A Keras 3 model without pruning instrumentation, for export.

  A Sequential or Functional model is copied (the pruned model keeps
  training state); a subclassed one is stripped in place.

  Returns:
    A model whose pruned kernels hold exact zeros, with no mask constraint.
  """
  pruner = find_pruner(model)
  if pruner is None:
    return model
  for _, _, _, variable, mask in pruner.targets:
    variable.assign(variable * mask)
  if _is_graph(model):
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy
  pruner.strip()
  return model


def _layer_rows(path_variables):
  """One row per layer path over its kernels: weights, zeros, sparsity."""
  totals = {}
  for path, variable in path_variables:
    values = np.asarray(ops.convert_to_numpy(variable))
    row = totals.setdefault(path, {"layer": path, "weights": 0, "zeros": 0})
    row["weights"] += int(values.size)
    row["zeros"] += int((values == 0).sum())
  for row in totals.values():
    row["sparsity"] = row["zeros"] / row["weights"] if row["weights"] else 0.0
  return list(totals.values())


def keras3_sparsity_rows(model):
  """`sparsity_table` rows of a Keras 3 model, pruned or not.

  A model being pruned lists its pruned layers; any other lists the layers
  whose kernels hold zeros (a stripped pruned model), as for tf_keras.
  """
  pruner = find_pruner(model)
  if pruner is not None:
    return pruner.rows()
  rows = _layer_rows((path, variable) for path, layer in _walk(model)
                     for _, variable in _kernels_of(layer))
  return [row for row in rows if row["zeros"]]


class Keras3PruningDriver:
  """What `PruningCallback` does for a Keras 3 model.

  The step is the optimizer's `iterations` (read at the start of training
  and of each epoch, then counted), so a model restored by
  `BackupAndRestore` continues its schedule; at the first epoch of each
  `fit` (after every callback's `on_train_begin`, so after a restore) the
  masks are re-derived for that step (`Keras3Pruner.restore_masks`).
  Before each execution of `steps_per_execution` steps, the masks are
  updated for the latest update step that execution reaches.
  """

  def __init__(self, model):
    self.pruner = find_pruner(model)
    if self.pruner is None:
      raise ModelError(
          f"PruningCallback: Keras 3 model {model.name!r} is not being "
          "pruned; prune it first with tf_compress.pruning.prune_model")
    self.model = model
    self.step = 0
    self._restore = False
    _show_masks_to_step(model)  # the model trained may be an outer one

  def _sync(self):
    _sync_state(self.model)
    optimizer = getattr(self.model, "optimizer", None)
    if optimizer is not None:
      self.step = int(ops.convert_to_numpy(optimizer.iterations))

  def on_train_begin(self):
    self._sync()
    self._restore = True

  def on_epoch_begin(self):
    self._sync()
    if self._restore:
      self._restore = False
      self.pruner.restore_masks(self.step)

  def on_train_batch_begin(self):
    per_execution = int(getattr(self.model, "steps_per_execution", 1) or 1)
    due = None
    for step in range(self.step + 1, self.step + per_execution + 1):
      if self.pruner.is_update_step(step):
        due = step
    if due is not None:
      _sync_state(self.model)
      self.pruner.update(due)
    self.step += per_execution

  def rows(self):
    _sync_state(self.model)
    return self.pruner.rows()
