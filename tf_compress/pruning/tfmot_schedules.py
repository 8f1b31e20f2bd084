"""Our two tfmot pruning schedules (the tfmot engine imports this lazily).

* `GlobalSparsity` wraps a tfmot schedule for `scope="global"`.
* `MbyNSparsity` marks `m_by_n` layers.

See `schedules` for what they do; they subclass tfmot's `PruningSchedule`,
so importing this module imports tfmot.
"""

from tf_compress._keras import keras, register, tf
from tf_compress._tfmot import tfmot
from tf_compress.errors import UserInputError
from tf_compress.pruning.schedules import deserialize_schedule

__all__ = ["GlobalSparsity", "MbyNSparsity"]

_sched = tfmot.sparsity.keras


@register
class GlobalSparsity(_sched.PruningSchedule):
  """Marks wrappers pruned with one threshold across layers (global scope).

  It follows `schedule` for the sparsity target but never lets tfmot update
  a layer's mask on its own: `PruningCallback` does the update for all
  layers at once.

  Args:
    schedule: a tfmot `ConstantSparsity` or `PolynomialDecay` (or its
      serialized dict).

  Example:
    >>> inner = tfmot.sparsity.keras.ConstantSparsity(0.8, 0, frequency=10)
    >>> wrapped = prune_low_magnitude(layer, pruning_schedule=
    ...                               GlobalSparsity(inner))
  """

  def __init__(self, schedule):
    schedule = deserialize_schedule(schedule)
    if isinstance(schedule, (GlobalSparsity, MbyNSparsity)):
      raise UserInputError(
          "GlobalSparsity needs a tfmot ConstantSparsity or PolynomialDecay, "
          f"got {type(schedule).__name__}")
    self.schedule = schedule

  @property
  def begin_step(self):
    return self.schedule.begin_step

  @property
  def end_step(self):
    return self.schedule.end_step

  @property
  def frequency(self):
    return self.schedule.frequency

  def __call__(self, step):
    return tf.constant(False), self.schedule(step)[1]

  def sparsity_at(self, step):
    """The target sparsity at `step`, as a Python float."""
    return float(self.schedule(tf.constant(step, tf.int64))[1])

  def get_config(self):
    return {"class_name": keras.utils.get_registered_name(type(self)),
            "config": {"schedule": self.schedule.get_config()}}


@register
class MbyNSparsity(_sched.PruningSchedule):
  """Schedule of M:N wrappers: keeps the masks tfmot set at step 1.

  Args:
    m: zeros in every group.
    n: group size.

  Example:
    >>> prune_low_magnitude(layer, pruning_schedule=MbyNSparsity(2, 4),
    ...                     sparsity_m_by_n=(2, 4))
  """

  def __init__(self, m, n):
    if not (isinstance(m, int) and isinstance(n, int) and 1 <= m < n):
      raise UserInputError(
          f"MbyNSparsity needs integers 1 <= m < n, got m={m!r}, n={n!r}")
    self.m = m
    self.n = n

  def __call__(self, step):
    return tf.constant(False), tf.constant(self.m / self.n, tf.float32)

  def get_config(self):
    return {"class_name": keras.utils.get_registered_name(type(self)),
            "config": {"m": self.m, "n": self.n}}
