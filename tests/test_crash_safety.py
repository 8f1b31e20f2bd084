"""`python -m tf_compress.train` SIGKILLed at 20 seeded random moments.

One uninterrupted run gives the reference report and its wall time T. The
same command (same output directory each time, as a user re-runs it) is
then killed 20 times, at moments drawn from [0.02 T, T) with a fixed seed,
one in each twentieth of it.
After each kill every file in the output directory is whole (each
`.tflite` verifies on LiteRT, each `.json` parses, each `.keras` loads,
each `.npz`, `.png`, `.html` and `.md` is complete) or a hidden
`.partial-<pid>-` file of the atomic writer. A last, uninterrupted re-run
removes those and writes the reference's report.
"""

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

from ai_edge_litert.interpreter import Interpreter
import numpy as np
import pytest

import tf_compress
from tf_compress.io_utils import PARTIAL_PREFIX

KILLS = 20
SEED = 20261201
# A tiny run that still writes every kind of artifact: the .keras model,
# a verified int8 .tflite, the predictions, plots and reports.
ARGS = ["-m", "tf_compress.train", "--dataset=digits", "--model=mlp",
        "--width=0.25", "--epochs=1", "--export=int8", "--benchmark_runs=0",
        "--bootstrap_resamples=200", "--deterministic", "--seed=5",
        "--verbose=0"]
# The parts of report.json that a same-seed run reproduces exactly.
REPRODUCED = ("variants", "comparison", "history", "statistics")


def _command(output_dir):
  return [sys.executable] + ARGS + [f"--output_dir={output_dir}"]


def _env():
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def _run_to_end(output_dir, cwd):
  start = time.monotonic()
  done = subprocess.run(_command(output_dir), cwd=cwd, env=_env(),
                        capture_output=True, text=True, timeout=900,
                        check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  return time.monotonic() - start


def _whole(path):
  """Raises unless the artifact at `path` is complete and readable."""
  name = os.path.basename(path)
  if name.endswith(".tflite"):
    Interpreter(model_path=path).allocate_tensors()
  elif name.endswith(".json"):
    with open(path, encoding="utf-8") as f:
      json.load(f)
  elif name.endswith(".keras"):
    with zipfile.ZipFile(path) as archive:
      assert archive.testzip() is None, name
    tf_compress.load_model(path)
  elif name.endswith(".npz"):
    with np.load(path, allow_pickle=False) as arrays:
      for key in arrays.files:
        arrays[key]  # pylint: disable=pointless-statement
  elif name.endswith(".png"):
    with open(path, "rb") as f:
      data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[-12:-4] == (
        b"\x00\x00\x00\x00IEND"), name
  elif name.endswith(".html"):
    with open(path, encoding="utf-8") as f:
      assert f.read().rstrip().endswith("</html>"), name
  elif name.endswith(".md"):
    with open(path, encoding="utf-8") as f:
      assert f.read().strip(), name
  else:
    raise AssertionError(f"unexpected artifact {name}")


def _check_directory(output_dir):
  """Checks every file; returns (whole file names, partial file names)."""
  whole, partial = [], []
  for name in sorted(os.listdir(output_dir)):
    path = os.path.join(output_dir, name)
    assert os.path.isfile(path), f"{name} is not a file"
    if name.startswith(PARTIAL_PREFIX):
      partial.append(name)
      continue
    try:
      _whole(path)
    except Exception as exc:  # pylint: disable=broad-except
      raise AssertionError(f"{name} is not whole: {exc!r}") from exc
    whole.append(name)
  return whole, partial


@pytest.fixture(scope="module")
def reference(repo_root, tmp_path_factory):
  out = tmp_path_factory.mktemp("uninterrupted")
  seconds = _run_to_end(out, repo_root)
  with open(out / "report.json", encoding="utf-8") as f:
    return out, json.load(f), seconds


@pytest.fixture(scope="module")
def killed(reference, repo_root, tmp_path_factory):
  """The kill sequence: [(moment s, finished first, rewritten, partial)].

  `rewritten` names the whole files that attempt wrote (the directory also
  holds those of earlier attempts); `partial` the partial files present.
  """
  _, _, seconds = reference
  out = tmp_path_factory.mktemp("killed")
  # Stratified: one seeded moment in each twentieth of [0.02 T, T), in a
  # seeded order. Plain uniform draws can leave the last third of the run,
  # where the files are written, with a single kill.
  rng = np.random.default_rng(SEED)
  strata = (np.arange(KILLS) + rng.uniform(size=KILLS)) / KILLS
  moments = rng.permutation(0.02 + 0.98 * strata) * seconds
  log = []
  for moment in moments:
    started = time.time_ns()
    proc = subprocess.Popen(_command(out), cwd=repo_root, env=_env(),
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
      proc.wait(timeout=moment)
      finished = True
    except subprocess.TimeoutExpired:
      proc.send_signal(signal.SIGKILL)
      proc.wait()
      finished = False
    assert finished or proc.returncode == -signal.SIGKILL
    whole, partial = _check_directory(out)
    rewritten = [name for name in whole
                 if os.stat(out / name).st_mtime_ns >= started]
    log.append((float(moment), finished, rewritten, partial))
  return out, log


def test_every_file_is_whole_after_each_kill(killed, reference):
  _, log = killed
  _, report, seconds = reference
  assert len(log) == KILLS
  kills = [entry for entry in log if not entry[1]]
  # Most moments fall before the end (some runs may outpace the reference).
  assert len(kills) >= KILLS // 2, [(m, f) for m, f, _, _ in log]
  # The kills landed at different stages: some before anything was
  # written, some with the model and its export on disk.
  counts = [len(rewritten) for _, _, rewritten, _ in kills]
  print(f"{len(kills)} kills in a {seconds:.1f} s run; files rewritten "
        f"before each kill: {counts}; kills that left partial files: "
        f"{sum(bool(p) for _, _, _, p in kills)}")
  assert min(counts) == 0 and max(counts) >= 2, counts
  assert [v["name"] for v in report["variants"]] == ["baseline"]


def test_rerun_completes_with_the_same_report(killed, reference, repo_root):
  out, _ = killed
  _, expected, _ = reference
  _run_to_end(out, repo_root)
  whole, partial = _check_directory(out)
  assert partial == []  # the rerun removed what the killed writers left
  assert "report.json" in whole and "baseline_int8.tflite" in whole
  with open(out / "report.json", encoding="utf-8") as f:
    report = json.load(f)
  for key in REPRODUCED:
    assert report[key] == expected[key], key
