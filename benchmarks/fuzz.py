"""Fuzzing soak: mutated model files through the loaders, verifiers and CLIs.

  python benchmarks/fuzz.py [--files=10000] [--seed=0] [--workers=2]
      [--workdir=DIR] [--json=PATH] [--only=INDEX]

Three seed files are made at the start from tiny Keras 3 models: a float32
and an int8 `.tflite` and a `.keras` file. File i is a mutant of one seed
(benchmarks/fuzz_mutants.py), made from `(--seed, i)` alone, so any file can
be made again with `--only=i`: truncation at a random offset, 1-8 flipped
bits, a header spliced from another seed, random bytes, and for the
`.keras` zip, its members changed (config.json edited, corrupted, swapped
or pointed at a module outside Keras, the weights replaced, truncated or
flipped, metadata removed or edited, a member added or removed).

Every file goes through every target: `verify_tflite`, `benchmark_model`,
`model_summary`, `load_model`, and the `summary` and `benchmark` commands
(their `run_from_flags`, in-process). The targets run in worker processes,
children of this one, each writing a line before and after every call; a
worker killed by a signal or exiting abnormally is a crash of the calling
process, attributed to the call it had begun, and a fresh worker continues
after it (a worker resident in over 6 GiB is killed first, as the kernel's
OOM killer would). A call that makes no progress for --hang_s is a hang.

Outcomes per call: accepted (returned; a command exited 0), clear error
(`UserInputError`, which `ModelError` and `DataError` are; a command exited
2 with one `error:` line), other error (any other exception: a bug to fix)
and crash/hang. Not fuzzed: values that make a model legitimately huge (a
config.json edit sets sizes of at most 64), which exhaust memory by design.
"""

import argparse
import collections
import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# pylint: disable=g-import-not-at-top,wrong-import-position
from fuzz_mutants import INPUT_SHAPE
from fuzz_mutants import make_seeds
from fuzz_mutants import mutant
from fuzz_mutants import read_seeds
from fuzz_mutants import SEEDS
# pylint: enable=g-import-not-at-top,wrong-import-position

TARGETS = ("verify_tflite", "benchmark_model", "model_summary", "load_model",
           "summary_cmd", "benchmark_cmd")
OUTCOMES = ("accepted", "clear", "other", "crash", "hang")

# ---------------------------------------------------------------- worker


def _targets():
  """`({target name: function(path)}, UserInputError)`.

  Imports TensorFlow: called at a worker's first call, not before.
  """
  # pylint: disable=g-import-not-at-top
  from absl import flags
  import tf_compress as tfc
  from tf_compress import benchmark
  from tf_compress import export
  from tf_compress.cli import benchmark as benchmark_cli
  from tf_compress.cli import summary as summary_cli
  # pylint: enable=g-import-not-at-top
  x = np.random.default_rng(0).uniform(0, 1, (4,) + INPUT_SHAPE).astype(
      np.float32)
  summary_flags = summary_cli.define_flags(flags.FlagValues())
  summary_flags(["fuzz"])
  bench_flags = benchmark_cli.define_flags(flags.FlagValues())
  bench_flags(["fuzz", "--num_runs=1", "--warmup_runs=0", "--timeout_s=60"])

  def command(run):
    def call(path):
      out, err = io.StringIO(), io.StringIO()
      with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(path)
      errors = [l for l in err.getvalue().splitlines()
                if l.startswith("error: ")]
      if code == 2 and len(errors) == 1:
        raise tfc.UserInputError(errors[0])
      if code != 0:
        raise RuntimeError(f"exit status {code}, stderr {err.getvalue()!r}")
    return call

  return {
      "verify_tflite": lambda p: export.verify_tflite(p, x),
      "benchmark_model": lambda p: benchmark.benchmark_model(
          p, num_threads=(1,), warmup_runs=0, num_runs=1, timeout_s=60),
      "model_summary": tfc.analysis.model_summary,
      "load_model": tfc.load_model,
      "summary_cmd": command(
          lambda p: summary_cli.run_from_flags(p, summary_flags)),
      "benchmark_cmd": command(
          lambda p: benchmark_cli.run_from_flags([p], bench_flags)),
  }, tfc.UserInputError


def _where(exc):
  """The innermost tf_compress frame of a traceback, as file:line."""
  frames = [f for f in traceback.extract_tb(exc.__traceback__)
            if "tf_compress" in f.filename]
  frame = (frames or traceback.extract_tb(exc.__traceback__) or [None])[-1]
  return f"{os.path.basename(frame.filename)}:{frame.lineno}" if frame else ""


def worker_main(task_path):
  """Runs the task's calls in order, one start and one end line each."""
  with open(task_path, encoding="utf-8") as handle:
    task = json.load(handle)
  targets = user_error = None  # imported at the first call (see crash_at)
  crash_at = task.get("crash_at")
  pairs = [(i, t) for i, _ in task["files"] for t in TARGETS]
  paths = dict(task["files"])
  with open(task["results"], "a", encoding="utf-8") as log:
    for i, target in pairs[task["skip"]:task["skip"] + task["limit"]]:
      log.write(json.dumps({"start": [i, target]}) + "\n")
      log.flush()
      record = {"end": [i, target], "outcome": "accepted"}
      if [i, target] == crash_at:
        os.kill(os.getpid(), signal.SIGSEGV)  # the driver's self-test
      if targets is None:
        targets, user_error = _targets()
      began = time.monotonic()
      try:
        targets[target](paths[i])
      except user_error as exc:
        record["outcome"] = "clear" if str(exc).strip() else "other"
      except Exception as exc:  # pylint: disable=broad-except
        record.update(outcome="other", error=(
            f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]} "
            f"at {_where(exc)}"))
      record["s"] = round(time.monotonic() - began, 4)
      log.write(json.dumps(record) + "\n")
      log.flush()
  return 0

# ---------------------------------------------------------------- driver

MAX_WORKER_BYTES = 6 << 30


def _resident_bytes(pid):
  try:
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
      for line in handle:
        if line.startswith("VmRSS:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return 0


class _Slot:
  """Runs one worker after another over a share of the files."""

  def __init__(self, number, files, workdir, hang_s, recycle,
               crash_at=None):
    self.files, self.hang_s, self.recycle = files, hang_s, recycle
    self.crash_at = crash_at
    self.results = os.path.join(workdir, f"results_{number}.jsonl")
    self.task = os.path.join(workdir, f"task_{number}.json")
    self.log = os.path.join(workdir, f"worker_{number}.log")
    self.failure = self.memory_kill = None

  def _lines(self):
    with open(self.results, encoding="utf-8") as handle:
      return [json.loads(line) for line in handle if line.endswith("\n")]

  def _start(self, skip):
    with open(self.task, "w", encoding="utf-8") as handle:
      json.dump({"files": self.files, "results": self.results, "skip": skip,
                 "limit": self.recycle, "crash_at": self.crash_at}, handle)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    with open(self.log, "a", encoding="utf-8") as log:
      return subprocess.Popen(
          [sys.executable, os.path.abspath(__file__), "--worker", self.task],
          stdout=log, stderr=subprocess.STDOUT, env=env,
          start_new_session=True)

  def _wait(self, process):
    """The exit status; None after killing a worker that hangs."""
    self.memory_kill = False
    last, since = -1, time.monotonic()
    while process.poll() is None:
      size = os.path.getsize(self.results)
      if size != last:
        last, since = size, time.monotonic()
      hung = time.monotonic() - since > self.hang_s
      if hung or _resident_bytes(process.pid) > MAX_WORKER_BYTES:
        # Over the limit, the kernel's OOM killer would send SIGKILL too,
        # on a machine shared with others.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        self.memory_kill = not hung
        return None if hung else -signal.SIGKILL
      time.sleep(0.2)
    return process.returncode

  def run(self):
    total = len(self.files) * len(TARGETS)
    open(self.results, "w", encoding="utf-8").close()
    done = 0
    while done < total:
      code = self._wait(self._start(done))
      lines = self._lines()
      ends = sum("end" in line for line in lines)
      pending = lines[-1].get("start") if lines else None
      if code == 0 and ends > done:
        done = ends
        continue
      if pending is None or ends != len(lines) - ends - 1:
        self.failure = f"worker exited with status {code}; see {self.log}"
        return
      detail = ("no progress for %s s" % self.hang_s if code is None else
                f"signal {signal.Signals(-code).name}" if code < 0 else
                f"exit status {code}")
      if self.memory_kill:
        detail += f" (by the fuzzer: over {MAX_WORKER_BYTES >> 30} GiB)"
      outcome = "hang" if code is None else "crash"
      with open(self.results, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"end": pending, "outcome": outcome,
                                 "error": detail}) + "\n")
      done = ends + 1


def run(files=10000, seed=0, workers=2, workdir=None, hang_s=180.0,
        recycle=6000, only=None, stream=None, crash_at=None):
  """Makes the mutants, runs every target on them; returns the counts.

  `crash_at=(index, target)` makes the worker kill itself (SIGSEGV) at that
  call, to check that crashes are caught and attributed (a self-test; at a
  worker's first call, before its imports, it costs no time).

  Returns:
    A dict: `files`, `wall_s`, `files_per_s`, `mutators` (name -> files),
    `counts` (target -> outcome -> calls), `examples` (up to 20 other
    errors, crashes and hangs: file index, mutator, target, detail).
  """
  stream = sys.stdout if stream is None else stream
  start = time.monotonic()
  own = workdir is None
  workdir = tempfile.mkdtemp(prefix="tfc_fuzz_") if own else workdir
  try:
    seed_dir = os.path.join(workdir, "seeds")
    if not os.path.exists(os.path.join(seed_dir, SEEDS[-1])):
      make_seeds(seed_dir)
    seeds = read_seeds(seed_dir)
    file_dir = os.path.join(workdir, "files")
    os.makedirs(file_dir, exist_ok=True)
    indices = [only] if only is not None else range(files)
    made = {}
    for i in indices:
      base, mutator, data = mutant(seed, i, seeds)
      path = os.path.join(file_dir, f"{i:05d}{os.path.splitext(base)[1]}")
      with open(path, "wb") as handle:
        handle.write(data)
      made[i] = (path, mutator)
    fuzz_start = time.monotonic()
    slots = [_Slot(k, [(i, made[i][0]) for i in list(made)[k::workers]],
                   workdir, hang_s, recycle,
                   list(crash_at) if crash_at else None)
             for k in range(workers)]
    threads = [threading.Thread(target=s.run) for s in slots if s.files]
    for thread in threads:
      thread.start()
    for thread in threads:
      thread.join()
    failures = [s.failure for s in slots if s.failure]
    if failures:
      raise RuntimeError("; ".join(failures))
    counts = {t: collections.Counter() for t in TARGETS}
    examples = []
    for slot in slots:
      if not slot.files:
        continue
      for line in slot._lines():  # pylint: disable=protected-access
        if "end" not in line:
          continue
        i, target = line["end"]
        counts[target][line["outcome"]] += 1
        if line["outcome"] != "accepted" and "error" in line:
          examples.append({"file": i, "mutator": made[i][1],
                           "target": target, "outcome": line["outcome"],
                           "detail": line["error"]})
    fuzz_s = time.monotonic() - fuzz_start
    result = {
        "files": len(made), "seed": seed, "workers": workers,
        "wall_s": time.monotonic() - start, "fuzz_s": fuzz_s,
        "files_per_s": len(made) / fuzz_s,
        "mutators": dict(sorted(collections.Counter(
            m for _, m in made.values()).items())),
        "counts": {t: {o: counts[t][o] for o in OUTCOMES} for t in TARGETS},
        "examples": sorted(examples, key=lambda e: e["file"])[:20]}
  finally:
    if own:
      shutil.rmtree(workdir, ignore_errors=True)
  print(format_result(result), file=stream)
  return result


def format_result(result):
  """The table: per target, files and each outcome; then the throughput."""
  header = ("target", "files", "accepted", "clear errors", "other errors",
            "crashes", "hangs")
  rows = [header]
  for target, c in result["counts"].items():
    rows.append((target, str(sum(c.values())), str(c["accepted"]),
                 str(c["clear"]), str(c["other"]), str(c["crash"]),
                 str(c["hang"])))
  widths = [max(len(r[k]) for r in rows) for k in range(len(header))]
  lines = ["  ".join(cell.ljust(w) if k == 0 else cell.rjust(w)
                     for k, (cell, w) in enumerate(zip(row, widths)))
           for row in rows]
  lines.insert(1, "-" * len(lines[0]))
  lines.append("")
  lines.append(f"{result['files']} files (seed {result['seed']}), "
               f"{result['workers']} workers: {result['fuzz_s']:.1f} s, "
               f"{result['files_per_s']:.2f} files/s "
               f"({result['wall_s']:.1f} s with the seeds)")
  lines.append("mutators: " + ", ".join(
      f"{k} {v}" for k, v in result["mutators"].items()))
  for example in result["examples"]:
    lines.append("  file {file} ({mutator}) {target}: {outcome}: "
                 "{detail}".format(**example))
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--files", type=int, default=10000)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--workers", type=int, default=2)
  parser.add_argument("--workdir", default=None,
                      help="Keep the seeds, files and logs here.")
  parser.add_argument("--hang_s", type=float, default=180.0)
  parser.add_argument("--only", type=int, default=None,
                      help="Make and run file INDEX alone.")
  parser.add_argument("--json", default=None, help="Write the result here.")
  parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    sys.exit(worker_main(args.worker))
  result = run(args.files, args.seed, args.workers, args.workdir, args.hang_s,
               only=args.only)
  if args.json:
    partial = f"{args.json}.partial-{os.getpid()}"
    with open(partial, "w", encoding="utf-8") as handle:
      json.dump(result, handle, indent=2)
    os.replace(partial, args.json)
  bad = sum(c["crash"] + c["hang"] for c in result["counts"].values())
  sys.exit(1 if bad else 0)


if __name__ == "__main__":
  main()
