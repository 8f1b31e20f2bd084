"""Tests of the `python -m tf_compress.analyze` command and common.

Two subprocess runs (success, unknown dataset: exit codes 0 and 2) start
together in one module fixture, since TensorFlow's import costs seconds per
process; everything else, bad flags included, runs in-process through the
same functions.
"""

import io
import json
import os
import pathlib
import subprocess
import sys

from absl import flags
import pytest

from tf_compress.cli import analyze
from tf_compress.cli import common
from tf_compress.data import splits as splits_lib
from tf_compress.errors import DataError
from tf_compress.errors import UserInputError

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
  """Runs the CLI cases in parallel; returns {case: (rc, stdout, stderr)}."""
  tmp = tmp_path_factory.mktemp("cli")
  cases = {
      "ok": ["--dataset=digits", f"--output_json={tmp / 'out.json'}",
             "--seed=1"],
      "unknown": ["--dataset=nosuchset", f"--output_json={tmp / 'u.json'}"],
  }
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  procs = {
      name: subprocess.Popen(
          [sys.executable, "-m", "tf_compress.analyze"] + args,
          cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
          stderr=subprocess.PIPE, text=True)
      for name, args in cases.items()}
  results = {}
  for name, proc in procs.items():
    out, err = proc.communicate(timeout=240)
    results[name] = (proc.returncode, out, err)
  results["tmp"] = tmp
  return results


def _last_line(text):
  return text.strip().splitlines()[-1]


def test_cli_success_writes_json_and_prints_table(cli_runs):
  rc, out, err = cli_runs["ok"]
  assert rc == 0, err
  data = json.loads((cli_runs["tmp"] / "out.json").read_text())
  assert data["name"] == "digits" and data["num_samples"] == 1797
  assert data["splits"] == {"train": 1258, "validation": 180, "test": 359}
  assert sum(data["per_class_counts"]) == 1797
  assert data["value_min"] == 0 and data["value_max"] == 16
  assert data["channel_stats_units"] == "raw"
  assert "Dataset: digits (sklearn)" in out
  assert "Splits: train 1258   validation 180   test 359" in out
  assert "Imbalance ratio" in out
  assert not list(cli_runs["tmp"].glob(".out.json.*"))  # no temp files


def test_cli_unknown_dataset(cli_runs):
  rc, _, err = cli_runs["unknown"]
  assert rc == 2
  line = _last_line(err)
  assert line.startswith("error: unknown dataset 'nosuchset'")
  assert not (cli_runs["tmp"] / "u.json").exists()


def test_out_of_range_flag_exits_2(capsys):
  # In-process: the flag parser the program runs (test_flags_parser_exits_2
  # below checks a malformed value the same way).
  fv = analyze.define_flags(flags.FlagValues())
  with pytest.raises(SystemExit) as info:
    common.parse_flags_or_exit(["prog", "--validation_fraction=2"], fv)
  assert info.value.code == 2
  line = _last_line(capsys.readouterr().err)
  assert line.startswith("error: ") and "--validation_fraction" in line
  assert "Try --helpfull" in line


def test_corrupt_npz_exits_2(tmp_path, capsys):
  # In-process: the same flag parsing and error path as the program.
  corrupt = tmp_path / "corrupt.npz"
  corrupt.write_bytes(b"definitely not a zip archive")
  fv = analyze.define_flags(flags.FlagValues())
  common.parse_flags_or_exit(
      ["prog", f"--dataset={corrupt}",
       f"--output_json={tmp_path / 'c.json'}"], fv)
  assert analyze.run_from_flags(fv) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1
  assert err.startswith("error: could not read '")
  assert "corrupt.npz' as an .npz file" in err
  assert not (tmp_path / "c.json").exists()


def test_run_from_flags_success(tmp_path, capsys):
  fv = analyze.define_flags(flags.FlagValues())
  fv(["prog", "--dataset=wine", f"--output_json={tmp_path / 'w.json'}",
      "--test_fraction=0.3", "--validation_fraction=0"])
  assert analyze.run_from_flags(fv) == 0
  data = json.loads((tmp_path / "w.json").read_text())
  assert data["splits"] == {"train": 125, "validation": 0, "test": 53}
  assert "Dataset: wine (sklearn)" in capsys.readouterr().out


def test_run_in_process(tmp_path):
  out = tmp_path / "a.json"
  stream = io.StringIO()
  result = analyze.run(dataset="iris", output_json=str(out), seed=0,
                       validation_fraction=0.2, test_fraction=0.2,
                       stream=stream)
  assert json.loads(out.read_text()) == json.loads(json.dumps(result))
  assert result["per_class_counts"] == [50, 50, 50]
  assert result["splits"] == {"train": 90, "validation": 30, "test": 30}
  assert "Dataset: iris (sklearn)" in stream.getvalue()
  assert f"Wrote {out}" in stream.getvalue()


def test_run_without_output_and_with_image_size_text(tmp_path):
  from tf_compress._keras import tf  # pylint: disable=g-import-not-at-top
  for cls, value in (("a", 10), ("b", 200)):
    for i in range(3):
      (tmp_path / "imgs" / cls).mkdir(parents=True, exist_ok=True)
      image = tf.fill([9 + i, 12, 1], tf.constant(value, tf.uint8))
      (tmp_path / "imgs" / cls / f"{i}.png").write_bytes(
          tf.io.encode_png(image).numpy())
  result = analyze.run(dataset=str(tmp_path / "imgs"), image_size="4,6",
                       test_fraction=0.34, validation_fraction=0.0,
                       output_json="", stream=io.StringIO())
  assert result["input_shape"] == [4, 6, 1]
  assert result["image_sizes"]["recommended_size"] == [8, 16]
  assert list(tmp_path.glob("*.json")) == []


def test_run_checks_output_before_loading(tmp_path, monkeypatch):
  def fail(*args, **kwargs):
    raise AssertionError("load_dataset must not run")

  monkeypatch.setattr(splits_lib, "load_dataset", fail)
  with pytest.raises(UserInputError, match="does not exist"):
    analyze.run(output_json=str(tmp_path / "nope" / "a.json"))


def test_run_propagates_data_errors(tmp_path):
  with pytest.raises(DataError, match="file not found"):
    analyze.run(dataset=str(tmp_path / "x.npz"), output_json="")


@pytest.mark.parametrize("text,expected", [("", None), ("32,48", (32, 48)),
                                           (" 8 , 9 ", (8, 9))])
def test_parse_image_size(text, expected):
  assert analyze.parse_image_size(text) == expected


@pytest.mark.parametrize("text", ["32", "a,b", "0,4", "1,2,3", "-3,4"])
def test_parse_image_size_rejects(text):
  with pytest.raises(UserInputError, match=f"got '{text}'"):
    analyze.parse_image_size(text)


def test_flags_parser_exits_2(capsys):
  fv = analyze.define_flags(flags.FlagValues())
  assert fv(["prog", "--image_size=16,16"]) == ["prog"]
  assert fv.image_size == "16,16" and fv.validation_fraction == 0.1
  fv = analyze.define_flags(flags.FlagValues())
  with pytest.raises(SystemExit) as info:
    common.parse_flags_or_exit(["prog", "--image_size=big"], fv)
  assert info.value.code == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith("error: flag --image_size=big:")
  assert err.count("\n") == 0 and err.endswith("Try --helpfull to list the "
                                               "flags.")


def test_report_user_error_one_line():
  stream = io.StringIO()
  code = common.report_user_error(DataError("bad\nthing  here"), stream)
  assert code == 2
  assert stream.getvalue() == "error: bad thing here\n"
