"""A Keras callback that ends a hopeless Optuna trial during fine-tuning.

Optuna's `trial.report` / `trial.should_prune` work only in single-objective
studies, and tuning here is multi-objective. So the rule is explicit instead:
a trial is hopeless when, after an epoch in the second half of a training
stage, its validation accuracy is below

    baseline validation accuracy - max_accuracy_drop - margin

i.e. clearly below what the accuracy constraint allows, with a margin for
the recovery still to come. The callback then raises `optuna.TrialPruned`
(the trial is recorded as PRUNED) after writing the epoch's value to the
trial (`user_attrs["val_accuracy_by_epoch"]`) so it stays visible.

The first half of each `fit` is never judged: pruning schedules, QAT and a
distillation student start below their final accuracy.
"""

import math

import optuna

from tf_compress._keras import keras, register
from tf_compress.errors import UserInputError

__all__ = ["HopelessTrialStopper"]


@register
class HopelessTrialStopper(keras.callbacks.Callback):
  """Raises `optuna.TrialPruned` when validation accuracy is hopeless.

  Args:
    threshold: the validation metric below which the trial is stopped.
    trial: the `optuna.Trial` to record epochs on (optional: without it the
      callback only raises).
    monitor: the logs key judged.
    min_epoch: never judge before this many epochs (1-based) of a `fit`.
    start_fraction: judge only from epoch `ceil(start_fraction * epochs)`
      of each `fit` on (and not before `min_epoch`).

  Example:
    stopper = HopelessTrialStopper(threshold=0.9, trial=trial)
    model.fit(data, validation_data=val, epochs=4, callbacks=[stopper])
  """

  def __init__(self, threshold, trial=None, monitor="val_accuracy",
               min_epoch=1, start_fraction=0.5):
    super().__init__()
    if not isinstance(threshold, (int, float)) or math.isnan(threshold):
      raise UserInputError(f"threshold must be a number, got {threshold!r}")
    if int(min_epoch) < 1:
      raise UserInputError(f"min_epoch must be >= 1, got {min_epoch!r}")
    if not 0.0 <= start_fraction <= 1.0:
      raise UserInputError(f"start_fraction must be in [0, 1], got "
                           f"{start_fraction!r}")
    self.threshold = float(threshold)
    self.trial = trial
    self.monitor = monitor
    self.min_epoch = int(min_epoch)
    self.start_fraction = float(start_fraction)
    self.history = []
    self.stopped_epoch = None

  def first_judged_epoch(self, epochs):
    """The first 1-based epoch of a `fit` of `epochs` epochs that is judged."""
    return max(self.min_epoch, math.ceil(self.start_fraction * epochs))

  def on_epoch_end(self, epoch, logs=None):
    logs = logs or {}
    value = logs.get(self.monitor)
    if value is None:
      return
    value = float(value)
    self.history.append(value)
    if self.trial is not None:
      self.trial.set_user_attr("val_accuracy_by_epoch", list(self.history))
    epochs = (self.params or {}).get("epochs") or (epoch + 1)
    if epoch + 1 < self.first_judged_epoch(epochs):
      return
    if value < self.threshold:
      self.stopped_epoch = epoch + 1
      if self.trial is not None:
        self.trial.set_user_attr("stopped", {
            "epoch": epoch + 1, self.monitor: value,
            "threshold": self.threshold})
      raise optuna.TrialPruned(
          f"{self.monitor}={value:.4f} after epoch {epoch + 1} is below "
          f"{self.threshold:.4f} (baseline - max_accuracy_drop - margin)")

  def get_config(self):
    return {"threshold": self.threshold, "monitor": self.monitor,
            "min_epoch": self.min_epoch,
            "start_fraction": self.start_fraction}

  @classmethod
  def from_config(cls, config):
    return cls(**config)
