"""Distribution strategies: logical CPU devices, mirrored, multi-worker.

`multi_worker` is `tf.distribute.MultiWorkerMirroredStrategy` over the
cluster that the `TF_CONFIG` environment variable describes, as TensorFlow
users expect. Every worker runs the same program; only the chief keeps what
it writes (`chief_output_dir`), the pattern TensorFlow documents.
`local_cluster` gives the `TF_CONFIG` of N workers on this machine (what
`python -m tf_compress.launch` starts). Both engines train under it: for
Keras 3 models, creating the strategy installs two fixes to Keras 3.15's
trainer (`_keras3_multi_worker`).
"""

import contextlib
import json
import os
import shutil
import socket
import tempfile

from tf_compress import _keras3_multi_worker
from tf_compress._keras import tf
from tf_compress.errors import UserInputError

__all__ = ["configure_logical_cpus", "make_strategy", "STRATEGIES",
           "TF_CONFIG", "cluster_task", "is_chief", "chief_output_dir",
           "local_cluster", "free_ports"]

STRATEGIES = ("default", "mirrored", "multi_worker")
TF_CONFIG = "TF_CONFIG"
# MultiWorkerMirroredStrategy configures the process's collective ops, which
# can happen once, before any op runs: one strategy per process.
_MULTI_WORKER = []
# Worker directories entered and not yet removed (nested runs reuse them).
_WORKER_DIRS = []


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


def cluster_task(environ=None):
  """This process's place in the `TF_CONFIG` cluster.

  Args:
    environ: the environment to read; default `os.environ`.

  Returns:
    `(task_type, task_id, cluster)` (cluster: `{job: [address, ...]}`), or
    None when `TF_CONFIG` is unset or empty.

  Raises:
    UserInputError: `TF_CONFIG` is not JSON, or its task is not in its
      cluster.
  """
  text = (os.environ if environ is None else environ).get(TF_CONFIG, "")
  if not text.strip():
    return None
  try:
    spec = json.loads(text)
    cluster, task = spec["cluster"], spec.get("task", {})
    task_type, task_id = task["type"], int(task.get("index", 0))
    size = len(cluster[task_type])
  except (ValueError, TypeError, KeyError) as exc:
    raise UserInputError(
        f"{TF_CONFIG} must be JSON like {{\"cluster\": {{\"worker\": "
        "[\"host:port\", ...]}, \"task\": {\"type\": \"worker\", \"index\": "
        f"0}}}}, with its task in its cluster; got {text!r} "
        f"({type(exc).__name__}: {exc})") from None
  if not 0 <= task_id < size:
    raise UserInputError(
        f"{TF_CONFIG} task index {task_id} is outside its cluster's "
        f"{size} {task_type!r} task(s)")
  return task_type, task_id, cluster


def is_chief(environ=None):
  """True unless `TF_CONFIG` makes this process a non-chief worker.

  The chief is the `chief` task when the cluster has one, otherwise worker
  0; a process without `TF_CONFIG` is its own chief.
  """
  task = cluster_task(environ)
  if task is None:
    return True
  task_type, task_id, cluster = task
  if "chief" in cluster:
    return task_type == "chief"
  return task_type == "worker" and task_id == 0


@contextlib.contextmanager
def chief_output_dir(path, environ=None):
  """Where this worker writes: `path` on the chief, else a temporary dir.

  A non-chief worker runs the same program as the chief (its collective
  ops must match) but its files are thrown away: it writes into a new
  temporary directory, removed on exit, even on error. Inside one, nested
  calls yield their `path` unchanged.

  Args:
    path: the directory the chief writes to.
    environ: the environment to read `TF_CONFIG` from; default `os.environ`.

  Yields:
    The directory to write to.
  """
  if is_chief(environ) or any(_is_within(path, d) for d in _WORKER_DIRS):
    yield path
    return
  task_type, task_id, _ = cluster_task(environ)
  temp = tempfile.mkdtemp(prefix=f"tf_compress_{task_type}{task_id}_")
  _WORKER_DIRS.append(temp)
  try:
    yield temp
  finally:
    _WORKER_DIRS.remove(temp)
    shutil.rmtree(temp, ignore_errors=True)


def _is_within(path, directory):
  path, directory = os.path.abspath(path), os.path.abspath(directory)
  return os.path.commonpath([path, directory]) == directory


def _multi_worker_strategy():
  if _MULTI_WORKER:
    return _MULTI_WORKER[0]
  if cluster_task() is None:
    raise UserInputError(
        f"--strategy=multi_worker reads the cluster from the {TF_CONFIG} "
        "environment variable, which is not set: start the workers with "
        "`python -m tf_compress.launch --num_workers=N -- <train flags>`, "
        f"or set {TF_CONFIG} on each machine")
  try:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
  except (RuntimeError, ValueError) as exc:
    raise UserInputError(
        f"cannot start MultiWorkerMirroredStrategy ({exc}): it must be "
        "created before any TensorFlow op runs in the process") from None
  # Keras 3's fit needs two fixes under this strategy (tf_keras does not).
  _keras3_multi_worker.install()
  _MULTI_WORKER.append(strategy)
  return strategy


def make_strategy(name="default", num_cpu_devices=2):
  """Returns a `tf.distribute.Strategy` by name.

  Args:
    name: `default` (no distribution), `mirrored` (data parallel over the
      logical CPU devices, or over GPUs when present) or `multi_worker`
      (`MultiWorkerMirroredStrategy` over the `TF_CONFIG` cluster; created
      once per process, before any TensorFlow op runs, and returned again
      by later calls).
    num_cpu_devices: logical CPU devices to mirror over when no GPU exists.

  Raises:
    UserInputError: for an unknown name; for `multi_worker` without
      `TF_CONFIG`, or after TensorFlow has run ops.
  """
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "multi_worker":
    return _multi_worker_strategy()
  if name == "mirrored":
    # Physical devices first: listing logical ones would fix the CPU split.
    if tf.config.list_physical_devices("GPU"):
      return tf.distribute.MirroredStrategy(
          [d.name for d in tf.config.list_logical_devices("GPU")])
    devices = configure_logical_cpus(num_cpu_devices)[:num_cpu_devices]
    # Collective all-reduce on logical CPUs shares instance keys between
    # strategies of one process, and one aborted collective poisons the rest;
    # reducing through one device avoids collectives and costs little here.
    return tf.distribute.MirroredStrategy(
        devices, cross_device_ops=tf.distribute.ReductionToOneDevice())
  raise UserInputError(f"unknown strategy {name!r}: expected one of "
                       f"{', '.join(STRATEGIES)}")


def free_ports(count, host="localhost"):
  """`count` distinct TCP ports free on `host` now (the OS picks them)."""
  sockets = []
  try:
    for _ in range(count):
      sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
      sock.bind((host, 0))
      sockets.append(sock)
    return [s.getsockname()[1] for s in sockets]
  finally:
    for sock in sockets:
      sock.close()


def local_cluster(num_workers, ports=None, host="localhost"):
  """The `TF_CONFIG` values of `num_workers` workers on this machine.

  Args:
    num_workers: how many workers (>= 1); worker 0 is the chief.
    ports: one port per worker; default `free_ports(num_workers)`.
    host: the workers' host name.

  Returns:
    One JSON string per worker, in task order.

  Raises:
    UserInputError: fewer than 1 worker, or not one port per worker.
  """
  if isinstance(num_workers, bool) or not isinstance(
      num_workers, int) or num_workers < 1:
    raise UserInputError(f"the number of workers must be an integer >= 1, "
                         f"got {num_workers!r}")
  ports = free_ports(num_workers, host) if ports is None else list(ports)
  if len(ports) != num_workers or len(set(ports)) != num_workers:
    raise UserInputError(f"give {num_workers} distinct ports, got {ports}")
  cluster = {"worker": [f"{host}:{port}" for port in ports]}
  return [json.dumps({"cluster": cluster,
                      "task": {"type": "worker", "index": index}})
          for index in range(num_workers)]
