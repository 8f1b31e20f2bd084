"""run(): params-vs-accuracy sweeps, the combined variant and who pays."""

import json

import numpy as np
import pytest

import tf_compress
from tf_compress import pipeline
from tf_compress.pipeline import measures


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("sweep")
  config = tf_compress.TrainConfig(
      output_dir=str(out), model="mlp", width=0.5, epochs=3,
      finetune_epochs=2, verbose=0, seed=5, benchmark_runs=2,
      benchmark_warmup=1, prune_sparsity=0.5, prune_schedule="constant",
      sweep_sparsity=(0.5, 0.9), sweep_slice=(0.5,), combine=True,
      export=("float32", "int8"))
  return out, pipeline.run(config)


def test_sweep_rows_follow_the_levels(sweep_run):
  out, report = sweep_run
  rows = report["sweeps"]["sparsity"]
  assert [r["level"] for r in rows] == [0.5, 0.9]
  # The 0.5 level is the `pruned` variant itself, not trained twice.
  assert [r["variant"] for r in rows] == ["pruned", "pruned_90"]
  names = [v["name"] for v in report["variants"]]
  assert names.count("pruned") == 1 and "pruned_90" in names
  assert "pruned_50" not in names
  for row in rows:
    assert row["sparsity"] == pytest.approx(row["level"], abs=0.01)
    variant = next(v for v in report["variants"] if v["name"] ==
                   row["variant"])
    assert row["nonzero_params"] == variant["nonzero_params"]
    assert row["top1"] == variant["top1"]
    assert set(row["gzip_bytes"]) == {"float32", "int8"}
    assert all(v > 0 for v in row["p50_ms"].values())
    assert (out / f"{row['variant']}_int8.tflite").exists()
  assert rows[1]["nonzero_params"] < rows[0]["nonzero_params"]
  assert rows[1]["gzip_bytes"]["float32"] < rows[0]["gzip_bytes"]["float32"]
  (sliced,) = report["sweeps"]["slice"]
  assert sliced["variant"] == "sliced_50" and sliced["level"] == 0.5
  assert sliced["params"] < report["variants"][0]["params"]


def test_combined_variant_in_the_report(sweep_run):
  _, report = sweep_run
  combined = next(v for v in report["variants"] if v["name"] == "combined")
  assert combined["combined"]["stages"] == ["prune"]
  assert combined["sparsity"]["overall"] == pytest.approx(0.5, abs=0.01)
  assert len(report["history"]["combined"]["loss"]) == 2


def test_confusion_matrix_and_export_per_class_change(sweep_run):
  out, report = sweep_run
  on_disk = json.loads((out / "report.json").read_text())
  assert on_disk["sweeps"] == report["sweeps"]
  for variant in report["variants"]:
    matrix = np.array(variant["confusion_matrix"])
    assert matrix.shape == (10, 10)
    assert matrix.sum() == variant["num_samples"]
    assert np.trace(matrix) / matrix.sum() == pytest.approx(variant["top1"])
    for export in variant["tflite"]:
      change = export["per_class_change"]
      expected = [t - k for t, k in zip(export["per_class_accuracy"],
                                        variant["per_class_accuracy"])]
      assert change["delta"] == pytest.approx(expected)
      assert change["classes_below_threshold"] == [
          c for c in np.argsort(expected, kind="stable")
          if expected[c] < -change["threshold"]]
  assert report["headline_metrics"] == ["top1", "topk"]


@pytest.mark.parametrize("class_weight,ratio,expected", [
    ("none", 1.1, ["top1", "topk"]),
    ("none", 2.0, ["balanced_accuracy", "macro_f1"]),
    ("balanced", 1.0, ["balanced_accuracy", "macro_f1"]),
    ("none", None, ["balanced_accuracy", "macro_f1"]),
], ids=["balanced-data", "imbalanced-data", "balanced-weights",
        "missing-class"])
def test_headline_metrics(tmp_path, class_weight, ratio, expected):
  config = tf_compress.TrainConfig(output_dir=str(tmp_path),
                                   class_weight=class_weight)
  assert measures.headline_metrics(config, {"imbalance_ratio": ratio}) == (
      expected)


@pytest.mark.parametrize("field,value,match", [
    ("sweep_sparsity", (0.5, 1.0), "levels in"),
    ("sweep_sparsity", (0.5, 0.5), "without repeats"),
    ("sweep_slice", ("x",), "a list of float values"),
])
def test_bad_sweep_levels(tmp_path, field, value, match):
  with pytest.raises(tf_compress.UserInputError, match=match):
    tf_compress.TrainConfig(output_dir=str(tmp_path), **{field: value})


def test_run_writes_the_results_report(sweep_run):
  out, report = sweep_run
  artifacts = report["artifacts"]
  html = (out / artifacts["report_html"]).read_text()
  markdown = (out / artifacts["report_md"]).read_text()
  for variant in report["variants"]:
    assert variant["name"] in html and variant["name"] in markdown
  assert "http://" not in html and "https://" not in html
  plots = artifacts["plots"]
  assert html.count("data:image/png;base64,") >= len(plots) >= 8
  for filename in plots.values():
    assert (out / filename).stat().st_size > 1000
  # The sweep and the export's weight histogram are among the plots.
  names = " ".join(plots)
  assert "sparsity" in names and "weight" in names
  assert report["timing"]["reports_seconds"] > 0
