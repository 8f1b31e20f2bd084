"""Pruning schedules: tfmot's, built from a `PruningConfig`, plus two of ours.

`make_pruning_schedule` returns tfmot's own `ConstantSparsity` or
`PolynomialDecay`, with begin, end and frequency in steps.

Our two schedules never fire tfmot's per-layer mask update (their
`should_prune` is always False); the masks come from elsewhere:

* `GlobalSparsity` wraps a tfmot schedule for `scope="global"`:
  `PruningCallback` computes one magnitude threshold over all layers at the
  wrapped schedule's update steps.
* `MbyNSparsity` marks `m_by_n` layers: tfmot sets their M:N masks at the
  first training step. tfmot's wrapper does not save `sparsity_m_by_n` in its
  config, so a reloaded wrapper with a firing schedule would overwrite the
  M:N masks with unstructured ones; this schedule keeps them.

Steps are tfmot's `pruning_step`: the wrappers count training steps in the
graph, starting at 1 for the first step.
"""

import importlib

from tf_compress._keras import keras
from tf_compress._tfmot import lazy
from tf_compress.errors import UserInputError
from tf_compress.pruning.pruning_config import PruningConfig

__all__ = ["make_pruning_schedule", "resolve_steps", "GlobalSparsity",
           "MbyNSparsity", "deserialize_schedule", "last_update_step"]

_sched = lazy("sparsity.keras")
# Our two schedules subclass tfmot's `PruningSchedule`, so they live in
# `tfmot_schedules` and are imported (with tfmot) on first use.
_LAZY = ("GlobalSparsity", "MbyNSparsity")


def __getattr__(name):
  if name in _LAZY:
    module = importlib.import_module("tf_compress.pruning.tfmot_schedules")
    return getattr(module, name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _to_steps(config, field, epochs, steps, steps_per_epoch):
  if steps is not None:
    return int(steps)
  if epochs is None:
    return None
  if epochs == 0:
    return 0
  if steps_per_epoch is None:
    raise UserInputError(
        f"PruningConfig.{field}={epochs} is in epochs, so steps_per_epoch is "
        "needed to convert it to steps: pass steps_per_epoch="
        "ceil(num_train_samples / batch_size), or give "
        f"{field.replace('epoch', 'step')} instead")
  return int(round(epochs * steps_per_epoch))


def resolve_steps(config, steps_per_epoch=None):
  """Converts the config's begin and end to optimizer steps.

  The end is rounded down to the last step at which a mask update happens
  (begin + k * frequency), so that the final target is really applied.

  Args:
    config: a `PruningConfig`.
    steps_per_epoch: training steps per epoch; needed only when begin or
      end is given in epochs.

  Returns:
    `(begin_step, end_step)`; `end_step` is -1 for a constant schedule
    without an end.

  Raises:
    UserInputError: when steps_per_epoch is missing or not a positive
      integer, or the end falls before the begin (or less than one
      `frequency` after it, for a polynomial schedule or a begin at 0).
  """
  if not isinstance(config, PruningConfig):
    raise UserInputError(
        f"expected a PruningConfig, got {type(config).__name__}")
  if steps_per_epoch is not None:
    if (isinstance(steps_per_epoch, bool) or
        int(steps_per_epoch) != steps_per_epoch or steps_per_epoch < 1):
      raise UserInputError(
          f"steps_per_epoch must be an integer >= 1, got {steps_per_epoch!r}")
    steps_per_epoch = int(steps_per_epoch)
  begin = _to_steps(config, "begin_epoch", config.begin_epoch,
                    config.begin_step, steps_per_epoch)
  end = _to_steps(config, "end_epoch", config.end_epoch, config.end_step,
                  steps_per_epoch)
  if end is None:
    return begin, -1
  if end < begin:
    raise UserInputError(
        f"pruning ends at step {end}, before it begins at step {begin}: "
        "move PruningConfig's end after its begin")
  freq = config.frequency
  # Training steps count from 1, so a window [0, end] with end < frequency
  # holds no update at all.
  if end - begin < freq and (config.schedule == "polynomial" or begin == 0):
    raise UserInputError(
        f"the {config.schedule} schedule runs from step {begin} to {end}, "
        f"less than one update interval (frequency={freq}), so the masks "
        "would never be updated as planned; lower PruningConfig.frequency or "
        "move the end later")
  return begin, begin + (end - begin) // freq * freq


def make_pruning_schedule(config, steps_per_epoch=None):
  """Builds tfmot's schedule for `config`, with begin/end/frequency in steps.

  Args:
    config: a `PruningConfig`.
    steps_per_epoch: training steps per epoch, for begin/end in epochs.

  Returns:
    `tfmot.sparsity.keras.ConstantSparsity` or `PolynomialDecay`.

  Raises:
    UserInputError: see `resolve_steps`.
  """
  begin, end = resolve_steps(config, steps_per_epoch)
  if config.schedule == "polynomial":
    return _sched.PolynomialDecay(
        initial_sparsity=float(config.initial_sparsity),
        final_sparsity=float(config.target_sparsity), begin_step=begin,
        end_step=end, power=config.power, frequency=config.frequency)
  return _sched.ConstantSparsity(float(config.target_sparsity), begin,
                                 end_step=end, frequency=config.frequency)


def deserialize_schedule(config):
  """Rebuilds a schedule from `{"class_name": ..., "config": ...}`.

  Knows tfmot's ConstantSparsity and PolynomialDecay, and every schedule
  registered with `tf_compress.register`.
  """
  if isinstance(config, _sched.PruningSchedule):
    return config
  __getattr__("GlobalSparsity")  # registers our schedules
  return keras.utils.deserialize_keras_object(
      config, custom_objects={"ConstantSparsity": _sched.ConstantSparsity,
                              "PolynomialDecay": _sched.PolynomialDecay},
      printable_module_name="pruning schedule")


def last_update_step(schedule, after, upto):
  """The last step in `(after, upto]` at which `schedule` updates masks.

  Args:
    schedule: a tfmot schedule with `begin_step`, `end_step`, `frequency`.
    after: exclusive lower bound (the step already handled).
    upto: inclusive upper bound (the current step).

  Returns:
    That step as an int, or None when no update falls in the interval.
  """
  begin, end, freq = schedule.begin_step, schedule.end_step, schedule.frequency
  high = upto if end < 0 else min(upto, end)
  if high < begin:
    return None
  step = begin + (high - begin) // freq * freq
  return step if step > after else None
