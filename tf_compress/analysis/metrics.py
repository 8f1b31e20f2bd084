"""Classification metrics as pure functions of scores and labels.

Scores may be logits or probabilities: every metric here depends only on the
ranking of the classes for each sample.
"""

import numpy as np

__all__ = ["top_k_accuracy", "per_class_accuracy", "balanced_accuracy",
           "confusion_matrix", "classification_metrics",
           "precision_recall_f1", "macro_f1", "expected_calibration_error",
           "per_class_change"]


def _check(scores, labels):
  scores = np.asarray(scores)
  labels = np.asarray(labels).reshape(-1).astype(np.int64)
  if scores.ndim != 2:
    raise ValueError(f"scores must have shape (samples, classes), got "
                     f"{scores.shape}")
  if scores.shape[0] != labels.shape[0]:
    raise ValueError(f"{scores.shape[0]} score rows but {labels.shape[0]} "
                     "labels")
  if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
    raise ValueError(f"labels must be in [0, {scores.shape[1]}), got "
                     f"[{labels.min()}, {labels.max()}]")
  return scores, labels


def top_k_accuracy(scores, labels, k=1):
  """Fraction of samples whose label is among the k highest scores.

  Ties are broken by class index (lower first), like `np.argsort`'s stable
  order on negated scores, so the result is deterministic.

  Args:
    scores: (samples, classes) array of logits or probabilities.
    labels: (samples,) integer labels.
    k: how many top classes count as a hit; clipped to the class count.

  Returns:
    A float in [0, 1]; 0.0 for no samples.
  """
  scores, labels = _check(scores, labels)
  if k < 1:
    raise ValueError(f"k must be >= 1, got {k}")
  if labels.size == 0:
    return 0.0
  k = min(int(k), scores.shape[1])
  top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
  return float(np.mean(np.any(top == labels[:, None], axis=1)))


def confusion_matrix(labels, predictions, num_classes):
  """Counts[i, j] = samples of true class i predicted as class j."""
  labels = np.asarray(labels).reshape(-1).astype(np.int64)
  predictions = np.asarray(predictions).reshape(-1).astype(np.int64)
  matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
  np.add.at(matrix, (labels, predictions), 1)
  return matrix


def per_class_accuracy(scores, labels):
  """Recall of each class: correct / samples of that class.

  Returns:
    A list of floats, one per class; `None` for a class with no samples.
  """
  scores, labels = _check(scores, labels)
  matrix = confusion_matrix(labels, np.argmax(scores, axis=1),
                            scores.shape[1])
  support = matrix.sum(axis=1)
  return [float(matrix[c, c] / support[c]) if support[c] else None
          for c in range(scores.shape[1])]


def balanced_accuracy(scores, labels):
  """Mean per-class recall over the classes present in `labels`."""
  recalls = [r for r in per_class_accuracy(scores, labels) if r is not None]
  return float(np.mean(recalls)) if recalls else 0.0


def classification_metrics(scores, labels, top_k=3):
  """The report's standard metrics for one set of predictions.

  Args:
    scores: (samples, classes) logits or probabilities.
    labels: (samples,) integer labels.
    top_k: K of the top-K accuracy.

  Returns:
    Dict with `top1`, `topk`, `top_k` (the K used), `per_class_accuracy`,
    `balanced_accuracy`, `macro_f1`, `per_class_f1`, `ece` (expected
    calibration error, treating scores as logits), `confusion_matrix`
    (rows: true class, columns: predicted) and `num_samples`.
  """
  scores_array, labels_array = _check(scores, labels)
  matrix = confusion_matrix(labels_array, np.argmax(scores_array, axis=1),
                            scores_array.shape[1])
  return {
      "macro_f1": macro_f1(scores, labels),
      "ece": expected_calibration_error(scores, labels),
      "top1": top_k_accuracy(scores, labels, 1),
      "topk": top_k_accuracy(scores, labels, top_k),
      "top_k": int(min(top_k, np.asarray(scores).shape[1])),
      "per_class_accuracy": per_class_accuracy(scores, labels),
      "balanced_accuracy": balanced_accuracy(scores, labels),
      "per_class_f1": precision_recall_f1(scores, labels)["f1"],
      "confusion_matrix": matrix.tolist(),
      "num_samples": int(np.asarray(labels).size),
  }


def precision_recall_f1(scores, labels):
  """Per-class precision, recall and F1 of the argmax predictions.

  A class never predicted has precision 0; one never present has recall 0
  (scikit-learn's `zero_division=0` convention).

  Returns:
    Dict of three lists (`precision`, `recall`, `f1`) and `support`.
  """
  scores, labels = _check(scores, labels)
  matrix = confusion_matrix(labels, np.argmax(scores, axis=1),
                            scores.shape[1])
  true_pos = np.diag(matrix).astype(np.float64)
  predicted = matrix.sum(axis=0)
  support = matrix.sum(axis=1)
  precision = np.divide(true_pos, predicted, out=np.zeros_like(true_pos),
                        where=predicted > 0)
  recall = np.divide(true_pos, support, out=np.zeros_like(true_pos),
                     where=support > 0)
  denom = precision + recall
  f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom),
                 where=denom > 0)
  return {"precision": precision.tolist(), "recall": recall.tolist(),
          "f1": f1.tolist(), "support": support.astype(int).tolist()}


def macro_f1(scores, labels):
  """Unweighted mean F1 over the classes present in labels or predictions."""
  scores, labels = _check(scores, labels)
  result = precision_recall_f1(scores, labels)
  present = np.union1d(labels, np.argmax(scores, axis=1))
  return float(np.mean(np.asarray(result["f1"])[present]))


def _softmax(scores):
  shifted = scores - scores.max(axis=1, keepdims=True)
  exp = np.exp(shifted)
  return exp / exp.sum(axis=1, keepdims=True)


def expected_calibration_error(scores, labels, num_bins=15,
                               from_logits=True):
  """Expected calibration error with equal-width confidence bins.

  ECE = sum over bins of (bin size / n) * |accuracy(bin) - confidence(bin)|,
  with the confidence the top class probability; bins are (lo, hi].

  Args:
    scores: (samples, classes) logits (or probabilities with
      `from_logits=False`).
    labels: (samples,) integer labels.
    num_bins: number of equal-width bins over [0, 1].
    from_logits: apply a softmax first.

  Returns:
    A float in [0, 1].
  """
  scores, labels = _check(scores, labels)
  if labels.size == 0:
    return 0.0
  probs = _softmax(scores.astype(np.float64)) if from_logits else scores
  confidence = probs.max(axis=1)
  correct = (probs.argmax(axis=1) == labels).astype(np.float64)
  edges = np.linspace(0.0, 1.0, num_bins + 1)
  bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0,
                 num_bins - 1)
  ece = 0.0
  for b in range(num_bins):
    members = bins == b
    if members.any():
      ece += members.mean() * abs(correct[members].mean() -
                                  confidence[members].mean())
  return float(ece)


def per_class_change(reference, candidate, threshold=0.02):
  """Who pays for compression: per-class accuracy change against a reference.

  Args:
    reference: per-class accuracies of the reference (e.g. the baseline);
      `None` entries (absent classes) are skipped.
    candidate: per-class accuracies of the compressed model.
    threshold: a class whose accuracy fell by more than this is listed.

  Returns:
    Dict with `delta` (candidate - reference per class, None where unknown),
    `worst_class`, `worst_delta` and `classes_below_threshold`.
  """
  if len(reference) != len(candidate):
    raise ValueError(f"{len(reference)} reference classes but "
                     f"{len(candidate)} candidate classes")
  delta = [None if r is None or c is None else float(c - r)
           for r, c in zip(reference, candidate)]
  known = [(d, i) for i, d in enumerate(delta) if d is not None]
  worst = min(known) if known else (None, None)
  return {"delta": delta, "worst_class": worst[1], "worst_delta": worst[0],
          "threshold": threshold,
          "classes_below_threshold": [i for d, i in sorted(known)
                                      if d < -threshold]}
