"""The fuzzing soak (benchmarks/fuzz.py) in its 300-file version.

300 seeded mutants of a float32 and an int8 .tflite file and a .keras file go
through verify_tflite, benchmark_model, model_summary, load_model and the
summary and benchmark commands, in 2 worker processes: no call may crash
the worker or hang, and every refusal must be a clear error. One crash is
injected (worker 0 kills itself with SIGSEGV at its first call, before its
imports, so it costs no time) to check that the driver counts it, names the
file and goes on with a fresh worker.
"""

import importlib.util
import io
import os

import pytest

FILES = 300


@pytest.fixture(scope="module")
def fuzz(repo_root):
  spec = importlib.util.spec_from_file_location(
      "fuzz", repo_root / "benchmarks" / "fuzz.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope="module")
def soak(fuzz, tmp_path_factory):
  stream = io.StringIO()
  workdir = str(tmp_path_factory.mktemp("fuzz"))
  # Worker 0's first call (file 0) crashes: a second worker goes on.
  result = fuzz.run(FILES, seed=0, workers=2, workdir=workdir,
                    stream=stream, crash_at=(0, fuzz.TARGETS[0]))
  return result, stream.getvalue(), workdir


def test_mutants_are_reproducible_and_differ_by_seed(fuzz, soak):
  workdir = soak[2]
  seeds = fuzz.read_seeds(os.path.join(workdir, "seeds"))
  with open(os.path.join(workdir, "files", "00042.keras"
                         if os.path.exists(os.path.join(
                             workdir, "files", "00042.keras"))
                         else "00042.tflite"), "rb") as handle:
    assert fuzz.mutant(0, 42, seeds)[2] == handle.read()
  for i in range(40):
    assert fuzz.mutant(0, i, seeds) == fuzz.mutant(0, i, seeds)
  assert sum(fuzz.mutant(0, i, seeds) != fuzz.mutant(1, i, seeds)
             for i in range(40)) >= 38


def test_no_crash_hang_or_unclear_error(soak):
  result = soak[0]
  assert result["files"] == FILES
  for target, counts in result["counts"].items():
    assert sum(counts.values()) == FILES, target
    assert counts["other"] == 0, (target, result["examples"])
    assert counts["hang"] == 0, target
    assert counts["crash"] == (target == "verify_tflite"), target
    assert counts["clear"] > 0 and counts["accepted"] > 0, (target, counts)


def test_the_injected_crash_is_caught_and_attributed(soak):
  result = soak[0]
  (crash,) = [e for e in result["examples"] if e["outcome"] == "crash"]
  assert crash["file"] == 0 and crash["target"] == "verify_tflite"
  assert crash["detail"] == "signal SIGSEGV"


def test_every_mutator_family_is_used(soak):
  result = soak[0]
  families = {m.split(":")[0] for m in result["mutators"]}
  assert families == {"truncate", "flip", "splice", "random", "zip"}
  assert sum(result["mutators"].values()) == FILES
  assert len([m for m in result["mutators"] if m.startswith("zip:")]) >= 6


def test_table_lists_every_target_and_the_throughput(fuzz, soak):
  result, text, _ = soak
  lines = text.splitlines()
  assert lines[0].split()[:3] == ["target", "files", "accepted"]
  for target in fuzz.TARGETS:
    row = next(line for line in lines if line.startswith(target + " "))
    assert row.split()[1] == str(FILES)
  assert f"{result['files_per_s']:.2f} files/s" in text
