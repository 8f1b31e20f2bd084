"""The examples run as a user would run them: `python examples/x.py ARGS`.

Importing TensorFlow costs seconds of CPU per Python, so one fresh Python
(started once per module, away from this process's split CPU and imports)
runs every example in turn: each as `__main__` through `runpy.run_path`,
with its own `sys.argv`, after Keras' global state (layer names) is reset.
Its exit status is 0 when `main` returns, the `SystemExit` code when it
exits, and 1 (with the traceback on stderr) when it raises. Each test then
checks one example's output; `test_<script>` checks examples/<script>.py,
and only the selected tests' examples run.
"""

import json
import re
import subprocess
import sys

import pytest

# Runs examples one after the other: argv[1] a JSON {name: [script, args]},
# argv[2] where the JSON {name: [exit status, stdout, stderr]} goes.
_DRIVER = """
import contextlib, io, json, runpy, sys, traceback
import keras
from tf_compress import keras as tf_keras
cases, results_path = json.loads(sys.argv[1]), sys.argv[2]
results = {}
for name, (script, args) in cases.items():
  keras.utils.clear_session()
  tf_keras.backend.clear_session()
  out, err = io.StringIO(), io.StringIO()
  sys.argv = [script] + args
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
      runpy.run_path(script, run_name="__main__")
      code = 0
    except SystemExit as exit_:
      code = exit_.code if isinstance(exit_.code, int) else int(
          exit_.code is not None)
    except BaseException:  # pylint: disable=broad-except
      traceback.print_exc()
      code = 1
  results[name] = [code, out.getvalue(), err.getvalue()]
with open(results_path, "w", encoding="utf-8") as f:
  json.dump(results, f)
"""


# {examples/ script: its arguments}; `{out}` is the example's own directory.
_ARGS = {
    "train_baseline.py": ["--epochs=2"],
    "analyze_dataset.py": [],
    "qat_to_int8_tflite.py": ["--epochs=2", "--qat_epochs=1"],
    "prune_cluster_qat.py": ["--epochs=2", "--fine_tune_epochs=1"],
    "distill_pruned_student.py": ["--epochs=1", "--teacher_epochs=1",
                                  "--sparsity=0.5"],
    "export_tflite.py": ["--epochs=2", "--output_dir={out}"],
    "prune_with_callback.py": ["--epochs=2", "--scope=global"],
    "slice_filters.py": ["--epochs=1", "--finetune_epochs=1"],
    "adversarial_training.py": ["--epochs=1", "--warmup_epochs=1",
                                "--steps=2", "--eval_steps=2", "--tflite"],
    "benchmark_tflite.py": ["--epochs=0", "--num_threads=1",
                            "--num_runs=20", "--output_dir={out}"],
    # The final retraining is skipped (test_tune_cli.py covers it).
    "tune_compression.py": ["--trials=1", "--cv_folds=0", "--model=mlp",
                            "--width=0.5", "--epochs=2",
                            "--finetune_epochs=1", "--max_accuracy_drop=1.0",
                            "--skip_final", "--output_dir={out}"],
}


@pytest.fixture(scope="module")
def runs(request, repo_root, tmp_path_factory):
  """{script: (exit status, stdout, stderr, output dir)} of the examples.

  Runs the examples of the selected `test_<script>` tests of this module.
  """
  selected = {item.name[len("test_"):] + ".py"
              for item in request.session.items if item.path == request.path}
  tmp = tmp_path_factory.mktemp("examples")
  cases = {}
  for script, args in _ARGS.items():
    if script in selected:
      out = tmp / script[:-len(".py")]
      out.mkdir()
      cases[script] = [str(repo_root / "examples" / script),
                       [a.format(out=out) for a in args]]
  results_path = tmp / "results.json"
  done = subprocess.run(
      [sys.executable, "-c", _DRIVER, json.dumps(cases), str(results_path)],
      cwd=repo_root, capture_output=True, text=True, timeout=1800,
      check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  results = json.loads(results_path.read_text())
  assert set(results) == set(cases)
  return {script: tuple(result) + (tmp / script[:-len(".py")],)
          for script, result in results.items()}


def _stdout(runs, name):
  """The example's stdout, after checking that it exited with status 0."""
  code, stdout, stderr, _ = runs[name]
  assert code == 0, stderr[-3000:]
  return stdout


def test_train_baseline(runs):
  out = _stdout(runs, "train_baseline.py")
  assert "test top1=" in out
  top1 = float(out.split("test top1=")[1].split()[0])
  assert top1 > 0.8


def test_analyze_dataset(runs):
  assert "imbalance_ratio" in _stdout(runs, "analyze_dataset.py")


@pytest.mark.slow
def test_qat_to_int8_tflite(runs):
  out = _stdout(runs, "qat_to_int8_tflite.py")
  assert "kernels=int8" in out
  qat_top1 = float(out.split("qat_int8 top1=")[1].split()[0])
  assert qat_top1 > 0.8


@pytest.mark.slow
def test_prune_cluster_qat(runs):
  out = _stdout(runs, "prune_cluster_qat.py")
  zeros_kept = float(out.split("zeros kept=")[1].split()[0])
  max_values = int(out.split("max int8 values per channel=")[1].split()[0])
  agreement = float(out.split("agreement=")[1].split()[0])
  assert zeros_kept >= 0.99
  assert max_values <= 8
  assert agreement >= 0.95


@pytest.mark.slow
def test_distill_pruned_student(runs):
  out = _stdout(runs, "distill_pruned_student.py")
  lines = dict(line.split(" top1=") for line in out.splitlines()
               if " top1=" in line)
  assert set(lines) == {"teacher", "scratch student", "distilled student"}
  student_top1, sparsity = lines["distilled student"].split(" sparsity=")
  assert float(sparsity) == pytest.approx(0.5, abs=1e-3)
  assert float(student_top1) > 0.3
  assert "history sparsity=0.5000" in out


@pytest.mark.slow
def test_export_tflite(runs):
  out = _stdout(runs, "export_tflite.py")
  lines = out.splitlines()
  header = next(i for i, line in enumerate(lines) if line.startswith("mode"))
  rows = {line.split()[0]: line.split()
          for line in lines[header + 1:header + 3]}
  assert sorted(rows) == ["float32", "int8"]
  assert rows["float32"][3] == "float32" and rows["int8"][3] == "int8"
  assert float(rows["float32"][6]) == 1.0  # agreement
  assert float(rows["int8"][6]) >= 0.95
  ratio = float(out.split("int8 vs float32: ")[1].split("x")[0])
  assert ratio >= 3.5
  assert sorted(p.name for p in runs["export_tflite.py"][3].iterdir()) == [
      "cnn_float32.tflite", "cnn_int8.tflite"]


def test_prune_with_callback(runs):
  out = _stdout(runs, "prune_with_callback.py")
  final = out.split("final sparsity=")[1].split()
  assert float(final[0]) == pytest.approx(0.8, abs=0.01)
  assert float(out.split("test accuracy=")[1].split()[0]) > 0.7
  assert "total" in out


@pytest.mark.slow
def test_slice_filters(runs):
  out = _stdout(runs, "slice_filters.py")
  assert "params before=93962 after=23946" in out
  assert "macs before=756992 after=194176 (3.90x)" in out
  assert "conv2          64->32       663552      165888" in out
  assert "left whole: logits" in out
  assert float(out.split("finetuned=")[1].split()[0]) > 0.3


@pytest.mark.slow
def test_adversarial_training(runs):
  out = _stdout(runs, "adversarial_training.py")
  reports = {}
  for line in out.splitlines():
    name, sep, rest = line.partition(": ")
    if sep and name in ("baseline", "adversarial", "adversarial tflite"):
      reports[name] = dict(kv.split("=") for kv in rest.split())
  assert set(reports) == {"baseline", "adversarial", "adversarial tflite"}
  for values in reports.values():
    assert {"clean", "fgsm@0.1", "pgd@0.1", "fgsm@0.2", "pgd@0.2"} <= set(
        values)
    assert all(0.0 <= float(v) <= 1.0 for v in values.values())
  assert float(reports["adversarial tflite"]["agreement"]) > 0.98
  assert float(reports["adversarial"]["clean"]) > 0.5


def test_benchmark_tflite(runs):
  out = _stdout(runs, "benchmark_tflite.py")
  assert out.count("Model: ") == 2
  assert "cnn_float32.tflite" in out and "cnn_int8.tflite" in out
  assert "1 thread(s): int8 p50" in out
  ratio = float(out.split("int8 file ")[1].split("x")[0])
  assert ratio > 3.0  # int8 weights: about 3.6x smaller
  assert sorted(p.name for p in runs["benchmark_tflite.py"][3].iterdir()) == [
      "cnn_float32.tflite", "cnn_int8.tflite"]


def test_tune_compression(runs):
  out = _stdout(runs, "tune_compression.py")
  output_dir = runs["tune_compression.py"][3]
  assert re.search(r"^trials: 1, hypervolume of the front: \d", out, re.M)
  summary = json.loads((output_dir / "tuning.json").read_text())
  assert summary["num_trials"] == 1 and summary["pareto"] == [0]
  for trial in summary["trials"]:
    assert set(trial["std"]) == {"accuracy", "gzip_bytes"}
  best = summary["best"]["number"]
  assert f"best: trial {best}; reproduce with" in out
  assert "--combine" in (output_dir / "best.flags").read_text()
  assert summary["final"] == []
  assert (output_dir / "pareto.png").is_file()
