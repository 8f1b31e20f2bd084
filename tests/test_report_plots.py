"""Tests of the report plots (report_plots) and Pareto rows (comparison)."""

import numpy as np
from PIL import Image
import pytest

from report_samples import PARETO
from report_samples import sample_report
from tf_compress.analysis import comparison_rows
from tf_compress.analysis import report_plots
from tf_compress.analysis import report_series
from tf_compress.analysis import report_tables
from tf_compress.analysis import report_weights
from tf_compress.analysis import write_report_plots


def _check_png(path, min_size=(300, 200)):
  """Opens the PNG with PIL; returns it as an RGB array."""
  with Image.open(path) as image:
    assert image.format == "PNG"
    assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
    pixels = np.asarray(image.convert("RGB"))
  # Something is drawn: far more than a couple of colours.
  assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20
  return pixels


def test_comparison_rows_mark_hand_made_pareto_front():
  rows = comparison_rows(sample_report()["variants"])
  marked = {(r["variant"], r["mode"]) for r in rows if r["pareto"]}
  assert marked == PARETO
  keras_rows = [r for r in rows if r["mode"] == "keras"]
  assert len(keras_rows) == 3 and not any(r["pareto"] for r in keras_rows)
  # The existing keys are all still there (report.json is a contract).
  assert {"variant", "mode", "bytes", "gzip_bytes", "top1", "agreement",
          "p50_ms", "speedup", "size_ratio", "params",
          "nonzero_params"} <= set(rows[0])
  assert all(isinstance(r["pareto"], bool) for r in rows)


def test_comparison_rows_pareto_ties_and_missing_values():
  variants = [{"name": "baseline", "top1": 0.9, "tflite": [
      {"mode": "float32", "bytes": 10, "gzip_bytes": 100, "tflite_top1": 0.9},
      {"mode": "int8", "bytes": 10, "gzip_bytes": 100, "tflite_top1": 0.9},
      {"mode": "float16", "bytes": 10, "gzip_bytes": 50,
       "tflite_top1": None}]}]
  rows = comparison_rows(variants)
  # Equal points do not dominate each other; a missing top-1 is never kept.
  assert [r["pareto"] for r in rows] == [False, True, True, False]


def test_accuracy_vs_size_marks_exactly_the_pareto_points(tmp_path):
  points = report_series.size_points(sample_report())
  assert len(points) == 6
  expected = tuple(i for i, p in enumerate(points)
                   if tuple(p["label"].split("/")) in PARETO)
  assert len(expected) == 3
  drawn = report_plots.plot_accuracy_vs_size(points, tmp_path / "size.png")
  assert drawn.points == 6
  assert drawn.marked == expected
  _check_png(drawn.path)


def test_accuracy_vs_size_with_no_pareto_flags_marks_nothing(tmp_path):
  points = [{"size": 100, "accuracy": 0.5, "pareto": False},
            {"size": 200, "accuracy": 0.6, "pareto": False}]
  drawn = report_plots.plot_accuracy_vs_size(points, tmp_path / "p.png")
  assert drawn.marked == () and drawn.points == 2


def test_sweep_and_bar_plots_draw_every_point(tmp_path):
  series = {"sweep": [(0.0, 0.9), (0.5, 0.88), (0.8, 0.8)]}
  drawn = report_plots.plot_accuracy_vs_sparsity(
      series, tmp_path / "s.png", labelled=[("pruned", 0.5, 0.87)])
  assert drawn.points == 4
  _check_png(drawn.path)
  drawn = report_plots.plot_params_vs_accuracy(
      {"a": [(1000, 0.9), (500, 0.85)], "b": [(300, None)]},
      tmp_path / "p.png")
  assert drawn.points == 2  # the None accuracy is skipped
  drawn = report_plots.plot_per_layer_sparsity(
      {"pruned": [{"layer": "a", "sparsity": 0.5},
                  {"layer": "b", "sparsity": 0.7}],
       "other": [{"layer": "b", "sparsity": 0.2}]}, tmp_path / "l.png")
  assert drawn.points == 3
  _check_png(drawn.path)


def test_heatmaps_count_known_cells(tmp_path):
  drawn = report_plots.plot_class_heatmap(
      [[0.0, -0.05, None], [0.02, 0.0, -0.1]], ["pruned", "int8"],
      ["a", "b", "c"], tmp_path / "h.png")
  assert drawn.points == 5
  _check_png(drawn.path)
  drawn = report_plots.plot_confusion_matrix(
      [[5, 1], [0, 7]], ["a", "b"], tmp_path / "c.png")
  assert drawn.points == 4
  _check_png(drawn.path, min_size=(300, 200))


def test_weight_histograms_draw_every_value(tmp_path):
  rng = np.random.default_rng(0)
  before = rng.normal(size=1000).astype(np.float32)
  pruned = np.where(np.abs(before) < 0.6, 0.0, before)
  clustered = rng.choice([-0.5, 0.1, 0.4], size=600).astype(np.float32)
  int8 = rng.integers(-127, 128, size=500).astype(np.int8)
  panels = [{"name": "pruned", "before": before, "after": pruned,
             "int8": int8, "centroids": None},
            {"name": "clustered", "before": before, "after": clustered,
             "int8": None, "centroids": [-0.5, 0.1, 0.4]},
            {"name": "qat", "before": None, "after": None, "int8": int8,
             "centroids": None, "notes": ["qat.keras does not reload"]}]
  drawn = report_plots.plot_weight_histograms(panels, tmp_path / "w.png")
  assert drawn.points == 1000 + 1000 + 500 + 1000 + 600 + 500
  pixels = _check_png(drawn.path)
  assert pixels.shape[0] >= 3 * 200  # one row of panels per variant


def test_centroids_found_only_for_few_distinct_values():
  # pylint: disable=protected-access
  assert report_weights._centroids(np.repeat([0.1, 0.2, 0.3], 20)) == [
      0.1, 0.2, 0.3]
  assert report_weights._centroids(np.linspace(0, 1, 1000)) is None


def test_sweep_series_from_sweeps_and_variants():
  report = sample_report()
  # A sweep point is a variant too; it is drawn on the line, not as a star.
  report["variants"].append(dict(report["variants"][1], name="pruned_50"))
  data = report_series.sweep_series(report)
  assert data["metric_label"] == "balanced acc."
  series, labelled = data["accuracy_vs_sparsity"]
  assert series == {"sparsity sweep": [
      (0.25, pytest.approx(0.925)), (0.5, pytest.approx(0.9)),
      (0.75, pytest.approx(0.875)), (0.0, pytest.approx(0.94))]}
  assert labelled == [("pruned", 0.5, pytest.approx(0.95))]
  series, labelled = data["params_vs_accuracy"]
  # The slice point has no balanced accuracy: its top-1 stands in.
  assert series["slice sweep"] == [(500, 0.93), (1000, pytest.approx(0.94))]
  assert [x for x, _ in series["sparsity sweep"]] == [750, 500, 250, 1000]
  assert [name for name, _, _ in labelled] == ["baseline", "pruned", "small"]
  del report["sweeps"]
  data = report_series.sweep_series(report)
  assert data["params_vs_accuracy"] is None
  assert data["accuracy_vs_sparsity"][0] == {}


def test_write_report_plots_draws_what_the_data_allows(tmp_path):
  report = sample_report()
  plots = write_report_plots(report, str(tmp_path))
  assert list(plots) == [
      "accuracy_vs_size", "accuracy_vs_sparsity", "params_vs_accuracy",
      "per_layer_sparsity", "per_class_change", "confusion_matrix",
      "training_curves/baseline", "training_curves/pruned"]
  for filename in plots.values():
    _check_png(tmp_path / filename)
  # No saved models or int8 files: no weight histograms, nothing invented.
  assert not (tmp_path / "weight_histograms.png").exists()


def test_write_report_plots_without_optional_data(tmp_path):
  report = sample_report()
  for key in ("sweeps", "history", "headline_metrics"):
    del report[key]
  for variant in report["variants"]:
    for key in ("confusion_matrix", "per_class_change", "sparsity"):
      variant.pop(key, None)
  plots = write_report_plots(report, str(tmp_path))
  assert list(plots) == ["accuracy_vs_size"]


def test_best_compressed_uses_the_first_headline_metric():
  report = sample_report()
  assert report_tables.best_compressed(report)["name"] == "pruned"
  report["variants"][2]["balanced_accuracy"] = 0.99
  assert report_tables.best_compressed(report)["name"] == "small"
  report["headline_metrics"] = ["top1"]
  assert report_tables.best_compressed(report)["name"] == "pruned"


@pytest.mark.parametrize("metric,expected", [
    ("top1", 0.94), ("balanced_accuracy", pytest.approx(0.9)),
    ("macro_f1", None)], ids=["top1", "balanced", "missing"])
def test_export_metric_values(metric, expected):
  report = sample_report()
  pruned = report["variants"][1]
  pruned["tflite"][1]["tflite_top1"] = 0.94
  assert report_tables.metric_value(pruned, metric,
                                    pruned["tflite"][1]) == expected
