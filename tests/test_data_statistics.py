"""Tests of tf_compress.data.statistics (pure statistics functions)."""

import json

import numpy as np
import pytest
from sklearn.utils import class_weight

from tf_compress.data import statistics
from tf_compress.data import load_dataset
from tf_compress.errors import DataError


def _known_npz(path):
  """3 classes with 5/10/20 samples and known pixel values."""
  rng = np.random.default_rng(0)
  y = np.repeat([0, 1, 2], [5, 10, 20])
  x = rng.integers(0, 256, size=(35, 4, 4, 3), dtype=np.uint8)
  idx = rng.permutation(35)
  x, y = x[idx], y[idx]
  np.savez(path, x_train=x[:28], y_train=y[:28], x_test=x[28:],
           y_test=y[28:])
  return x, y


def test_streaming_stats_match_numpy_with_large_offset():
  rng = np.random.default_rng(1)
  x = (1e6 + rng.normal(size=(101, 3, 2, 4))).astype(np.float64)
  x[:, ..., 2] *= 50.0
  stats = statistics.streaming_channel_stats(x, chunk_size=7)
  assert stats["count"] == 101 * 3 * 2
  np.testing.assert_allclose(stats["mean"], x.mean(axis=(0, 1, 2)),
                             rtol=1e-12)
  np.testing.assert_allclose(stats["std"], x.std(axis=(0, 1, 2)), rtol=1e-9)
  assert all(isinstance(v, float) for v in stats["mean"] + stats["std"])


def test_streaming_stats_channel_axis_by_rank():
  rng = np.random.default_rng(2)
  table = rng.normal(5.0, 2.0, size=(50, 6)).astype(np.float32)
  stats = statistics.streaming_channel_stats(table, chunk_size=8)
  assert stats["count"] == 50
  np.testing.assert_allclose(stats["mean"], table.astype(np.float64).mean(0),
                             rtol=1e-9)
  np.testing.assert_allclose(stats["std"], table.astype(np.float64).std(0),
                             rtol=1e-9)
  gray = rng.integers(0, 256, size=(9, 5, 5), dtype=np.uint8)
  stats = statistics.streaming_channel_stats(gray, chunk_size=4)
  assert stats["count"] == 9 * 25
  np.testing.assert_allclose(stats["mean"], [gray.mean()], rtol=1e-12)
  np.testing.assert_allclose(stats["std"], [gray.std()], rtol=1e-9)


def test_streaming_stats_edge_cases():
  empty = statistics.streaming_channel_stats(np.zeros((0, 4, 4, 2)))
  assert empty == {"count": 0, "mean": [None, None], "std": [None, None]}
  with pytest.raises(ValueError, match="chunk_size"):
    statistics.streaming_channel_stats(np.zeros((3, 2)), chunk_size=0)


def test_class_statistics_match_sklearn():
  y = np.repeat([0, 1, 2], [5, 10, 20])
  stats = statistics.class_statistics(y)
  assert stats["per_class_counts"] == [5, 10, 20]
  assert stats["imbalance_ratio"] == 4.0
  assert stats["empty_classes"] == []
  expected = class_weight.compute_class_weight(
      "balanced", classes=np.arange(3), y=y)
  np.testing.assert_allclose(
      [stats["suggested_class_weights"][str(c)] for c in range(3)], expected)


def test_class_statistics_with_empty_class_is_json_safe():
  y = np.array([0, 0, 2, 2, 2, 2])
  stats = statistics.class_statistics(y, num_classes=4)
  assert stats["per_class_counts"] == [2, 0, 4, 0]
  assert stats["imbalance_ratio"] is None
  assert stats["empty_classes"] == [1, 3]
  weights = stats["suggested_class_weights"]
  assert weights["1"] is None and weights["3"] is None
  expected = class_weight.compute_class_weight(
      "balanced", classes=np.array([0, 2]), y=y)
  np.testing.assert_allclose([weights["0"], weights["2"]], expected)
  json.dumps(stats, allow_nan=False)
  with pytest.raises(DataError, match="num_classes=2"):
    statistics.class_statistics(y, num_classes=2)
  with pytest.raises(DataError, match="integers"):
    statistics.class_statistics(np.array([0.5, 1.0]))


def test_image_size_stats_and_recommended_size():
  sizes = [(10, 9), (14, 10), (20, 11), (30, 40), (10, 30)]
  stats = statistics.image_size_stats(sizes)
  heights = np.array([10, 14, 20, 30, 10])
  assert stats["count"] == 5
  assert stats["height"]["min"] == 10 and stats["height"]["max"] == 30
  assert stats["height"]["median"] == 14
  assert stats["height"]["mean"] == pytest.approx(heights.mean())
  assert stats["height"]["p10"] == pytest.approx(np.percentile(heights, 10))
  assert stats["width"]["p90"] == pytest.approx(
      np.percentile([9, 10, 11, 40, 30], 90))
  # median height 14 -> 16, median width 11 -> 8 (nearest multiples of 8).
  assert stats["recommended_size"] == [16, 8]
  assert stats["most_common"][0] == {"height": 10, "width": 9, "count": 1}
  assert stats["aspect_ratio"] == pytest.approx(
      np.median([0.9, 10 / 14, 11 / 20, 40 / 30, 3.0]))
  tiny = statistics.image_size_stats([(2, 3), (2, 3), (5, 5)])
  assert tiny["recommended_size"] == [8, 8]
  assert tiny["most_common"][0] == {"height": 2, "width": 3, "count": 2}
  with pytest.raises(DataError, match="at least one"):
    statistics.image_size_stats([])


def test_analyze_arrays_matches_numpy(tmp_path):
  x, y = _known_npz(tmp_path / "known.npz")
  result = statistics.analyze_arrays(x, y, chunk_size=7)
  assert result["num_samples"] == 35
  assert result["feature_shape"] == [4, 4, 3]
  assert result["num_classes"] == 3
  assert result["per_class_counts"] == [5, 10, 20]
  assert result["imbalance_ratio"] == 4.0
  np.testing.assert_allclose(result["channel_stats"]["mean"],
                             x.mean(axis=(0, 1, 2)), rtol=1e-12)
  np.testing.assert_allclose(result["channel_stats"]["std"],
                             x.std(axis=(0, 1, 2)), rtol=1e-9)
  assert result["value_min"] == int(x.min())
  assert result["value_max"] == int(x.max())
  with pytest.raises(DataError, match="35 samples but y has 34"):
    statistics.analyze_arrays(x, y[:34])


def test_analyze_dataset_on_npz(tmp_path):
  path = tmp_path / "known.npz"
  x, y = _known_npz(path)
  splits = load_dataset(str(path), validation_fraction=0.25, seed=3)
  result = splits.analyze()
  json.dumps(result, allow_nan=False)
  assert result["name"] == "known"
  assert result["source_kind"] == "npz"
  assert result["class_names"] == ["0", "1", "2"]
  assert result["channel_stats_units"] == "raw"
  assert result["per_class_counts"] == [5, 10, 20]
  assert result["imbalance_ratio"] == 4.0
  np.testing.assert_allclose(
      [result["suggested_class_weights"][str(c)] for c in range(3)],
      class_weight.compute_class_weight("balanced", classes=np.arange(3),
                                        y=y))
  np.testing.assert_allclose(result["channel_stats"]["mean"],
                             x.mean(axis=(0, 1, 2)), rtol=1e-12)
  assert result["splits"] == {"train": 21, "validation": 7, "test": 7}
  for name, labels in (("train", splits.y_train),
                       ("validation", splits.y_val),
                       ("test", splits.y_test)):
    assert result["split_class_counts"][name] == np.bincount(
        labels, minlength=3).tolist()
  assert result["input_shape"] == [4, 4, 3]
  assert result["value_range"] == [0.0, 1.0]
  assert result["normalization"]["mode"] == "scale"
  assert "image_sizes" not in result


def test_format_analysis_shows_key_figures(tmp_path):
  x, y = _known_npz(tmp_path / "k.npz")
  text = statistics.format_analysis(statistics.analyze_arrays(x, y))
  assert "Samples: 35" in text
  assert "Imbalance ratio (largest / smallest class): 4" in text
  lines = text.splitlines()
  row = next(line for line in lines if line.startswith("2 "))
  assert row.split()[2] == "20"
  assert f"{x[..., 0].mean():.4g}" in text
