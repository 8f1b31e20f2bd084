"""Distribution strategies, including several logical devices on one CPU."""

from tf_compress._keras import tf
from tf_compress.errors import UserInputError

__all__ = ["configure_logical_cpus", "make_strategy", "STRATEGIES"]

STRATEGIES = ("default", "mirrored")


def configure_logical_cpus(count):
  """Splits the physical CPU into `count` logical devices.

  This must run before TensorFlow executes any op; afterwards the device
  list is fixed. Calling it again with a count the process already has is
  a no-op.

  Args:
    count: number of logical CPU devices wanted (>= 1).

  Returns:
    The names of the logical CPU devices.

  Raises:
    UserInputError: when the devices were already initialised with fewer.
  """
  if count < 1:
    raise UserInputError(f"the number of CPU devices must be >= 1, got "
                         f"{count}")
  cpus = tf.config.list_physical_devices("CPU")
  current = tf.config.get_logical_device_configuration(cpus[0])
  if count > 1 and (current is None or len(current) < count):
    try:
      tf.config.set_logical_device_configuration(
          cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as exc:
      raise UserInputError(
          f"cannot split the CPU into {count} logical devices: TensorFlow "
          f"was already initialised ({exc}). Call configure_logical_cpus "
          "before any TensorFlow op runs") from None
  return [d.name for d in tf.config.list_logical_devices("CPU")]


def make_strategy(name="default", num_cpu_devices=2):
  """Returns a `tf.distribute.Strategy` by name.

  Args:
    name: `default` (no distribution) or `mirrored` (data parallel over the
      logical CPU devices, or over GPUs when present).
    num_cpu_devices: logical CPU devices to mirror over when no GPU exists.

  Raises:
    UserInputError: for an unknown name.
  """
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
      return tf.distribute.MirroredStrategy([d.name for d in gpus])
    devices = configure_logical_cpus(num_cpu_devices)[:num_cpu_devices]
    # Collective all-reduce on logical CPUs shares instance keys between
    # strategies of one process, and one aborted collective poisons the rest;
    # reducing through one device avoids collectives and costs little here.
    return tf.distribute.MirroredStrategy(
        devices, cross_device_ops=tf.distribute.ReductionToOneDevice())
  raise UserInputError(f"unknown strategy {name!r}: expected one of "
                       f"{', '.join(STRATEGIES)}")
