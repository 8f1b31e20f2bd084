"""Tests of `python -m tf_compress.benchmark`.

The subprocess runs (a full benchmark of two models with --use_gpu, and a
corrupt file) start together in one module fixture, since TensorFlow's
import costs seconds per process; everything else runs in-process through
the same functions. examples/benchmark_tflite.py runs in test_examples.py.
"""

import io
import json
import os
import subprocess
import sys

from absl import flags
import numpy as np
import pytest

import tf_compress as tfc
from tf_compress import export
from tf_compress.cli import benchmark as cli
from tf_compress.errors import UserInputError


@pytest.fixture(scope="module")
def models(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("bench_cli_models")
  model = tfc.build_model("cnn", (8, 8, 1), 10, seed=0, keras_version=2)
  calibration = np.random.default_rng(0).uniform(0, 1, (32, 8, 8, 1))
  paths = {"float32": str(tmp / "cnn_float32.tflite"),
           "int8": str(tmp / "cnn_int8.tflite"),
           "corrupt": str(tmp / "corrupt.tflite")}
  export.export_tflite(model, paths["float32"], "float32")
  export.export_tflite(model, paths["int8"], "int8",
                       representative_data=calibration.astype(np.float32))
  with open(paths["float32"], "rb") as f:
    data = f.read()
  with open(paths["corrupt"], "wb") as f:
    f.write(data[:len(data) // 3])
  return paths


@pytest.fixture(scope="module")
def runs(models, repo_root, tmp_path_factory):
  """Runs the subprocess cases in parallel; {case: (rc, stdout, stderr)}."""
  tmp = tmp_path_factory.mktemp("bench_cli")
  module = [sys.executable, "-m", "tf_compress.benchmark"]
  cases = {
      "ok": module + [models["float32"], models["int8"], "--num_threads=1,2",
                      "--num_runs=20", "--warmup_runs=2", "--use_gpu",
                      f"--output_json={tmp / 'out.json'}"],
      "corrupt": module + [models["corrupt"],
                           f"--output_json={tmp / 'bad.json'}"],
  }
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  procs = {name: subprocess.Popen(args, cwd=repo_root, env=env,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
           for name, args in cases.items()}
  results = {name: proc.communicate(timeout=600) for name, proc in
             procs.items()}
  results = {name: (procs[name].returncode,) + out
             for name, out in results.items()}
  results["tmp"] = tmp
  return results


def _error_lines(stderr):
  return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_cli_benchmarks_two_models_with_gpu_and_writes_json(runs, models):
  rc, out, err = runs["ok"]
  assert rc == 0, err[-3000:]
  data = json.loads((runs["tmp"] / "out.json").read_text())
  assert [m["model"] for m in data["models"]] == [models["float32"],
                                                  models["int8"]]
  for report in data["models"]:
    cpu_results = [r for r in report["results"] if r["backend"] == "cpu"]
    assert [r["num_threads"] for r in cpu_results] == [1, 2]
    assert all(r["count"] == 20 and r["warmup_runs"] == 2
               for r in cpu_results)
    assert all(r["min_ms"] <= r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] <=
               r["max_ms"] for r in cpu_results)
    (gpu_result,) = [r for r in report["results"] if r["backend"] == "gpu"]
    if not gpu_result["available"]:
      assert gpu_result["reason"] and "p50_ms" not in gpu_result
    assert report["config"]["num_threads"] == [1, 2]
    assert report["model_bytes"] == os.path.getsize(report["model"])
  # The table holds the same numbers as the JSON.
  first = data["models"][0]["results"][0]
  row = next(line for line in out.splitlines()
             if line.startswith("CPU/XNNPACK") and line.split()[1] == "1")
  assert f"{first['p50_ms']:.3f}" in row.split()
  assert out.count("Model: ") == 2 and out.count("\nGPU") == 2
  assert f"Wrote {runs['tmp'] / 'out.json'}" in out
  assert not list(runs["tmp"].glob(".out.json.*"))  # no temp files left


def test_cli_corrupt_file_exits_2_with_one_error_line(runs, models):
  rc, out, err = runs["corrupt"]
  assert rc == 2, err[-3000:]
  assert _error_lines(err) == [
      f"error: {models['corrupt']} is not a valid TFLite model (The model "
      "is not a valid Flatbuffer buffer); the file is corrupt or truncated: "
      "export it again."]
  assert "Model:" not in out
  assert not (runs["tmp"] / "bad.json").exists()


# ------------------------------------------------------------- in-process


def _fresh_flags():
  fv = flags.FlagValues()
  cli.define_flags(fv)
  return fv


def test_missing_file_exits_2_with_one_error_line(tmp_path, capsys):
  fv = _fresh_flags()
  fv(["prog"])
  rc = cli.run_from_flags([str(tmp_path / "nope.tflite")], fv)
  err = capsys.readouterr().err
  assert rc == 2
  assert _error_lines(err) == [
      f"error: TFLite model file '{tmp_path / 'nope.tflite'}' does not exist "
      "or is not a file; check the path or export the model first."]


def test_no_model_and_bad_output_path(models, tmp_path, capsys):
  fv = _fresh_flags()
  fv(["prog"])
  assert cli.run_from_flags([], fv) == 2
  assert _error_lines(capsys.readouterr().err)[0].startswith(
      "error: no model given")
  with pytest.raises(UserInputError, match="does not exist"):
    cli.run([models["float32"]],
            output_json=str(tmp_path / "no_dir" / "out.json"))


def test_every_file_is_checked_before_benchmarking(models, tmp_path):
  stream = io.StringIO()
  with pytest.raises(UserInputError, match="not a valid TFLite model"):
    cli.run([models["float32"], models["corrupt"]], stream=stream)
  assert stream.getvalue() == ""  # the good model was not benchmarked


def test_run_in_process_prints_table(models):
  stream = io.StringIO()
  config = cli.config_from_flags(_parsed(["--num_threads=2", "--num_runs=4",
                                          "--nouse_xnnpack", "--seed=3"]))
  (report,) = cli.run([models["int8"]], config, stream=stream)
  assert report["results"][0]["delegate"] == "none"
  assert report["results"][0]["count"] == 4
  assert report["inputs"][0]["source"] == "random(seed=3)"
  assert "CPU/builtin" in stream.getvalue()


def _parsed(argv):
  fv = _fresh_flags()
  fv(["prog"] + argv)
  return fv


def test_flags_map_onto_the_config():
  config = cli.config_from_flags(_parsed([
      "--num_threads=1,2,4", "--num_runs=0", "--max_secs=0.5",
      "--warmup_runs=0", "--use_gpu", "--delegate_path=/x/libd.so",
      "--delegate_options=a:1;b: two", "--input_npy=/x/in.npy", "--seed=9"]))
  assert config.num_threads == (1, 2, 4)
  assert config.num_runs is None and config.max_secs == 0.5
  assert config.warmup_runs == 0 and config.use_gpu and config.use_xnnpack
  assert config.delegate_path == "/x/libd.so"
  assert config.delegate_options == {"a": "1", "b": "two"}
  assert config.input_npy == "/x/in.npy" and config.seed == 9
  defaults = cli.config_from_flags(_parsed([]))
  assert defaults.num_threads == (1,) and defaults.num_runs == 50
  assert defaults.max_secs is None and not defaults.use_gpu


@pytest.mark.parametrize("argv,match", [
    (["--num_threads=0"], "thread counts >= 1"),
    (["--num_threads=one"], "thread counts >= 1"),
    (["--num_runs=0"], "give --max_secs too"),
    (["--max_secs=0"], "--max_secs must be > 0"),
    (["--warmup_runs=-1"], "warmup_runs"),
    (["--delegate_options=novalue"], "key:value"),
], ids=["zero_threads", "word_threads", "no_stop", "zero_secs",
        "neg_warmup", "bad_options"])
def test_bad_flags_are_rejected(argv, match):
  fv = _fresh_flags()
  with pytest.raises(flags.Error, match=match):
    fv(["prog"] + argv)


def test_parsers():
  assert cli.parse_num_threads("1, 2") == (1, 2)
  assert cli.parse_delegate_options("") is None
  assert cli.parse_delegate_options("k:v;;x:") == {"k": "v", "x": ""}
  with pytest.raises(UserInputError, match="thread counts"):
    cli.parse_num_threads(["2", "-1"])
