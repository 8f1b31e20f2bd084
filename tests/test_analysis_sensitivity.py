"""analysis.sensitivity: one layer at a time, its drop and interval; the
plot, the report section and the --sensitivity flag."""

import dataclasses
import os

import numpy as np
import pytest

import tf_compress
from tf_compress import analysis
from tf_compress.analysis import report_plots
from tf_compress.analysis import report_sensitivity
from tf_compress.analysis import significance
# The module, not the function that `analysis` binds over its name.
from tf_compress.analysis.sensitivity import kmeans_cluster
from tf_compress.analysis.sensitivity import magnitude_prune
from tf_compress.analysis.sensitivity import parse_method

import fragile_models
import report_samples


@pytest.fixture(scope="module")
def splits():
  return fragile_models.digits_splits()


@pytest.fixture(scope="module")
def model(splits):
  return fragile_models.fragile_cnn(splits)


@pytest.fixture(scope="module")
def int8_result(model, splits):
  return analysis.sensitivity(model, splits, "int8", num_resamples=400)


def _predictions(model, x):
  return np.argmax(model.predict(x, verbose=0), axis=-1)


def test_int8_ranks_the_fragile_layer_first(int8_result, splits):
  rows = int8_result["rows"]
  assert [r["layer"] for r in rows][0] == fragile_models.FRAGILE
  assert sorted(r["layer"] for r in rows) == sorted(fragile_models.LAYERS)
  drops = [r["drop"] for r in rows]
  assert drops == sorted(drops, reverse=True)
  top = rows[0]
  # One class of ten loses its logit: several points, clearly significant.
  assert top["drop"] > 4 and top["significant"] and top["p"] < 0.01
  assert top["ci_low"] <= top["drop"] <= top["ci_high"]
  assert top["ci_low"] > 0
  # Every other layer alone in int8 costs at most a sample or two.
  assert max(drops[1:]) < top["drop"] / 3
  # The drop is the reference's top-1 minus the one-layer-int8 file's.
  reference = int8_result["reference_top1"]
  assert top["drop"] == pytest.approx(100 * (reference - top["top1"]))
  assert int8_result["reference"] == "float32 TFLite"
  assert int8_result["num_samples"] == len(splits.y_val)
  assert int8_result["split"] == "validation"


def test_int8_layers_argument_selects_and_names_unknowns(model, splits):
  result = analysis.sensitivity(model, splits, "int8", layers=["conv*"],
                                num_resamples=50)
  assert sorted(r["layer"] for r in result["rows"]) == ["conv1", "conv2"]
  with pytest.raises(tf_compress.UserInputError, match="'nope'"):
    analysis.sensitivity(model, splits, "prune:0.5", layers=["nope"])


def test_prune_zero_changes_nothing_and_restores_weights(model, splits):
  before = [w.copy() for w in model.get_weights()]
  result = analysis.sensitivity(model, splits, "prune:0.0",
                                num_resamples=100)
  for row in result["rows"]:
    assert (row["drop"], row["ci_low"], row["ci_high"], row["p"]) == (
        0.0, 0.0, 0.0, 1.0)
  heavy = analysis.sensitivity(model, splits, "prune:0.95",
                               layers=["logits"], num_resamples=100)
  assert heavy["rows"][0]["drop"] > 5
  assert heavy["reference"] == "Keras"
  for old, new in zip(before, model.get_weights()):
    np.testing.assert_array_equal(old, new)


def test_cluster_drop_matches_a_hand_clustered_model(model, splits):
  result = analysis.sensitivity(model, splits, "cluster:2",
                                layers=["fc1"], num_resamples=200, seed=3)
  row = result["rows"][0]
  layer = model.get_layer("fc1")
  original = layer.kernel.numpy()
  reference = _predictions(model, splits.x_val)
  try:
    layer.kernel.assign(kmeans_cluster(original, 2))
    clustered = _predictions(model, splits.x_val)
  finally:
    layer.kernel.assign(original)
  expected = significance.paired_bootstrap(
      splits.y_val, reference, clustered, num_resamples=200, seed=3)
  assert row["drop"] == pytest.approx(-100 * expected["difference"])
  assert row["ci_low"] == pytest.approx(-100 * expected["ci_high"])
  assert row["ci_high"] == pytest.approx(-100 * expected["ci_low"])
  np.testing.assert_array_equal(layer.kernel.numpy(), original)


def test_magnitude_prune_sets_the_exact_count_of_smallest_to_zero():
  values = np.array([[0.5, -0.1, 0.3], [-2.0, 0.05, 1.0]], np.float32)
  pruned = magnitude_prune(values, 0.5)
  np.testing.assert_array_equal(
      pruned, [[0.5, 0.0, 0.0], [-2.0, 0.0, 1.0]])
  assert np.count_nonzero(magnitude_prune(
      np.ones(10), 0.3) == 0) == 3


def test_kmeans_cluster_finds_the_two_groups():
  rng = np.random.default_rng(0)
  values = np.concatenate([rng.normal(-1, 0.01, 50),
                           rng.normal(2, 0.01, 30)]).astype(np.float32)
  clustered = kmeans_cluster(values, 2)
  centroids = np.unique(clustered)
  assert centroids.size == 2 and clustered.dtype == np.float32
  np.testing.assert_allclose(centroids, [values[:50].mean(),
                                         values[50:].mean()], atol=1e-5)
  # At least as many clusters as values: nothing moves.
  np.testing.assert_array_equal(
      kmeans_cluster(values[:5], 8), values[:5])


@pytest.mark.parametrize("method,expected", [
    ("int8", ("int8", None)), ("prune:0.8", ("prune", 0.8)),
    ("cluster:16", ("cluster", 16))], ids=["int8", "prune", "cluster"])
def test_parse_method(method, expected):
  assert parse_method(method) == expected


@pytest.mark.parametrize("method", ["int4", "prune:1.0", "prune:x",
                                    "cluster:0", "cluster:2.5", "int8:3"])
def test_bad_methods_are_refused(method):
  with pytest.raises(tf_compress.UserInputError, match="prune:S"):
    parse_method(method)


def test_no_validation_split_is_an_error(model, splits):
  empty = dataclasses.replace(splits, x_val=splits.x_val[:0],
                              y_val=splits.y_val[:0])
  with pytest.raises(tf_compress.UserInputError, match="validation"):
    analysis.sensitivity(model, empty, "prune:0.5")


def test_plot_draws_the_sorted_drops(int8_result, tmp_path):
  path = tmp_path / "sensitivity.png"
  drawn = analysis.plot_sensitivity(int8_result, path)
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert drawn["layers"] == [r["layer"] for r in int8_result["rows"]]
  assert drawn["drops"] == pytest.approx(
      [r["drop"] for r in int8_result["rows"]])


def test_report_section_table_and_plot(int8_result, tmp_path):
  report = dict(report_samples.sample_report(), sensitivity=int8_result)
  table = report_sensitivity.sensitivity_table(report)
  assert [row[0] for row in table.rows] == [
      r["layer"] for r in int8_result["rows"]]
  top = int8_result["rows"][0]
  assert table.rows[0][1].startswith(f"{top['drop']:+.2f} [")
  assert table.highlight[0] is True
  assert report_sensitivity.sensitivity_table({"variants": []}) is None
  plots = report_plots.write_report_plots(report, str(tmp_path))
  assert plots["sensitivity"] == "sensitivity.png"
  assert os.path.exists(tmp_path / "sensitivity.png")
  html = analysis.render_html(report, plots, str(tmp_path))
  assert '<h2 id="sensitivity">Per-layer sensitivity</h2>' in html
  assert f"<td>{top['layer']}</td>" in html
  markdown = analysis.render_markdown(report, plots, str(tmp_path))
  assert "## Per-layer sensitivity" in markdown
  assert "](sensitivity.png)" in markdown


def test_sensitivity_flag_validates():
  config = tf_compress.TrainConfig(sensitivity="cluster:8")
  assert config.eval.sensitivity == "cluster:8"
  assert config.to_dict()["sensitivity"] == "cluster:8"
  assert tf_compress.TrainConfig().eval.sensitivity is None
  with pytest.raises(tf_compress.UserInputError, match="--sensitivity"):
    tf_compress.TrainConfig(sensitivity="prune:2")


def test_run_adds_sensitivity_to_the_report(tmp_path):
  config = tf_compress.TrainConfig(
      output_dir=str(tmp_path), model="mlp", width=0.25, epochs=2,
      verbose=0, seed=1, benchmark_runs=0, export=(),
      sensitivity="prune:0.9", bootstrap_resamples=100)
  report = tf_compress.pipeline.run(config)
  result = report["sensitivity"]
  assert result["method"] == "prune:0.9" and result["reference"] == "Keras"
  assert sorted(r["layer"] for r in result["rows"]) == ["fc1", "fc2",
                                                        "logits"]
  assert report["artifacts"]["plots"]["sensitivity"] == "sensitivity.png"
  assert (tmp_path / "sensitivity.png").exists()
  assert "Per-layer sensitivity" in (tmp_path / "report.html").read_text()
  saved = analysis.load_report(str(tmp_path))
  assert saved["sensitivity"]["rows"] == result["rows"]
