"""Whether a difference between two models is real: paired statistics.

Two models evaluated on the same test samples are compared sample by
sample. `paired_bootstrap` resamples the samples (the same resample for
both models) and gives a percentile confidence interval of the metric's
difference; `mcnemar_exact` tests the discordant pairs of top-1
correctness; `wilson_interval` bounds one proportion, such as a class's
accuracy on its few test images; `seed_summary` summarises one figure over
independent seeds. All are pure functions of arrays.
"""

import math

import numpy as np
from scipy import stats

__all__ = ["PAIRED_METRICS", "paired_bootstrap", "mcnemar_exact",
           "compare_predictions", "wilson_interval", "per_class_intervals",
           "seed_summary"]

# Metrics of argmax predictions that `paired_bootstrap` can resample, named
# as in report.json.
PAIRED_METRICS = ("top1", "balanced_accuracy", "macro_f1")
# Resamples drawn at once: (chunk, samples) counts stay ~100 MB at 10^4
# samples.
_CHUNK = 500


def _as_labels(name, values, n=None):
  array = np.asarray(values)
  if array.ndim != 1:
    raise ValueError(f"{name} must be 1-D predicted labels, got shape "
                     f"{array.shape}")
  if not np.issubdtype(array.dtype, np.integer):
    if array.size and not np.all(np.equal(np.mod(array, 1), 0)):
      raise ValueError(f"{name} must hold integer class labels")
  array = array.astype(np.int64)
  if n is not None and array.shape[0] != n:
    raise ValueError(f"{name} has {array.shape[0]} entries but labels have "
                     f"{n}; compare predictions on the same samples")
  if array.size and array.min() < 0:
    raise ValueError(f"{name} has a negative class label {array.min()}")
  return array


def _check_inputs(labels, reference, candidate):
  labels = _as_labels("labels", labels)
  if labels.size == 0:
    raise ValueError("no samples to compare")
  reference = _as_labels("reference", reference, labels.size)
  candidate = _as_labels("candidate", candidate, labels.size)
  return labels, reference, candidate


def _check_confidence(confidence):
  if not 0 < confidence < 1:
    raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _onehot(values, num_classes):
  out = np.zeros((values.size, num_classes))
  out[np.arange(values.size), values] = 1.0
  return out


def _metric_from_counts(metric, weights, labels, predictions, num_classes):
  """`metric` under each row of sample weights (resample counts).

  Args:
    metric: one of `PAIRED_METRICS`.
    weights: (resamples, samples) how often each sample was drawn.
    labels: (samples,) true labels.
    predictions: (samples,) predicted labels.
    num_classes: K.

  Returns:
    (resamples,) values, computed as `analysis.metrics` defines them: the
    balanced accuracy averages the recalls of the classes present, macro-F1
    the F1s of the classes present in labels or predictions.
  """
  correct = (labels == predictions).astype(np.float64)
  if metric == "top1":
    return weights @ correct / weights.sum(axis=1)
  actual = weights @ _onehot(labels, num_classes)
  true_pos = weights @ (_onehot(labels, num_classes) * correct[:, None])
  if metric == "balanced_accuracy":
    present = actual > 0
    recall = np.divide(true_pos, actual, out=np.zeros_like(true_pos),
                       where=present)
    return recall.sum(axis=1) / present.sum(axis=1)
  predicted = weights @ _onehot(predictions, num_classes)
  total = actual + predicted
  present = total > 0
  f1 = np.divide(2 * true_pos, total, out=np.zeros_like(true_pos),
                 where=present)
  return f1.sum(axis=1) / present.sum(axis=1)


def paired_bootstrap(labels, reference, candidate, metric="top1",
                     num_resamples=2000, confidence=0.95, seed=0):
  """Paired bootstrap interval of `metric(candidate) - metric(reference)`.

  Every resample draws the test samples with replacement once and scores
  both models on that same draw, so the interval reflects how the two
  differ on the samples, not how hard the samples are.

  Args:
    labels: (samples,) true labels.
    reference: (samples,) the reference model's predicted labels.
    candidate: (samples,) the candidate model's predicted labels.
    metric: "top1", "balanced_accuracy" or "macro_f1".
    num_resamples: bootstrap resamples (>= 1).
    confidence: the interval's level, e.g. 0.95.
    seed: seed of the resampling; the same seed gives the same interval.

  Returns:
    Dict: `metric`, `reference` and `candidate` (the metric on all
    samples), `difference` (candidate minus reference), `ci_low`, `ci_high`
    (percentile interval), `confidence`, `num_resamples`, `seed` and
    `bootstrap_p` (two-sided: twice the smaller share of resampled
    differences on either side of 0, counted as (k + 1) / (resamples + 1)
    so that it is never 0; at most 1).

  Raises:
    ValueError: for mismatched or non-label arrays, an unknown metric or a
      bad level.
  """
  labels, reference, candidate = _check_inputs(labels, reference, candidate)
  if metric not in PAIRED_METRICS:
    raise ValueError(f"metric must be one of {PAIRED_METRICS}, got "
                     f"{metric!r}")
  if int(num_resamples) < 1:
    raise ValueError(f"num_resamples must be >= 1, got {num_resamples}")
  _check_confidence(confidence)
  num_classes = int(max(labels.max(), reference.max(), candidate.max())) + 1
  n = labels.size
  ones = np.ones((1, n))
  ref_value = float(_metric_from_counts(metric, ones, labels, reference,
                                        num_classes)[0])
  cand_value = float(_metric_from_counts(metric, ones, labels, candidate,
                                         num_classes)[0])
  rng = np.random.default_rng(seed)
  differences = []
  remaining = int(num_resamples)
  while remaining:
    chunk = min(remaining, _CHUNK)
    draws = rng.integers(0, n, size=(chunk, n))
    offsets = (np.arange(chunk)[:, None] * n + draws).ravel()
    weights = np.bincount(offsets, minlength=chunk * n).reshape(
        chunk, n).astype(np.float64)
    differences.append(
        _metric_from_counts(metric, weights, labels, candidate, num_classes)
        - _metric_from_counts(metric, weights, labels, reference,
                              num_classes))
    remaining -= chunk
  differences = np.concatenate(differences)
  # Exact zeros stay zero: identical predictions give [0, 0], not +-1e-17.
  differences[np.abs(differences) < 1e-12] = 0.0
  tail = (1 - confidence) / 2
  low, high = np.quantile(differences, [tail, 1 - tail])
  # (count + 1) / (resamples + 1): a p-value is never reported as 0.
  tail_count = min(np.sum(differences <= 0), np.sum(differences >= 0))
  p_value = min(1.0, 2 * (tail_count + 1) / (differences.size + 1))
  return {"metric": metric, "reference": ref_value, "candidate": cand_value,
          "difference": cand_value - ref_value, "ci_low": float(low),
          "ci_high": float(high), "confidence": float(confidence),
          "num_resamples": int(num_resamples), "seed": int(seed),
          "bootstrap_p": float(p_value)}


def mcnemar_exact(labels, reference, candidate):
  """McNemar's exact test on the top-1 correctness of two models.

  Only discordant samples count: `reference_only` (the reference right, the
  candidate wrong) and `candidate_only`. Under the null hypothesis each
  discordant sample goes either way with probability 1/2; the p-value is
  scipy's two-sided exact binomial test of `candidate_only` out of all
  discordant samples.

  Returns:
    Dict: `reference_only`, `candidate_only`, `p_value` (1.0 when no sample
    is discordant).
  """
  labels, reference, candidate = _check_inputs(labels, reference, candidate)
  ref_ok = reference == labels
  cand_ok = candidate == labels
  reference_only = int(np.sum(ref_ok & ~cand_ok))
  candidate_only = int(np.sum(cand_ok & ~ref_ok))
  discordant = reference_only + candidate_only
  p_value = (1.0 if discordant == 0 else
             float(stats.binomtest(candidate_only, discordant, 0.5).pvalue))
  return {"reference_only": reference_only,
          "candidate_only": candidate_only, "p_value": p_value}


def compare_predictions(labels, reference, candidate,
                        metrics=PAIRED_METRICS, num_resamples=2000,
                        confidence=0.95, seed=0):
  """Every paired statistic of a candidate against a reference.

  Args:
    labels, reference, candidate: as for `paired_bootstrap`.
    metrics: which of `PAIRED_METRICS` to compare.
    num_resamples, confidence, seed: as for `paired_bootstrap`; every
      metric uses the same resamples.

  Returns:
    `{metric: paired_bootstrap(...) + {"p_value", "test", "significant"}}`.
    For "top1" the p-value is McNemar's exact test (`test: "mcnemar"`,
    with its discordant counts); for the other metrics it is the bootstrap
    one (`test: "bootstrap"`). `significant` is True when the interval
    excludes 0, the rule the report's claims follow.
  """
  result = {}
  for metric in metrics:
    entry = paired_bootstrap(labels, reference, candidate, metric=metric,
                             num_resamples=num_resamples,
                             confidence=confidence, seed=seed)
    if metric == "top1":
      entry.update(mcnemar_exact(labels, reference, candidate))
      entry["test"] = "mcnemar"
    else:
      entry["p_value"] = entry["bootstrap_p"]
      entry["test"] = "bootstrap"
    entry["significant"] = bool(entry["ci_low"] > 0 or entry["ci_high"] < 0)
    result[metric] = entry
  return result


def wilson_interval(successes, total, confidence=0.95):
  """Wilson score interval of a proportion `successes / total`.

  Args:
    successes: the count of hits.
    total: the count of trials; 0 gives (None, None).
    confidence: the interval's level.

  Returns:
    `(low, high)`, computed by scipy's `binomtest(...).proportion_ci`.
  """
  _check_confidence(confidence)
  successes, total = int(successes), int(total)
  if total == 0:
    return None, None
  if not 0 <= successes <= total:
    raise ValueError(f"successes must be in [0, {total}], got {successes}")
  ci = stats.binomtest(successes, total).proportion_ci(
      confidence_level=confidence, method="wilson")
  return float(ci.low), float(ci.high)


def per_class_intervals(labels, predictions, num_classes=None,
                        confidence=0.95):
  """Wilson interval of each class's accuracy (recall).

  Returns:
    A list, one `{"accuracy", "ci_low", "ci_high", "support"}` per class;
    the first three are None for a class without test samples.
  """
  labels = _as_labels("labels", labels)
  predictions = _as_labels("predictions", predictions, labels.size)
  if num_classes is None:
    num_classes = int(max(labels.max(initial=0),
                          predictions.max(initial=0))) + 1
  rows = []
  for cls in range(int(num_classes)):
    mask = labels == cls
    support = int(mask.sum())
    hits = int(np.sum(predictions[mask] == cls))
    low, high = wilson_interval(hits, support, confidence)
    rows.append({"accuracy": hits / support if support else None,
                 "ci_low": low, "ci_high": high, "support": support})
  return rows


def seed_summary(values, confidence=0.95):
  """Mean, standard deviation and t interval of one figure over seeds.

  Args:
    values: one number per seed (None entries are left out).
    confidence: the interval's level.

  Returns:
    Dict: `values`, `n`, `mean`, `std` (sample standard deviation, ddof=1;
    None for one seed), `ci_low`, `ci_high` (Student's t interval of the
    mean; None for one seed). All None for no values.
  """
  _check_confidence(confidence)
  kept = [float(v) for v in values if v is not None]
  n = len(kept)
  out = {"values": kept, "n": n, "mean": None, "std": None, "ci_low": None,
         "ci_high": None}
  if not n:
    return out
  mean = float(np.mean(kept))
  out["mean"] = mean
  if n > 1:
    std = float(np.std(kept, ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(
        n)
    out.update(std=std, ci_low=mean - half, ci_high=mean + half)
  return out
