"""Classification metrics as pure functions of scores and labels.

Scores may be logits or probabilities: every metric here depends only on the
ranking of the classes for each sample.
"""

import numpy as np

__all__ = ["top_k_accuracy", "per_class_accuracy", "balanced_accuracy",
           "confusion_matrix", "classification_metrics"]


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
    `balanced_accuracy` and `num_samples`.
  """
  return {
      "top1": top_k_accuracy(scores, labels, 1),
      "topk": top_k_accuracy(scores, labels, top_k),
      "top_k": int(min(top_k, np.asarray(scores).shape[1])),
      "per_class_accuracy": per_class_accuracy(scores, labels),
      "balanced_accuracy": balanced_accuracy(scores, labels),
      "num_samples": int(np.asarray(labels).size),
  }
