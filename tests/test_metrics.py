"""Metrics equal scikit-learn's and hand-computed values."""

import numpy as np
import pytest
from sklearn import metrics as skm

from tf_compress.analysis import metrics


@pytest.fixture(scope="module")
def scores_labels():
  rng = np.random.default_rng(3)
  labels = rng.integers(0, 5, size=300)
  scores = rng.normal(size=(300, 5))
  scores[np.arange(300), labels] += rng.normal(1.0, 1.0, size=300)
  return scores, labels


def test_hand_computed_top_k():
  scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5],
                     [0.6, 0.1, 0.3]])
  labels = np.array([1, 1, 0, 2])
  assert metrics.top_k_accuracy(scores, labels, 1) == 0.25
  assert metrics.top_k_accuracy(scores, labels, 2) == 0.75
  assert metrics.top_k_accuracy(scores, labels, 3) == 1.0
  assert metrics.top_k_accuracy(scores, labels, 10) == 1.0


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_matches_sklearn(scores_labels, k):
  scores, labels = scores_labels
  expected = skm.top_k_accuracy_score(labels, scores, k=k, labels=range(5))
  assert metrics.top_k_accuracy(scores, labels, k) == pytest.approx(expected)


def test_per_class_and_balanced_match_sklearn(scores_labels):
  scores, labels = scores_labels
  predictions = scores.argmax(axis=1)
  recall = skm.recall_score(labels, predictions, average=None)
  np.testing.assert_allclose(metrics.per_class_accuracy(scores, labels),
                             recall)
  assert metrics.balanced_accuracy(scores, labels) == pytest.approx(
      skm.balanced_accuracy_score(labels, predictions))
  np.testing.assert_array_equal(
      metrics.confusion_matrix(labels, predictions, 5),
      skm.confusion_matrix(labels, predictions, labels=range(5)))


def test_absent_class_is_none_and_skipped_by_balanced():
  scores = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
  labels = np.array([0, 1, 1])
  assert metrics.per_class_accuracy(scores, labels) == [1.0, 0.5, None]
  assert metrics.balanced_accuracy(scores, labels) == 0.75


def test_classification_metrics_keys(scores_labels):
  scores, labels = scores_labels
  result = metrics.classification_metrics(scores, labels, top_k=3)
  assert result["top_k"] == 3
  assert result["num_samples"] == 300
  assert result["top1"] == pytest.approx(
      skm.accuracy_score(labels, scores.argmax(1)))
  assert len(result["per_class_accuracy"]) == 5
  predictions = scores.argmax(1)
  np.testing.assert_array_equal(
      result["confusion_matrix"],
      skm.confusion_matrix(labels, predictions, labels=range(5)))
  np.testing.assert_allclose(
      result["per_class_f1"], skm.f1_score(labels, predictions, average=None))
  assert result["macro_f1"] == pytest.approx(
      skm.f1_score(labels, predictions, average="macro"))
  assert result["balanced_accuracy"] == pytest.approx(
      skm.balanced_accuracy_score(labels, predictions))


@pytest.mark.parametrize("scores,labels,pattern", [
    (np.zeros((3,)), [0, 1, 2], "shape"),
    (np.zeros((3, 2)), [0, 1], "3 score rows but 2 labels"),
    (np.zeros((2, 2)), [0, 5], r"labels must be in \[0, 2\)"),
], ids=["rank", "count", "range"])
def test_bad_inputs(scores, labels, pattern):
  with pytest.raises(ValueError, match=pattern):
    metrics.top_k_accuracy(scores, labels)


def test_precision_recall_f1_and_macro_f1_match_sklearn(scores_labels):
  scores, labels = scores_labels
  predictions = scores.argmax(axis=1)
  result = metrics.precision_recall_f1(scores, labels)
  p, r, f, s = skm.precision_recall_fscore_support(
      labels, predictions, labels=range(5), zero_division=0)
  np.testing.assert_allclose(result["precision"], p)
  np.testing.assert_allclose(result["recall"], r)
  np.testing.assert_allclose(result["f1"], f)
  assert result["support"] == s.tolist()
  assert metrics.macro_f1(scores, labels) == pytest.approx(
      skm.f1_score(labels, predictions, average="macro"))


def test_expected_calibration_error_by_hand():
  # Two bins used: confidences 0.9 (both right) and 0.6 (one of two right).
  probs = np.array([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4], [0.4, 0.6]])
  labels = np.array([0, 1, 0, 0])
  ece = metrics.expected_calibration_error(probs, labels, num_bins=10,
                                           from_logits=False)
  assert ece == pytest.approx(0.5 * abs(1.0 - 0.9) + 0.5 * abs(0.5 - 0.6))
  logits = np.log(probs)
  assert metrics.expected_calibration_error(logits, labels, 10) == (
      pytest.approx(ece))


def test_per_class_change_lists_who_pays():
  change = metrics.per_class_change([0.9, 1.0, None, 0.8],
                                    [0.95, 0.9, 0.7, 0.79], threshold=0.02)
  np.testing.assert_allclose(change["delta"][:2], [0.05, -0.1])
  assert change["delta"][2] is None
  assert change["worst_class"] == 1
  assert change["classes_below_threshold"] == [1]
  with pytest.raises(ValueError, match="2 reference classes"):
    metrics.per_class_change([0.1, 0.2], [0.1])
