"""`PruningCallback`: the one callback that training a pruned model needs.

It does the work of tfmot's `UpdatePruningStep` (it starts the wrappers'
step counters and re-applies the masks at each epoch end) without being a
subclass of it, so that tfmot is imported only for tf_keras models; it runs
the global-scope
mask updates, and reports sparsity through `logs` and TensorBoard.

The step. tfmot's wrappers count training steps themselves, inside the
compiled train step (`pruning_step`, 1 at the first step), and tfmot's
per-layer updates happen there too, so they work with
`steps_per_execution > 1`. Global updates run here, between executions:
the callback reads that same counter (it never counts batch callbacks)
and, when one execution of k steps jumped over one or more update steps
of the schedule, applies the latest of them with that step's target.

That counter rather than `optimizer.iterations`: both advance once per
training step, but the counter is a weight of each wrapper, so it is saved
with the model (and in `BackupAndRestore` checkpoints) and survives a
loaded model being compiled with a fresh optimizer, whose `iterations`
restart at 0; and it is the step tfmot's per-layer schedules follow, so
both scopes agree on what step N is.
"""

import os

from tf_compress._keras import is_keras3_object
from tf_compress._keras import keras, register, tf
from tf_compress.errors import ModelError, UserInputError
from tf_compress.pruning import keras3_pruning
from tf_compress.pruning import schedules
from tf_compress.pruning.wrappers import find_pruning_wrappers
from tf_compress.pruning.global_pruning import apply_global_masks
from tf_compress.pruning.global_pruning import global_groups
from tf_compress.pruning.sparsity_stats import overall_sparsity
from tf_compress.pruning.sparsity_stats import wrapper_rows

__all__ = ["PruningCallback"]

K = keras.backend


def _write_scalar(tag, value, step):
  """`tf.summary.scalar` without needing the tensorboard package.

  `tf.summary.scalar` is implemented by tensorboard, which tf_compress does
  not require; `tf.summary.write` with the scalars plugin's metadata (whose
  content is empty in version 0) writes the same event.
  """
  metadata = tf.compat.v1.SummaryMetadata(
      plugin_data=tf.compat.v1.SummaryMetadata.PluginData(
          plugin_name="scalars"))
  tf.summary.write(tag, tf.constant(value, tf.float32), step=step,
                   metadata=metadata)


@register
class PruningCallback(keras.callbacks.Callback):
  """Drives pruning during `fit` and reports sparsity.

  Finds the pruning wrappers anywhere in the model given to `fit` (nested
  models, a student inside a distillation model), so it is the only pruning
  callback needed, for `scope="layer"` and `scope="global"` alike. At each
  epoch end it writes `logs["sparsity"]` (over all pruned kernels) and
  `logs["sparsity/<layer>"]`, which `History` records, and the same
  scalars to TensorBoard under `<log_dir>/pruning` when `log_dir` is set.

  Args:
    log_dir: optional TensorBoard log directory.

  Raises:
    UserInputError: `log_dir` is not a non-empty path.
    ModelError: (from `set_model`) the model has no pruning wrappers.

  Example:
    >>> pruned = prune_model(model, PruningConfig(target_sparsity=0.8))
    >>> pruned.compile(...)
    >>> history = pruned.fit(data, epochs=3, callbacks=[PruningCallback()])
    >>> history.history["sparsity"][-1]
    0.8
  """

  def __init__(self, log_dir=None):
    super().__init__()
    if log_dir is not None:
      if not isinstance(log_dir, (str, os.PathLike)) or not os.fspath(
          log_dir):
        raise UserInputError(
            f"PruningCallback log_dir must be a non-empty path, got "
            f"{log_dir!r}")
      log_dir = os.fspath(log_dir)
    self.log_dir = log_dir
    # The batch hooks read no logs: let Keras skip converting them to numpy
    # after every step, which would block on each step's results.
    self._supports_tf_logs = True
    self._wrappers = []
    self._groups = []
    self._last_steps = {}
    self._writer = None
    self._driver = None
    self.prunable_layers = []
    # Keras 3: batch-end hooks may run asynchronously (this callback's do
    # nothing; its mask updates run in the synchronous batch-begin hook).
    self.async_safe = True

  def set_model(self, model):
    if is_keras3_object(model):
      # The Keras 3 engine: masks kept by keras3_pruning, no tfmot.
      self.model = model
      self._driver = keras3_pruning.Keras3PruningDriver(model)
      return
    self._driver = None
    super().set_model(model)
    self._wrappers = find_pruning_wrappers(model)
    if not self._wrappers:
      raise ModelError(
          f"PruningCallback: model {model.name!r} has no pruning wrappers; "
          "prune it first with tf_compress.pruning.prune_model")
    self.prunable_layers = [w for _, w in self._wrappers]
    self._groups = global_groups(self._wrappers)

  def on_train_begin(self, logs=None):
    if self._driver is not None:
      self._driver.on_train_begin()
      self._open_writer()
      return
    # tfmot's job: a fresh wrapper's step is -1 and must start at 0; a
    # restored one keeps its count.
    steps = K.batch_get_value([w.pruning_step for w in self.prunable_layers])
    K.batch_set_value([(w.pruning_step, 0)
                       for w, s in zip(self.prunable_layers, steps) if s < 0])
    # Read lazily at the first batch, after BackupAndRestore has restored.
    self._last_steps = {}
    self._open_writer()

  def _remask(self):
    """tfmot's epoch-end duty: kernels = kernels * masks, in every wrapper."""
    for wrapper in self.prunable_layers:
      wrapper.pruning_obj.weight_mask_op()

  def _open_writer(self):
    if self.log_dir and self._writer is None:
      self._writer = tf.summary.create_file_writer(
          os.path.join(self.log_dir, "pruning"))

  def _group_step(self, members):
    return int(K.get_value(members[0][1].pruning_step))

  def _implements_train_batch_hooks(self):
    # Layer-scope masks are updated inside the wrappers' compiled train step;
    # only global groups need work between steps. Without batch hooks Keras
    # skips its per-batch callback machinery: that is most of this
    # callback's step-time overhead on small models.
    return self._driver is not None or bool(self._groups)

  def on_epoch_begin(self, epoch, logs=None):
    if self._driver is not None:
      self._driver.on_epoch_begin()

  def on_train_batch_begin(self, batch, logs=None):
    if self._driver is not None:
      self._driver.on_train_batch_begin()
      return
    for index, (_, members) in enumerate(self._groups):
      if index not in self._last_steps:
        self._last_steps[index] = self._group_step(members)

  def on_train_batch_end(self, batch, logs=None):
    if self._driver is not None:
      return
    for index, (schedule, members) in enumerate(self._groups):
      step = self._group_step(members)
      due = schedules.last_update_step(
          schedule, self._last_steps.get(index, step - 1), step)
      if due is not None:
        apply_global_masks([w for _, w in members], schedule.sparsity_at(due))
      self._last_steps[index] = step

  def on_epoch_end(self, epoch, logs=None):
    if self._driver is not None:
      rows = self._driver.rows()
    else:
      self._remask()
      rows = wrapper_rows(self._wrappers)
    overall = overall_sparsity(rows)
    if logs is not None:
      logs["sparsity"] = overall
      for row in rows:
        logs[f"sparsity/{row['layer']}"] = row["sparsity"]
    if self._writer is not None:
      with self._writer.as_default():
        _write_scalar("sparsity", overall, epoch)
        for row in rows:
          _write_scalar(f"sparsity/{row['layer']}", row["sparsity"], epoch)
      self._writer.flush()

  def on_train_end(self, logs=None):
    # Training may stop mid-epoch (`stop_training`, a step limit): leave
    # the kernels masked for saving or stripping (the Keras 3 engine's
    # constraint keeps them masked after every step).
    if self._driver is None:
      self._remask()
    if self._writer is not None:
      self._writer.close()
      self._writer = None

  def get_config(self):
    return {"log_dir": self.log_dir}

  @classmethod
  def from_config(cls, config):
    return cls(**config)
