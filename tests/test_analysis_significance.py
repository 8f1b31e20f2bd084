"""Tests of tf_compress.analysis.significance against independent sums."""

import math

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as sk_metrics

from tf_compress import analysis
from tf_compress.analysis import significance


def _predictions(n=300, classes=5, ref_acc=0.8, cand_acc=0.75, seed=0):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, classes, n)

  def model(accuracy):
    wrong = (labels + rng.integers(1, classes, n)) % classes
    return np.where(rng.random(n) < accuracy, labels, wrong)

  return labels, model(ref_acc), model(cand_acc)


@pytest.mark.parametrize("metric", significance.PAIRED_METRICS)
def test_identical_predictions_give_zero_interval_and_p_one(metric):
  labels, reference, _ = _predictions()
  result = significance.compare_predictions(
      labels, reference, reference.copy(), metrics=(metric,))[metric]
  assert result["difference"] == 0.0
  assert (result["ci_low"], result["ci_high"]) == (0.0, 0.0)
  assert result["p_value"] == 1.0
  assert not result["significant"]


def test_point_estimates_equal_the_report_metrics():
  labels, reference, candidate = _predictions()
  scores = np.eye(5)[candidate]
  result = significance.compare_predictions(labels, reference, candidate)
  assert result["top1"]["candidate"] == pytest.approx(
      analysis.top_k_accuracy(scores, labels, 1), abs=1e-12)
  assert result["balanced_accuracy"]["candidate"] == pytest.approx(
      analysis.balanced_accuracy(scores, labels), abs=1e-12)
  assert result["macro_f1"]["candidate"] == pytest.approx(
      analysis.macro_f1(scores, labels), abs=1e-12)
  ref_top1 = np.mean(reference == labels)
  assert result["top1"]["difference"] == pytest.approx(
      np.mean(candidate == labels) - ref_top1, abs=1e-12)


def test_mcnemar_equals_a_hand_computed_exact_test():
  labels = np.zeros(20, dtype=int)
  reference = np.zeros(20, dtype=int)
  candidate = np.zeros(20, dtype=int)
  reference[:7] = 1   # reference wrong on 7 ...
  candidate[5:7] = 1  # ... candidate wrong on 2 of them ...
  candidate[10:11] = 1  # ... and on one the reference gets right.
  result = significance.mcnemar_exact(labels, reference, candidate)
  assert (result["reference_only"], result["candidate_only"]) == (1, 5)
  # Two-sided exact binomial: 2 * P(X <= 1), X ~ Bin(6, 1/2).
  hand = 2 * (math.comb(6, 0) + math.comb(6, 1)) / 2 ** 6
  assert result["p_value"] == pytest.approx(hand, abs=1e-12)
  assert result["p_value"] == pytest.approx(
      stats.binomtest(5, 6, 0.5).pvalue, abs=1e-12)


def test_mcnemar_counts_only_discordant_pairs():
  labels, reference, candidate = _predictions(n=500, seed=3)
  result = significance.mcnemar_exact(labels, reference, candidate)
  b = int(np.sum((reference == labels) & (candidate != labels)))
  c = int(np.sum((reference != labels) & (candidate == labels)))
  assert (result["reference_only"], result["candidate_only"]) == (b, c)
  assert result["p_value"] == pytest.approx(
      stats.binomtest(c, b + c, 0.5).pvalue)


def test_tiny_bootstrap_matches_its_exact_distribution():
  # Only sample 0 differs (candidate right, reference wrong), so a resample's
  # difference is k/3 with k ~ Bin(3, 1/3): P = 8/27, 12/27, 6/27, 1/27.
  # CDF(2/3) = 26/27 = 0.963: the 90% interval is [0, 2/3], the 95% one
  # [0, 1].
  labels = np.array([0, 1, 1])
  reference = np.array([1, 1, 1])
  candidate = np.array([0, 1, 1])
  for confidence, high in ((0.90, 2 / 3), (0.95, 1.0)):
    result = significance.paired_bootstrap(
        labels, reference, candidate, num_resamples=20000,
        confidence=confidence, seed=1)
    assert result["difference"] == pytest.approx(1 / 3)
    assert result["ci_low"] == 0.0
    assert result["ci_high"] == pytest.approx(high)


def _top1(labels, predictions, axis=-1):
  return np.mean(labels == predictions, axis=axis)


def _scipy_interval(labels, reference, candidate, fn, vectorized):
  if vectorized:
    def statistic(lab, ref, cand, axis=-1):
      return fn(lab, cand, axis=axis) - fn(lab, ref, axis=axis)
  else:
    def statistic(lab, ref, cand):
      return fn(lab, cand) - fn(lab, ref)

  # sklearn's metrics are called once per resample: fewer resamples there.
  result = stats.bootstrap((labels, reference, candidate), statistic,
                           paired=True, vectorized=vectorized,
                           n_resamples=4000 if vectorized else 800,
                           method="percentile", random_state=7)
  return result.confidence_interval.low, result.confidence_interval.high


@pytest.mark.parametrize("metric,fn,vectorized", [
    ("top1", _top1, True),
    ("balanced_accuracy", sk_metrics.balanced_accuracy_score, False),
    ("macro_f1", lambda y, p: sk_metrics.f1_score(y, p, average="macro"),
     False),
], ids=["top1", "balanced_accuracy", "macro_f1"])
def test_interval_agrees_with_scipy_bootstrap(metric, fn, vectorized):
  labels, reference, candidate = _predictions(n=200, seed=5)
  ours = significance.paired_bootstrap(labels, reference, candidate,
                                       metric=metric, num_resamples=4000,
                                       seed=2)
  assert ours["difference"] == pytest.approx(
      fn(labels, candidate) - fn(labels, reference), abs=1e-12)
  low, high = _scipy_interval(labels, reference, candidate, fn, vectorized)
  # Two independent Monte Carlo estimates of the same percentiles (the
  # difference's spread is about 0.04 here).
  tolerance = 0.01 if vectorized else 0.02
  assert ours["ci_low"] == pytest.approx(low, abs=tolerance)
  assert ours["ci_high"] == pytest.approx(high, abs=tolerance)
  assert ours["ci_low"] < ours["difference"] < ours["ci_high"]


def test_bootstrap_is_seeded_and_resamples_are_settable():
  labels, reference, candidate = _predictions()
  first = significance.paired_bootstrap(labels, reference, candidate,
                                        num_resamples=700, seed=4)
  again = significance.paired_bootstrap(labels, reference, candidate,
                                        num_resamples=700, seed=4)
  other = significance.paired_bootstrap(labels, reference, candidate,
                                        num_resamples=700, seed=5)
  assert first == again
  assert first["num_resamples"] == 700
  assert (other["ci_low"], other["ci_high"]) != (first["ci_low"],
                                                 first["ci_high"])


def test_a_large_real_gap_is_significant():
  labels, reference, candidate = _predictions(n=2000, ref_acc=0.9,
                                              cand_acc=0.7)
  result = significance.compare_predictions(labels, reference, candidate)
  for metric in significance.PAIRED_METRICS:
    assert result[metric]["significant"], metric
    assert result[metric]["ci_high"] < 0
  assert result["top1"]["p_value"] < 1e-10
  assert result["top1"]["test"] == "mcnemar"
  assert result["macro_f1"]["test"] == "bootstrap"


@pytest.mark.parametrize("k,n", [(0, 10), (7, 18), (18, 18), (390, 400)])
def test_wilson_interval_equals_the_formula(k, n):
  z = stats.norm.ppf(0.975)
  p = k / n
  centre = (p + z * z / (2 * n)) / (1 + z * z / n)
  half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
  low, high = significance.wilson_interval(k, n)
  assert low == pytest.approx(max(0.0, centre - half), abs=1e-9)
  assert high == pytest.approx(min(1.0, centre + half), abs=1e-9)


def test_per_class_intervals_widen_with_fewer_samples():
  labels = np.array([0] * 18 + [1] * 400)
  predictions = labels.copy()
  predictions[:2] = 1                    # class 0: 16 / 18
  predictions[18:18 + 44] = 0            # class 1: 356 / 400
  rows = significance.per_class_intervals(labels, predictions,
                                          num_classes=3)
  assert rows[0]["accuracy"] == pytest.approx(16 / 18)
  assert rows[1]["accuracy"] == pytest.approx(356 / 400)
  width = [r["ci_high"] - r["ci_low"] for r in rows[:2]]
  assert width[0] > 3 * width[1]
  assert rows[2] == {"accuracy": None, "ci_low": None, "ci_high": None,
                     "support": 0}


def test_seed_summary_equals_hand_values():
  summary = significance.seed_summary([0.9, 0.92, None, 0.94])
  assert summary["n"] == 3
  assert summary["mean"] == pytest.approx(0.92)
  assert summary["std"] == pytest.approx(0.02)
  half = stats.t.ppf(0.975, 2) * 0.02 / math.sqrt(3)
  assert summary["ci_low"] == pytest.approx(0.92 - half)
  assert summary["ci_high"] == pytest.approx(0.92 + half)
  one = significance.seed_summary([0.5])
  assert (one["mean"], one["std"], one["ci_low"]) == (0.5, None, None)


@pytest.mark.parametrize("kwargs,match", [
    (dict(candidate=[0, 1]), "same samples"),
    (dict(metric="auc"), "metric must be"),
    (dict(confidence=1.5), "confidence"),
    (dict(num_resamples=0), "num_resamples"),
    (dict(candidate=[0.5, 1, 0]), "integer"),
], ids=["length", "metric", "confidence", "resamples", "float-labels"])
def test_bad_arguments_are_named(kwargs, match):
  args = dict(labels=[0, 1, 1], reference=[0, 1, 0], candidate=[0, 1, 1])
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    significance.paired_bootstrap(**args)
