"""One trial on one fold: the combined variant built, exported and measured."""

import math

import numpy as np
import optuna
import pytest

import tf_compress
from tf_compress.pipeline.tuning import baselines
from tf_compress.pipeline.tuning import cv
from tf_compress.pipeline.tuning import evaluate
from tf_compress.pipeline.tuning.early_stopping import HopelessTrialStopper


def _config(**overrides):
  values = dict(model="mlp", width=0.5, epochs=2, learning_rate=0.01,
                batch_size=64, finetune_epochs=1, verbose=0, seed=1,
                export=("float32",), benchmark_runs=3, benchmark_warmup=1,
                prune_sparsity=0.5, prune_frequency=2)
  values.update(overrides)
  return tf_compress.TrainConfig(**values)


@pytest.fixture(scope="module")
def fold(digits):
  return cv.fold_splits(digits, 0, seed=0)[0][0]


@pytest.fixture(scope="module")
def baseline(fold, tmp_path_factory):
  return baselines.fold_baseline(_config(), fold, 0,
                                 str(tmp_path_factory.mktemp("b")))


@pytest.fixture(scope="module")
def measured(fold, baseline):
  config = _config(export=("dynamic",))
  return evaluate.evaluate_fold(config, fold, baseline,
                                {"latency": True, "robust": ("fgsm", 0.1)})


def test_scores_of_a_pruned_dynamic_range_trial(measured, baseline):
  assert measured["stages"] == ["prune"] and measured["export"] == "dynamic"
  assert 0.5 < measured["accuracy"] <= 1.0
  assert 0.5 < measured["balanced_accuracy"] <= 1.0
  # Pruned to 50% and int8 weights: well below the float32 baseline file.
  assert measured["gzip_bytes"] < 0.6 * baseline["gzip_bytes"]
  assert measured["p50_ms"] > 0
  assert 0.0 <= measured["robust_accuracy"] <= measured["accuracy"] + 0.05
  assert measured["baseline_accuracy"] == baseline["val_accuracy"]


def test_callbacks_reach_the_chain_fits(fold, baseline):
  stopper = HopelessTrialStopper(1.01)  # nothing reaches 101%
  with pytest.raises(optuna.TrialPruned):
    evaluate.evaluate_fold(_config(), fold, baseline,
                           {"latency": False, "robust": None},
                           callbacks=[stopper])
  assert stopper.stopped_epoch == 1 and len(stopper.history) == 1


def test_mirrored_strategy_gives_a_finite_score(fold, baseline, logical_cpus):
  del logical_cpus
  config = _config(strategy="mirrored", num_cpu_devices=2)
  scores = evaluate.evaluate_fold(config, fold, baseline,
                                  {"latency": False, "robust": None})
  assert math.isfinite(scores["accuracy"]) and scores["accuracy"] > 0.5
  assert scores["gzip_bytes"] > 0


def test_summarize_means_and_population_std():
  folds = [{"accuracy": 0.9, "gzip_bytes": 100, "baseline_accuracy": 0.95,
            "p50_ms": None},
           {"accuracy": 0.8, "gzip_bytes": 140, "baseline_accuracy": 0.93,
            "p50_ms": None}]
  mean, std = evaluate.summarize(folds)
  assert mean["accuracy"] == pytest.approx(0.85)
  assert std["accuracy"] == pytest.approx(np.std([0.9, 0.8]))
  assert mean["gzip_bytes"] == 120 and std["gzip_bytes"] == 20
  assert mean["baseline_accuracy"] == pytest.approx(0.94)
  assert mean["p50_ms"] is None and mean["robust_accuracy"] is None


def test_trial_config_is_a_replace_of_the_base():
  base = _config(prune_sparsity=None)
  trial = base.replace(prune_sparsity=0.7, export=("int8",))
  assert trial.fit == base.fit and trial.data == base.data
