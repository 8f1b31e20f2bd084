r"""Command line: multi-worker training on this machine.

    python -m tf_compress.launch --num_workers=2 -- --keras=2 \
        --prune_sparsity=0.8 --output_dir=/tmp/run

Starts --num_workers processes of `python -m tf_compress.train` with the
flags after `--` and `--strategy=multi_worker`, each with the `TF_CONFIG`
of one worker of a cluster on localhost (free ports picked by the OS).
Their output is streamed line by line, each line prefixed with
`[worker N]`. Worker 0 is the chief: it alone writes --output_dir.

When a worker fails, the others are stopped (SIGTERM, then SIGKILL after
a grace period) and the launcher exits 1 with one `error:` line naming the
worker. Exit code 0 when every worker succeeds, 2 on bad input.
"""

import os
import signal
import subprocess
import sys
import threading
import time

from absl import flags

from tf_compress import distribute
from tf_compress.cli import common
from tf_compress.errors import UserInputError

__all__ = ["run", "worker_command", "define_flags", "main", "entry_point",
           "WORKER_FAILED_EXIT_CODE", "TRAIN_MODULE"]

FLAGS = flags.FLAGS
WORKER_FAILED_EXIT_CODE = 1
TRAIN_MODULE = "tf_compress.train"


def define_flags(flag_values=None):
  """Defines this tool's flags in `flag_values` (default `flags.FLAGS`)."""
  fv = flags.FLAGS if flag_values is None else flag_values
  flags.DEFINE_integer(
      "num_workers", 2, "Worker processes to start on this machine.",
      lower_bound=1, upper_bound=64, flag_values=fv)
  flags.DEFINE_string(
      "module", TRAIN_MODULE, "The Python module each worker runs "
      "(`python -m MODULE <flags after -->`); for tf_compress.train "
      "--strategy=multi_worker is added.", flag_values=fv)
  flags.DEFINE_float(
      "grace_seconds", 5.0, "After a worker fails: seconds the others get "
      "to exit on SIGTERM before SIGKILL (TensorFlow's preemption notifier "
      "catches SIGTERM).", lower_bound=0.0, flag_values=fv)
  return fv


def worker_command(module, args):
  """The command line every worker runs: `python -m module args`.

  For the train command, `--strategy=multi_worker` is added.

  Raises:
    UserInputError: the train flags ask for another strategy.
  """
  args = list(args)
  if module == TRAIN_MODULE:
    for arg in args:
      if arg.startswith("--strategy=") and arg != "--strategy=multi_worker":
        raise UserInputError(
            f"the launcher trains with --strategy=multi_worker; got {arg} "
            "after --: drop it, or run python -m tf_compress.train directly")
    args.append("--strategy=multi_worker")
  return [sys.executable, "-m", module] + args


def _stream(index, pipe, out, lock):
  """Copies `pipe` to `out` line by line, prefixed with the worker."""
  with pipe:
    for line in iter(pipe.readline, ""):
      with lock:
        out.write(f"[worker {index}] {line}")
        out.flush()


def _describe(code):
  if code < 0:
    try:
      return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
      return f"was killed by signal {-code}"
  return f"exited with code {code}"


def _stop(procs, grace_seconds):
  """SIGTERM every running worker's process group, then SIGKILL."""
  running = [p for p in procs if p.poll() is None]
  for sig in (signal.SIGTERM, signal.SIGKILL):
    for proc in running:
      try:
        os.killpg(proc.pid, sig)
      except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and any(
        p.poll() is None for p in running):
      time.sleep(0.05)
    running = [p for p in running if p.poll() is None]
    if not running:
      return


def run(command, num_workers=2, stream=None, grace_seconds=5.0, env=None,
        poll_seconds=0.05):
  """Runs `num_workers` copies of `command` as one local cluster.

  Each copy gets the `TF_CONFIG` of one worker (`distribute.local_cluster`)
  and runs in its own process group; its output goes to `stream`, prefixed
  with `[worker N] `.

  Args:
    command: the argv every worker runs.
    num_workers: how many workers (>= 1).
    stream: where the workers' lines and the failure line go; default
      `sys.stdout` (the failure line: `sys.stderr`).
    grace_seconds: after a failure, how long the other workers get to
      exit on SIGTERM before SIGKILL.
    env: the workers' base environment; default `os.environ`.
    poll_seconds: how often the workers are checked.

  Returns:
    0 when every worker exits 0, else `WORKER_FAILED_EXIT_CODE` (1), after
    an `error: worker N ...` line and stopping the other workers.

  Raises:
    UserInputError: fewer than 1 worker, or a command that cannot start.
  """
  out = sys.stdout if stream is None else stream
  err = sys.stderr if stream is None else stream
  base = dict(os.environ if env is None else env)
  # Workers' lines appear as they are printed, not when a buffer fills.
  base["PYTHONUNBUFFERED"] = "1"
  lock = threading.Lock()
  procs, threads = [], []
  try:
    for index, tf_config in enumerate(distribute.local_cluster(num_workers)):
      worker_env = dict(base, **{distribute.TF_CONFIG: tf_config})
      try:
        proc = subprocess.Popen(
            command, env=worker_env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
            errors="replace", start_new_session=True)
      except OSError as exc:
        raise UserInputError(f"cannot start worker {index} ({command[0]}): "
                             f"{exc.strerror or exc}") from None
      procs.append(proc)
      thread = threading.Thread(target=_stream,
                                args=(index, proc.stdout, out, lock),
                                daemon=True)
      thread.start()
      threads.append(thread)
    failed = None
    while failed is None and any(p.poll() is None for p in procs):
      failed = next((i for i, p in enumerate(procs)
                     if p.poll() not in (None, 0)), None)
      time.sleep(poll_seconds)
    if failed is None:
      failed = next((i for i, p in enumerate(procs) if p.returncode), None)
  finally:
    # Also on KeyboardInterrupt: no worker outlives the launcher.
    _stop(procs, grace_seconds)
    for thread in threads:
      thread.join(timeout=5)
  if failed is None:
    return 0
  with lock:
    print(f"error: worker {failed} {_describe(procs[failed].returncode)}; "
          f"stopped the other workers of {num_workers}", file=err)
    err.flush()
  return WORKER_FAILED_EXIT_CODE


def main(argv, flag_values=None):
  """The absl entry point: the worker flags follow `--`."""
  fv = FLAGS if flag_values is None else flag_values
  args = argv[1:]
  if not args:
    return common.report_user_error(UserInputError(
        "give the workers' flags after --: python -m tf_compress.launch "
        "--num_workers=2 -- --keras=2 --output_dir=/tmp/run"))
  try:
    command = worker_command(fv.module, args)
    return run(command, num_workers=fv.num_workers,
               grace_seconds=fv.grace_seconds)
  except UserInputError as exc:
    return common.report_user_error(exc)


def entry_point():
  """Console-script entry point."""
  common.run_command(main, define_flags)


if __name__ == "__main__":
  entry_point()
