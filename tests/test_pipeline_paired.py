"""The run's paired statistics: every variant and export vs the baseline."""

import json
import os

import numpy as np
import pytest
from scipy import stats

import tf_compress
from tf_compress.analysis import significance
from tf_compress.pipeline import load_predictions
from tf_compress.pipeline import paired


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp("paired")
  config = tf_compress.RunConfig.from_flat(
      output_dir=str(out), epochs=2, finetune_epochs=1, prune_sparsity=0.8,
      prune_begin_epoch=0, prune_end_epoch=1, distill=True,
      distill_student=0.25, export=("float32", "int8"),
      benchmark_runs=0, bootstrap_resamples=600, seed=1, verbose=0)
  report = tf_compress.pipeline.run(config)
  return out, report


def test_predictions_file_reproduces_every_accuracy(run_dir):
  out, report = run_dir
  labels, predictions = load_predictions(out / "predictions.npz")
  assert report["artifacts"]["predictions"] == "predictions.npz"
  splits = tf_compress.load_dataset("digits", seed=1)
  np.testing.assert_array_equal(labels, splits.y_test)
  for variant in report["variants"]:
    own = predictions[variant["name"]]
    assert np.mean(own["keras"] == labels) == pytest.approx(variant["top1"])
    for export in variant["tflite"]:
      assert np.mean(own[export["mode"]] == labels) == pytest.approx(
          export["tflite_top1"])


def test_each_difference_is_paired_against_the_baseline(run_dir):
  out, report = run_dir
  labels, predictions = load_predictions(out / "predictions.npz")
  baseline = report["variants"][0]
  reference = predictions["baseline"]["keras"]
  assert "significance" not in baseline
  assert report["statistics"]["bootstrap_resamples"] == 600
  pruned = next(v for v in report["variants"] if v["name"] == "pruned")
  targets = [(pruned, "keras")] + [(e, e["mode"]) for e in pruned["tflite"]]
  targets += [(e, e["mode"]) for e in baseline["tflite"]]
  for target, mode in targets:
    owner = "baseline" if target in baseline["tflite"] else "pruned"
    stat = target["significance"]["top1"]
    candidate = predictions[owner][mode]
    top1 = target.get("top1", target.get("tflite_top1"))
    assert stat["difference"] == pytest.approx(top1 - baseline["top1"])
    b = int(np.sum((reference == labels) & (candidate != labels)))
    c = int(np.sum((reference != labels) & (candidate == labels)))
    assert (stat["reference_only"], stat["candidate_only"]) == (b, c)
    expected_p = 1.0 if b + c == 0 else stats.binomtest(c, b + c).pvalue
    assert stat["p_value"] == pytest.approx(expected_p)
    again = significance.paired_bootstrap(labels, reference, candidate,
                                          num_resamples=600, seed=1)
    assert (stat["ci_low"], stat["ci_high"]) == (again["ci_low"],
                                                 again["ci_high"])
    assert stat["significant"] == (stat["ci_low"] > 0 or stat["ci_high"] < 0)


def test_per_class_intervals_hold_each_class(run_dir):
  _, report = run_dir
  baseline = report["variants"][0]
  rows = baseline["per_class_interval"]
  assert [r["accuracy"] for r in rows] == pytest.approx(
      baseline["per_class_accuracy"])
  assert sum(r["support"] for r in rows) == baseline["num_samples"]
  for row in rows:
    assert row["ci_low"] <= row["accuracy"] <= row["ci_high"]
  for export in baseline["tflite"]:
    assert len(export["per_class_interval"]) == len(rows)


def test_claims_say_only_what_the_interval_allows(run_dir):
  out, report = run_dir
  claims = report["statistics"]["claims"]
  pruned = next(v for v in report["variants"] if v["name"] == "pruned")
  text = next(c["text"] for c in claims
              if (c["variant"], c["mode"]) == ("pruned", "keras"))
  stat = pruned["significance"]["top1"]
  word = ("significantly better" if stat["ci_low"] > 0 else
          "significantly worse" if stat["ci_high"] < 0 else
          "not significant")
  assert text.startswith(f"pruned: {100 * stat['difference']:+.1f} pt top-1")
  assert word in text
  # baseline's 2 exports; pruned, distilled, student_scratch and their
  # exports; distilled against its control.
  assert len(claims) == 2 + 3 * 3 + 1
  markdown = (out / "report.md").read_text()
  html = (out / "report.html").read_text()
  assert "## What the differences mean" in markdown
  assert text in markdown
  assert 'id="significance"' in html
  assert "Per-class accuracy with intervals" in html
  saved = json.loads((out / "report.json").read_text())
  assert saved["statistics"] == report["statistics"]


def test_headline_under_imbalance_leads_the_claims():
  assert paired.paired_metrics(["balanced_accuracy", "macro_f1"]) == (
      "balanced_accuracy", "macro_f1", "top1")
  assert paired.paired_metrics(["top1", "topk"]) == ("top1",)


def test_bad_resample_count_is_refused(tmp_path):
  with pytest.raises(tf_compress.UserInputError, match="bootstrap_resamples"):
    tf_compress.RunConfig.from_flat(output_dir=str(tmp_path),
                                    bootstrap_resamples=0)
  assert not os.listdir(tmp_path)


def test_distilled_is_compared_with_its_scratch_control(run_dir):
  out, report = run_dir
  labels, predictions = load_predictions(out / "predictions.npz")
  by_name = {v["name"]: v for v in report["variants"]}
  control = by_name["distilled"]["control_significance"]
  assert control["control"] == "student_scratch"
  stat = control["top1"]
  assert stat["difference"] == pytest.approx(
      by_name["distilled"]["top1"] - by_name["student_scratch"]["top1"])
  mine = predictions["distilled"]["keras"]
  theirs = predictions["student_scratch"]["keras"]
  b = int(np.sum((theirs == labels) & (mine != labels)))
  c = int(np.sum((theirs != labels) & (mine == labels)))
  assert (stat["reference_only"], stat["candidate_only"]) == (b, c)
  claim = next(c["text"] for c in report["statistics"]["claims"]
               if c.get("control") == "student_scratch")
  assert claim.startswith("distilled: ")
  assert "against its control, student_scratch" in claim
  assert "Keras vs student_scratch" in (out / "report.md").read_text()
