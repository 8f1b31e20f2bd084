"""Tests of `python -m tf_compress.report` on a small real run.

A module fixture trains one quick run (an MLP on digits, pruned to 50%,
float32 and int8 exports); the command rebuilds its reports in-process
through `run_from_flags`, as do the bad-input cases. One subprocess (a
corrupt report, exit code 2) starts while the run trains.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

from absl import flags
import numpy as np
import pytest

from tf_compress.cli import report as report_cli
from tf_compress import pipeline
from tf_compress.analysis import report_weights
from tf_compress.pipeline import TrainConfig
from tf_compress.errors import UserInputError

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _write_corrupt(path):
  path.mkdir()
  (path / "report.json").write_text("{not json")
  return path


@pytest.fixture(scope="module")
def bad_cli(tmp_path_factory):
  """Starts the command on a corrupt report (in the background)."""
  corrupt = _write_corrupt(tmp_path_factory.mktemp("bad") / "corrupt")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.Popen(
      [sys.executable, "-m", "tf_compress.report", str(corrupt)],
      cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True)
  yield proc
  if proc.poll() is None:
    proc.kill()
    proc.communicate()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, bad_cli):  # pylint: disable=unused-argument
  """A finished run: baseline + pruned MLP on digits, float32 + int8.

  Depends on `bad_cli` so that the subprocess starts (and imports
  TensorFlow) while this run trains.
  """
  out = tmp_path_factory.mktemp("run")
  pipeline.run(TrainConfig(
      dataset="digits", model="mlp", epochs=2, finetune_epochs=1,
      prune_sparsity=0.5, export=("float32", "int8"), benchmark_runs=0,
      output_dir=str(out), verbose=0, seed=0))
  return out


@pytest.fixture(scope="module")
def rebuilt(run_dir, tmp_path_factory):
  """The command on `run_dir`, writing into a fresh directory."""
  out = tmp_path_factory.mktemp("rebuilt")
  return report_cli.run_from_flags([str(run_dir)], _flag_values(out)), out


def _flag_values(output_dir=None):
  fv = flags.FlagValues()
  report_cli.define_flags(fv)
  fv(["report"] + ([f"--output_dir={output_dir}"] if output_dir else []))
  return fv


def test_cli_rebuilds_the_reports_from_a_run_dir(rebuilt, run_dir):
  rc, out = rebuilt
  assert rc == 0
  html = (out / "report.html").read_text(encoding="utf-8")
  md = (out / "report.md").read_text(encoding="utf-8")
  report = json.loads((run_dir / "report.json").read_text())
  for variant in report["variants"]:
    for mode in ["keras"] + [e["mode"] for e in variant["tflite"]]:
      assert re.search(rf"<td>{variant['name']}</td><td>{mode}</td>", html)
      assert re.search(rf"\| (\*\*)?{variant['name']}(\*\*)? \| "
                       rf"(\*\*)?{mode}(\*\*)? \|", md)
  links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
  assert "weight_histograms.png" in links and "accuracy_vs_size.png" in links
  assert all((out / link).is_file() for link in links)
  assert html.count("data:image/png;base64,") == len(links)
  assert "https://" not in html and "<link" not in html
  # The run dir itself is only read.
  assert not (run_dir / "report.md").exists() or (
      (run_dir / "report.md").stat().st_mtime
      < (out / "report.md").stat().st_mtime)


def test_weight_panels_of_the_real_run(run_dir):
  report = json.loads((run_dir / "report.json").read_text())
  panels = {p["name"]: p for p in report_weights.weight_panels(
      report, str(run_dir))}
  assert set(panels) == {"baseline", "pruned"}
  pruned = panels["pruned"]
  kernels = sum(r["weights"] for r in
                report["variants"][1]["sparsity"]["per_layer"])
  assert pruned["after"].size == pruned["before"].size == kernels
  zeros = report["variants"][1]["sparsity"]["overall"]
  assert np.mean(pruned["after"] == 0) == pytest.approx(zeros, abs=1e-6)
  assert 0.45 < zeros < 0.55
  # The int8 kernels keep the zeros of pruning.
  assert pruned["int8"].dtype == np.int8 and pruned["int8"].size == kernels
  assert np.mean(pruned["int8"] == 0) >= zeros - 1e-6
  assert np.mean(panels["baseline"]["int8"] == 0) < 0.1


def test_compare_two_run_dirs_side_by_side(run_dir, tmp_path):
  second = tmp_path / "run_b"
  shutil.copytree(run_dir, second)
  report = json.loads((second / "report.json").read_text())
  report["variants"][0]["top1"] = 0.123
  (second / "report.json").write_text(json.dumps(report))
  out = tmp_path / "cmp"
  artifacts = report_cli.run([str(run_dir), str(second)], output_dir=str(out))
  html = (out / artifacts["html"]).read_text()
  assert artifacts["html"] == "comparison.html"
  assert (f'<th colspan="4">{run_dir.name}</th><th colspan="4">run_b</th>'
          in html)
  row = re.search(r"<tr><td>baseline</td><td>keras</td>(.*?)</tr>",
                  html).group(1)
  assert "12.30%" in row  # the second run's own value
  assert (out / "comparison.md").is_file()


def _corrupt(tmp_path):
  return _write_corrupt(tmp_path / "corrupt")


def _unknown_schema(tmp_path):
  path = tmp_path / "future"
  path.mkdir()
  (path / "report.json").write_text(json.dumps(
      {"schema_version": 99, "variants": [{"name": "baseline"}]}))
  return path


def _no_variants(tmp_path):
  path = tmp_path / "novariants"
  path.mkdir()
  (path / "report.json").write_text(json.dumps({"schema_version": 1}))
  return path


@pytest.mark.parametrize("make_dir,message", [
    (lambda t: t / "missing", "does not exist"),
    (lambda t: t, "no report.json"),
    (_corrupt, "is not valid JSON"),
    (_unknown_schema, "schema_version 99"),
    (_no_variants, "no valid 'variants'"),
], ids=["missing", "no_report", "corrupt", "unknown_schema", "no_variants"])
def test_bad_input_exits_2(make_dir, message, tmp_path, capsys):
  path = make_dir(tmp_path)
  rc = report_cli.run_from_flags([str(path)], _flag_values())
  lines = capsys.readouterr().err.strip().splitlines()
  assert rc == 2
  assert len(lines) == 1 and lines[0].startswith("error: ")
  assert message in lines[0]


def test_no_run_dir_and_bad_output_dir(run_dir, tmp_path):
  with pytest.raises(UserInputError, match="at least one run directory"):
    report_cli.run([])
  blocker = tmp_path / "file"
  blocker.write_text("x")
  with pytest.raises(UserInputError, match="is not a directory"):
    report_cli.run([str(run_dir)], output_dir=str(blocker))


def test_cli_subprocess_exit_code_on_bad_input(bad_cli):
  _, err = bad_cli.communicate(timeout=300)
  assert bad_cli.returncode == 2
  assert err.strip().splitlines()[-1].startswith("error: report ")
