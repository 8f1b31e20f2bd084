"""Tests of the `python -m tf_compress.summary MODEL` command.

Two subprocess runs (a .keras file printed as text, and a text file named
.tflite: exit codes 0 and 2) start together in one module fixture, since
importing TensorFlow costs seconds per process; JSON output and the other
bad inputs go through the same `main` and `run_from_flags` in-process.
"""

import io
import json
import os
import pathlib
import subprocess
import sys
import zipfile

from absl import flags
import numpy as np
import pytest

import tf_compress
from tf_compress.cli import common
from tf_compress import export
from tf_compress import keras
from tf_compress.cli import summary as summary_cli
from tf_compress.errors import ModelError
from tf_compress.errors import UserInputError

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _dense_model(width, name):
  inputs = keras.Input((4,))
  # The ReLU keeps the converter from folding fc1's bias into fc2's.
  x = keras.layers.Dense(width, activation="relu", name="fc1")(inputs)
  model = keras.Model(inputs, keras.layers.Dense(2, name="fc2")(x),
                      name=name)
  rng = np.random.default_rng(0)
  model.set_weights([rng.uniform(0.1, 1, w.shape).astype(np.float32)
                     for w in model.get_weights()])
  return model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  """Saved models and bad inputs, by name."""
  tmp = tmp_path_factory.mktemp("summary_cli")
  tiny = _dense_model(3, "tiny")
  paths = {"tiny": tmp / "tiny.keras", "wide": tmp / "wide.keras",
           "tflite": tmp / "tiny.tflite", "text_tflite": tmp / "x.tflite",
           "text_keras": tmp / "notes.keras", "zip_keras": tmp / "zip.keras",
           "keras3": tmp / "k3.keras", "tmp": tmp}
  tf_compress.save_model(tiny, paths["tiny"])
  tf_compress.save_model(_dense_model(6, "wide"), paths["wide"])
  export.export_tflite(tiny, paths["tflite"], "float32")
  paths["text_tflite"].write_text("not a flatbuffer, just text\n")
  paths["text_keras"].write_text("not a model\n")
  with zipfile.ZipFile(paths["zip_keras"], "w") as archive:
    archive.writestr("readme.txt", "a zip, but not a saved model")
  # What Keras 3 writes first in a .keras archive (importing Keras 3 to save
  # a real one would cost seconds).
  with zipfile.ZipFile(paths["keras3"], "w") as archive:
    archive.writestr("metadata.json", json.dumps(
        {"keras_version": "3.10.0", "date_saved": "2026-01-01@00:00:00"}))
    archive.writestr("config.json", json.dumps(
        {"module": "keras", "class_name": "Sequential", "config": {}}))
  return paths


@pytest.fixture(scope="module")
def cli_runs(files):
  """Runs the CLI cases in parallel; returns {case: (rc, stdout, stderr)}."""
  cases = {
      "text": [str(files["tiny"]), f"--reference={files['wide']}"],
      "bad_tflite": [str(files["text_tflite"])],
  }
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  procs = {
      name: subprocess.Popen(
          [sys.executable, "-m", "tf_compress.summary"] + args,
          cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
          stderr=subprocess.PIPE, text=True)
      for name, args in cases.items()}
  results = {}
  for name, proc in procs.items():
    out, err = proc.communicate(timeout=240)
    results[name] = (proc.returncode, out, err)
  return results


def _last_line(text):
  return text.strip().splitlines()[-1]


def test_cli_text_on_keras_file(cli_runs):
  rc, out, err = cli_runs["text"]
  assert rc == 0, err
  lines = out.splitlines()
  assert lines[0] == "Model: tiny.keras (keras)"
  assert any(line.split() == ["fc1", "(Dense)", "(None,", "3)", "15", "15",
                              "float32", "60", "12"] for line in lines)
  assert any(line.split() == ["Total", "23", "23", "92", "18"]
             for line in lines)
  assert "Params: 23 (32-bit: 23)" in lines
  assert lines[-1] == (
      "Compression vs wide.keras (keras), reference / model: params 1.91x, "
      "non-zero params 1.91x, memory 1.91x, MACs 2.00x")


def test_json_output_on_tflite_file(files, capsys):
  out_json = files["tmp"] / "out.json"
  values = summary_cli.define_flags(flags.FlagValues())
  argv = common.parse_flags_or_exit(
      ["prog", "--format=json", f"--reference={files['tiny']}",
       f"--output={out_json}", str(files["tflite"])], values)
  assert summary_cli.main(argv, values) == 0
  assert capsys.readouterr().out == f"Wrote {out_json}\n"
  data = json.loads(out_json.read_text())
  assert data["source"] == "tflite" and data["name"] == "tiny.tflite"
  assert data["file_bytes"] == files["tflite"].stat().st_size
  assert [(r["type"], r["params"], r["macs"]) for r in data["rows"]] == [
      ("FULLY_CONNECTED", 15, 12), ("FULLY_CONNECTED", 8, 6)]
  assert data["totals"]["params"] == 23
  assert data["reference"]["name"] == "tiny.keras"
  assert data["ratios"] == {"params": 1.0, "nonzero": 1.0,
                            "memory_bytes": 1.0, "macs": 1.0}
  assert not list(files["tmp"].glob(".out.json*"))  # no temporary files


def test_cli_text_file_named_tflite(cli_runs):
  rc, out, err = cli_runs["bad_tflite"]
  assert rc == 2 and not out
  line = _last_line(err)
  assert line.startswith("error: ") and "x.tflite" in line
  assert "not a valid TFLite model" in line


@pytest.fixture
def fv():
  values = summary_cli.define_flags(flags.FlagValues())
  values(["prog"])
  return values


@pytest.mark.parametrize("name,message", [
    ("missing", "model file not found"),
    ("text_keras", "could not load the model"),
    ("zip_keras", "not a saved Keras model"),
    ("keras3", "Keras 3"),
], ids=["missing", "text_keras", "zip_not_model", "keras3_file"])
def test_bad_model_files_exit_2(files, fv, capsys, name, message):
  path = files.get(name, files["tmp"] / "missing.keras")
  assert summary_cli.run_from_flags(str(path), fv) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and err.startswith("error: ")
  assert message in err


def test_bad_reference_and_output_exit_2(files, capsys):
  values = summary_cli.define_flags(flags.FlagValues())
  values(["prog", f"--reference={files['text_tflite']}"])
  assert summary_cli.run_from_flags(str(files["tiny"]), values) == 2
  values = summary_cli.define_flags(flags.FlagValues())
  values(["prog", f"--output={files['tmp'] / 'no_dir' / 'out.txt'}"])
  assert summary_cli.run_from_flags(str(files["tiny"]), values) == 2
  err = capsys.readouterr().err.splitlines()
  assert len(err) == 2 and all(line.startswith("error: ") for line in err)
  assert "x.tflite" in err[0] and "--output" in err[1]


def test_main_needs_exactly_one_model(capsys):
  assert summary_cli.main(["prog"]) == 2
  assert summary_cli.main(["prog", "a.keras", "b.keras"]) == 2
  err = capsys.readouterr().err.splitlines()
  assert err[0].startswith("error: give exactly one MODEL") and (
      "got none" in err[0])
  assert "['a.keras', 'b.keras']" in err[1]


def test_unknown_format_flag_exits_2(capsys):
  values = summary_cli.define_flags(flags.FlagValues())
  with pytest.raises(SystemExit) as exit_info:
    common.parse_flags_or_exit(["prog", "--format=xml", "m.keras"],
                                  values)
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and "--format" in err


def test_run_in_process_returns_the_summary(files):
  stream = io.StringIO()
  result = summary_cli.run(str(files["tiny"]), output_format="text",
                           stream=stream)
  assert result["totals"]["params"] == 23
  assert stream.getvalue().startswith("Model: tiny.keras (keras)\n")
  with pytest.raises(UserInputError, match="unknown format"):
    summary_cli.run(str(files["tiny"]), output_format="yaml")
  with pytest.raises(ModelError):
    summary_cli.run(str(files["tmp"] / "nope.h5"))
