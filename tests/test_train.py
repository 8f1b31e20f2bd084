"""The train command: run() end to end, reproducibility and bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest
from absl.testing import flagsaver

import tf_compress
from tf_compress.cli import train
from tf_compress.cli.common import parse_flags_or_exit

train.define_flags()  # the command's flags, on absl's FLAGS

EPOCHS = 4


def _config(output_dir, **overrides):
  values = dict(output_dir=str(output_dir), epochs=EPOCHS, verbose=0,
                deterministic=True, seed=7, benchmark_runs=0)
  values.update(overrides)
  return tf_compress.TrainConfig(**values)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("run_a")
  return out, tf_compress.run(_config(out), argv=["train", "--seed=7"])


def test_report_contract(first_run):
  out, report = first_run
  on_disk = json.loads((out / "report.json").read_text())
  assert on_disk == report
  assert {"dataset", "variants", "history", "config",
          "environment"} <= set(report)
  (variant,) = report["variants"]
  assert variant["name"] == "baseline"
  for key in ("top1", "topk", "per_class_accuracy", "balanced_accuracy",
              "params", "nonzero_params", "keras_bytes"):
    assert key in variant, key
  assert len(variant["per_class_accuracy"]) == 10
  assert variant["top_k"] == 3
  assert variant["topk"] >= variant["top1"] > 0.8
  assert variant["params"] == 93_962
  assert 0.99 * variant["params"] <= variant["nonzero_params"] <= (
      variant["params"])
  assert variant["keras_bytes"] == (out / "baseline.keras").stat().st_size
  assert report["dataset"]["num_samples"] == 1797
  splits = report["dataset"]["splits"]
  assert splits["test"] == round(0.2 * 1797)
  assert splits["validation"] == round(0.1 * 1797)
  assert sum(splits.values()) == 1797
  env = report["environment"]
  for key in ("python", "tensorflow", "tf_keras", "tfmot", "numpy"):
    assert env[key], key
  assert env["seed"] == 7 and env["deterministic"] is True
  assert report["config"] == _config(out).to_dict()
  assert len(report["history"]["baseline"]["loss"]) == EPOCHS
  assert "val_accuracy" in report["history"]["baseline"]


def test_baseline_tflite_exports_verified(first_run):
  out, report = first_run
  exports = {e["mode"]: e for e in report["variants"][0]["tflite"]}
  assert set(exports) == {"float32", "int8"}
  for entry in exports.values():
    assert (out / entry["path"]).stat().st_size == entry["bytes"]
    assert entry["gzip_bytes"] < entry["bytes"]
  assert exports["float32"]["agreement"] == 1.0
  assert exports["float32"]["max_abs_diff"] < 1e-4
  assert exports["float32"]["kernel_dtypes"] == {"float32": 4}
  assert exports["int8"]["kernel_dtypes"] == {"int8": 4}
  assert exports["int8"]["agreement"] >= 0.98
  assert exports["float32"]["bytes"] / exports["int8"]["bytes"] >= 3.5


def test_artifacts_written(first_run):
  out, report = first_run
  assert (out / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert json.loads((out / "history.json").read_text()) == report["history"]
  model = tf_compress.load_model(out / "baseline.keras")
  splits = tf_compress.load_dataset("digits", seed=7)
  scores = model.predict(splits.x_test, verbose=0)
  assert tf_compress.classification_metrics(
      scores, splits.y_test)["top1"] == report["variants"][0]["top1"]
  assert not list(out.glob(".partial-*"))


def test_same_seed_deterministic_gives_identical_report(first_run, tmp_path):
  _, first = first_run
  second = tf_compress.run(_config(tmp_path))
  assert second["variants"] == first["variants"]
  assert second["comparison"] == first["comparison"]
  assert second["history"] == first["history"]


def test_other_seed_differs(first_run, tmp_path):
  _, first = first_run
  other = tf_compress.run(_config(tmp_path, seed=8, epochs=1, export=()))
  assert other["history"]["baseline"]["loss"][0] != (
      first["history"]["baseline"]["loss"][0])


def test_mirrored_strategy_on_two_cpus(logical_cpus, tmp_path):
  report = tf_compress.run(_config(tmp_path, strategy="mirrored",
                                   epochs=2, export=()))
  assert report["config"]["strategy"] == "mirrored"
  assert report["variants"][0]["top1"] > 0.7
  assert np.isfinite(report["history"]["baseline"]["loss"]).all()


def test_mirrored_strategy_distills_a_keras3_student(logical_cpus, tmp_path):
  # The student is built under the strategy; compiling it for evaluation
  # outside that scope used to fail ("Mixing different tf.distribute
  # .Strategy objects").
  report = tf_compress.run(_config(
      tmp_path, strategy="mirrored", model="mlp", width=0.25, epochs=1,
      finetune_epochs=1, distill=True, export=(), bootstrap_resamples=100))
  names = [v["name"] for v in report["variants"]]
  assert names == ["baseline", "distilled", "student_scratch"]
  assert all(0.0 < v["top1"] <= 1.0 for v in report["variants"])


def test_saved_model_as_model_flag(first_run, tmp_path):
  out, _ = first_run
  report = tf_compress.run(_config(tmp_path, model=str(
      out / "baseline.keras"), epochs=1, export=()))
  assert report["variants"][0]["params"] == 93_962
  assert report["variants"][0]["top1"] > 0.9


def test_mlp_on_tabular_with_balanced_weights(tmp_path):
  report = tf_compress.run(_config(tmp_path, dataset="wine", model="mlp",
                                   class_weight="balanced", epochs=30,
                                   export=()))
  assert report["dataset"]["num_classes"] == 3
  assert report["variants"][0]["top1"] > 0.8


# ---------------------------------------------------------------- the CLI




def _bad_npz(tmp_path, name, **arrays):
  path = tmp_path / name
  np.savez(path, **arrays)
  return path


@pytest.mark.parametrize("case", [
    "unknown-dataset", "missing-file", "corrupt-file", "labels-mismatch",
    "out-of-range", "wrong-type", "bad-image-size", "fractions-sum",
    "unwritable-output", "missing-model", "positional-arg",
    "sweep-out-of-range", "sweep-not-a-number",
])
def test_bad_input_exits_2_with_one_line(case, tmp_path, train_cli):
  out = tmp_path / "out"
  argv = {
      "unknown-dataset": ["--dataset=no_such_data"],
      "missing-file": [f"--dataset={tmp_path}/missing.npz"],
      "corrupt-file": None,
      "labels-mismatch": None,
      "out-of-range": ["--validation_fraction=2"],
      "wrong-type": ["--epochs=many"],
      "bad-image-size": ["--image_size=64"],
      "fractions-sum": ["--validation_fraction=0.5", "--test_fraction=0.5"],
      "unwritable-output": None,
      "missing-model": [f"--model={tmp_path}/nope.keras"],
      "positional-arg": ["stray"],
      "sweep-out-of-range": ["--sweep_sparsity=0.5,1.5"],
      "sweep-not-a-number": ["--sweep_slice=half"],
  }[case]
  expect = {
      "unknown-dataset": "unknown dataset 'no_such_data'",
      "missing-file": "missing.npz",
      "corrupt-file": "corrupt.npz",
      "labels-mismatch": "mismatch.npz",
      "out-of-range": "validation_fraction",
      "wrong-type": "epochs",
      "bad-image-size": "image_size",
      "fractions-sum": "--validation_fraction + --test_fraction is below 1",
      "unwritable-output": "--output_dir",
      "missing-model": "nope.keras",
      "positional-arg": "stray",
      "sweep-out-of-range": "--sweep_sparsity",
      "sweep-not-a-number": "--sweep_slice",
  }[case]
  if case == "corrupt-file":
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04garbage")
    argv = [f"--dataset={tmp_path}/corrupt.npz"]
  elif case == "labels-mismatch":
    path = _bad_npz(tmp_path, "mismatch.npz",
                    x_train=np.zeros((10, 4, 4), np.uint8),
                    y_train=np.zeros(9, np.int64),
                    x_test=np.zeros((4, 4, 4), np.uint8),
                    y_test=np.zeros(4, np.int64))
    argv = [f"--dataset={path}"]
  elif case == "unwritable-output":
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out = blocker / "sub"
    argv = []
  code, lines = train_cli(argv + [f"--output_dir={out}", "--epochs=1",
                                  "--verbose=0"])
  assert code == 2
  assert len(lines) >= 1 and lines[-1].startswith("error: "), lines
  assert expect in lines[-1]
  assert "Traceback" not in "\n".join(lines)


def test_failed_run_keeps_previous_report(tmp_path, train_cli):
  (tmp_path / "report.json").write_text('{"old": true}')
  code, _ = train_cli([f"--output_dir={tmp_path}", "--dataset=no_such_data"])
  assert code == 2
  assert json.loads((tmp_path / "report.json").read_text()) == {"old": True}


def test_flagfile_and_real_process_exit_code(tmp_path, repo_root):
  flagfile = tmp_path / "run.flags"
  flagfile.write_text(f"--dataset=not_a_dataset\n--output_dir={tmp_path}\n")
  result = subprocess.run(
      [sys.executable, "-m", "tf_compress.train", f"--flagfile={flagfile}"],
      capture_output=True, text=True, cwd=repo_root, timeout=300,
      check=False)
  assert result.returncode == 2, result.stderr[-2000:]
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: unknown dataset 'not_a_dataset'")


def test_demo_defaults_reach_095_top1(tmp_path):
  """`make demo` runs the defaults; the issue asks for >= 0.95 top-1."""
  report = tf_compress.run(tf_compress.TrainConfig(
      output_dir=str(tmp_path), verbose=0, deterministic=True, export=()))
  assert report["config"]["epochs"] == 20
  assert report["variants"][0]["top1"] >= 0.95


def test_demo_flagfile_parses_to_a_valid_config(repo_root):
  with flagsaver.flagsaver():
    parse_flags_or_exit(["train",
                         f"--flagfile={repo_root}/configs/demo.flags"])
    config = train.config_from_flags()
  assert config.prune.sparsity == 0.8 and config.slice.ratio == 0.5
  assert config.qat.enabled and config.distill.enabled
  assert config.adversarial.attack == "fgsm"
  assert config.export.modes == ("float32", "int8")
  assert len(config.prune.sweep) >= 3  # the params-vs-accuracy curve
  assert config.output_dir == "demo_output"
  assert config.fit.keras is None  # Keras 3, the native engine
