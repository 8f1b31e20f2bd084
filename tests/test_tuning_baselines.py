"""Per-fold baselines: trained once, cached on disk, retrained on change."""

import dataclasses
import json

import numpy as np
import pytest

import tf_compress
from tf_compress.analysis import top_k_accuracy
from tf_compress.pipeline.tuning import baselines
from tf_compress.pipeline.tuning import cv


def _config(**overrides):
  values = dict(model="mlp", width=0.5, epochs=1, learning_rate=0.01,
                batch_size=64, verbose=0, seed=2)
  values.update(overrides)
  return tf_compress.TrainConfig(**values)


@pytest.fixture(scope="module")
def fold(digits):
  return cv.fold_splits(digits, 0, seed=0)[0][0]


@pytest.fixture(scope="module")
def cached(fold, tmp_path_factory):
  cache = tmp_path_factory.mktemp("baselines")
  first = baselines.fold_baseline(_config(), fold, 0, str(cache))
  return cache, first


def test_trained_once_then_loaded(cached, fold):
  cache, first = cached
  assert first["trained"] and first["num_train"] == fold.num_train
  second = baselines.fold_baseline(_config(), fold, 0, str(cache))
  assert not second["trained"]
  assert second["key"] == first["key"]
  assert second["val_accuracy"] == first["val_accuracy"]
  saved = json.loads((cache / "fold0.json").read_text())
  assert saved["key"] == first["key"] and saved["gzip_bytes"] > 0
  assert (cache / "fold0_float32.tflite").stat().st_size > 0


def test_cached_metrics_match_the_saved_model(cached, fold):
  _, info = cached
  model = baselines.load_baseline(info)
  scores = model.predict(fold.x_val, verbose=0)
  assert info["val_accuracy"] == pytest.approx(
      top_k_accuracy(scores, fold.y_val, 1), abs=1e-9)
  assert 0.3 < info["val_accuracy"] <= 1.0
  assert info["p50_ms"] is None  # latency not asked for


def test_key_follows_recipe_and_data(fold):
  key = baselines.baseline_key(_config(), fold)
  assert key == baselines.baseline_key(_config(), fold)
  assert key != baselines.baseline_key(_config(epochs=2), fold)
  assert key != baselines.baseline_key(_config(seed=3), fold)
  # Compression settings do not change the baseline.
  assert key == baselines.baseline_key(_config(prune_sparsity=0.5,
                                               finetune_epochs=4), fold)
  shifted = dataclasses.replace(fold, y_val=np.roll(fold.y_val, 1))
  assert key != baselines.baseline_key(_config(), shifted)


def test_stale_or_damaged_cache_retrains(cached, fold, tmp_path):
  cache, first = cached
  for name in ("fold0.keras", "fold0.json", "fold0_float32.tflite"):
    (tmp_path / name).write_bytes((cache / name).read_bytes())
  (tmp_path / "fold0.json").write_text("{not json")
  again = baselines.fold_baseline(_config(), fold, 0, str(tmp_path),
                                  latency=False)
  assert again["trained"] and again["key"] == first["key"]
  # Same seed and data: the retrained baseline scores the same.
  assert again["val_accuracy"] == pytest.approx(first["val_accuracy"],
                                                abs=0.02)


def test_latency_is_added_to_a_cached_baseline(cached, fold):
  cache, _ = cached
  info = baselines.fold_baseline(_config(benchmark_runs=3), fold, 0,
                                 str(cache), latency=True)
  assert not info["trained"] and info["p50_ms"] > 0
  saved = json.loads((cache / "fold0.json").read_text())
  assert saved["p50_ms"] == info["p50_ms"]
