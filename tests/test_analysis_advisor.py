"""The export advisor, on recorded runs (figures, never timings)."""

import io
import json
import subprocess
import sys

import pytest

import tf_compress
from tf_compress import analysis
from tf_compress.cli import advise as advise_cli

_NO_VNNI = {"model": "AMD EPYC 7B13", "machine": "x86_64",
            "flags": ["avx2", "fma"], "vnni": False, "source": "argument"}
_VNNI = dict(_NO_VNNI, model="Intel Xeon", flags=["avx2", "fma", "avx512f",
                                                  "avx512_vnni"], vnni=True)


def _export(mode, top1, gzip, p50, std=0.05, gpu=None, ci=None):
  latency = {"cpu": [{"backend": "cpu", "num_threads": 1, "p50_ms": p50,
                      "std_ms": std}]}
  if gpu is not None:
    latency["gpu"] = gpu
  entry = {"mode": mode, "tflite_top1": top1, "gzip_bytes": gzip,
           "latency": latency, "path": f"x_{mode}.tflite"}
  if ci is not None:
    entry["significance"] = {"top1": {"ci_low": ci[0], "ci_high": ci[1]}}
  return entry


def _recorded(cpu=_NO_VNNI, gpu=None):
  """The issue's measured 3-stage CNN: float32 3.41 ms, int8 3.97 ms."""
  return {
      "environment": {"cpu": cpu},
      "variants": [
          {"name": "baseline", "top1": 0.900, "tflite": [
              _export("float32", 0.900, 900_000, 3.41, gpu=gpu),
              _export("int8", 0.897, 240_000, 3.97,
                      ci=(-0.011, 0.004))]},
          {"name": "pruned", "top1": 0.870, "tflite": [
              _export("float32", 0.870, 300_000, 3.40),
              _export("int8", 0.868, 90_000, 3.95)]},
      ]}


def test_float32_wins_latency_where_int8_was_measured_slower():
  advice = analysis.advise(_recorded(), max_drop_pt=1.0)
  assert [(r["variant"], r["mode"]) for r in advice["eligible"]] == [
      ("baseline", "float32"), ("baseline", "int8")]
  assert (advice["fastest_cpu"]["variant"],
          advice["fastest_cpu"]["mode"]) == ("baseline", "float32")
  assert (advice["smallest"]["variant"],
          advice["smallest"]["mode"]) == ("baseline", "int8")
  baseline = next(f for f in advice["int8"] if f["variant"] == "baseline")
  assert baseline["int8_slower"] is True
  assert "no int8 dot-product instructions" in baseline["text"]
  assert "3.9700 ms vs float32 3.4100 ms" in baseline["text"]
  assert advice["fastest_gpu"] == {
      "measured": False, "reason": advice["fastest_gpu"]["reason"]}
  assert "not measured" in advice["fastest_gpu"]["reason"]
  smallest = advice["smallest"]["reason"]
  assert "+0.30 pt drop (95% CI -0.40 to +1.10)" in smallest
  assert any("int8 is slower than float32 here" in s
             for s in advice["summary"])


def test_a_looser_budget_admits_the_pruned_files():
  advice = analysis.advise(_recorded(), max_drop_pt=3.5)
  assert len(advice["eligible"]) == 4
  assert (advice["smallest"]["variant"],
          advice["smallest"]["mode"]) == ("pruned", "int8")
  assert (advice["fastest_cpu"]["variant"],
          advice["fastest_cpu"]["mode"]) == ("pruned", "float32")


def test_with_vnni_the_cpu_is_not_blamed():
  advice = analysis.advise(_recorded(cpu=_VNNI), max_drop_pt=1.0)
  text = next(f["text"] for f in advice["int8"]
              if f["variant"] == "baseline")
  assert "has int8 dot-product instructions" in text


def test_within_noise_is_not_called_slower():
  report = _recorded()
  for export in report["variants"][0]["tflite"]:
    export["latency"]["cpu"][0]["std_ms"] = 1.0
  finding = next(f for f in analysis.advise(report)["int8"]
                 if f["variant"] == "baseline")
  assert finding["int8_slower"] is None
  assert "within timing noise" in finding["text"]


def test_gpu_row_where_the_accelerator_was_measured():
  advice = analysis.advise(_recorded(gpu={"backend": "gpu", "p50_ms": 0.8}))
  assert advice["fastest_gpu"]["measured"] is True
  assert advice["fastest_gpu"]["mode"] == "float32"
  unavailable = analysis.advise(_recorded(gpu={"available": False,
                                               "reason": "no adapter"}))
  assert unavailable["fastest_gpu"]["measured"] is False


def test_nothing_within_budget_is_said():
  advice = analysis.advise(_recorded(), max_drop_pt=0.1)
  assert advice["eligible"][0]["mode"] == "float32"
  advice = analysis.advise(
      {"variants": [{"name": "baseline", "top1": 0.9, "tflite": [
          _export("int8", 0.85, 1000, 1.0)]}]}, max_drop_pt=1.0)
  assert advice["fastest_cpu"] is None and advice["smallest"] is None
  assert advice["summary"][0].startswith("No export stays within 1 pt")
  with pytest.raises(ValueError, match="no .tflite exports"):
    analysis.advise({"variants": [{"name": "baseline", "top1": 0.9}]})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp("advise")
  tf_compress.pipeline.run(tf_compress.RunConfig.from_flat(
      output_dir=str(out), model="mlp", epochs=1, export=("float32", "int8"),
      benchmark_runs=3, bootstrap_resamples=100, verbose=0))
  report = json.loads((out / "report.json").read_text())
  # Recorded figures in place of this machine's timings.
  report["environment"]["cpu"] = _NO_VNNI
  for export, p50 in zip(report["variants"][0]["tflite"], (3.41, 3.97)):
    export["latency"]["cpu"][0].update(p50_ms=p50, std_ms=0.05)
  (out / "report.json").write_text(json.dumps(report))
  return out


def test_command_writes_the_choice_into_the_reports(run_dir):
  printed = io.StringIO()
  advice = advise_cli.run(run_dir, max_drop=100.0, stream=printed)
  assert "Fastest on this CPU: baseline float32" in printed.getvalue()
  assert advice["fastest_cpu"]["mode"] == "float32"
  saved = json.loads((run_dir / "report.json").read_text())
  assert saved["advice"] == json.loads(json.dumps(advice))
  html = (run_dir / "report.html").read_text()
  assert "Which export to ship" in html
  assert "int8 is slower than float32 here" in html
  assert "no int8 dot-product instructions" in (
      run_dir / "report.md").read_text()


def test_command_bad_input_exits_2(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "tf_compress.advise", str(tmp_path / "none")],
      capture_output=True, text=True, check=False)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1].startswith(
      "error: run directory")
