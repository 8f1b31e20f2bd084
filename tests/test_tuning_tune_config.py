"""TuneConfig validation and the fingerprint a resumed study must match."""

import dataclasses

import pytest

import tf_compress
from tf_compress.errors import UserInputError
from tf_compress.pipeline.tuning.tune_config import TuneConfig
from tf_compress.pipeline.tuning.space import SearchSpace

SPACE = SearchSpace(prune_sparsity=(0.5, 0.9))


def _config(**kwargs):
  values = dict(space=SPACE, output_dir="/tmp/x")
  values.update(kwargs)
  return TuneConfig(**values)


def test_defaults():
  config = _config()
  assert config.objectives == ("accuracy", "gzip_bytes")
  assert config.directions == ["maximize", "minimize"]
  assert config.cv_folds == 0 and config.trials == 20
  assert config.constraints.active() == []
  assert _config(objectives="accuracy,p50_ms").objectives == ("accuracy",
                                                               "p50_ms")


@pytest.mark.parametrize("kwargs,message", [
    (dict(space=SearchSpace()), "search space is empty"),
    (dict(objectives=("accuracy", "nope")), "unknown objective 'nope'"),
    (dict(cv_folds=1), "--cv_folds must be 0"),
    (dict(cv_folds=-1), "--cv_folds must be 0"),
    (dict(trials=0), "--trials must be >= 1"),
    (dict(timeout=0), "--timeout must be"),
    (dict(storage="study.db"), "--storage must be an Optuna RDB URL"),
    (dict(sampler="random"), "--sampler must be one of"),
    (dict(early_stop_margin=-0.1), "--early_stop_margin must be >= 0"),
    (dict(robust_attack="cw"), "--robust_attack must be one of"),
    (dict(grace_period=5, heartbeat_interval=10), "--grace_period must be "
     "above --heartbeat_interval"),
    (dict(max_accuracy_drop=-1.0), "--max_accuracy_drop must be"),
    (dict(max_latency_ms=1.0, train=tf_compress.TrainConfig(
        benchmark_runs=0)), "--benchmark_runs must be >= 1"),
    (dict(train="not a config"), "--train must be a RunConfig"),
], ids=["empty_space", "objective", "one_fold", "negative_folds", "trials",
        "timeout", "storage", "sampler", "margin", "attack", "grace",
        "drop", "latency_runs", "train"])
def test_bad_values_name_the_flag(kwargs, message):
  with pytest.raises(UserInputError, match=message):
    _config(**kwargs)


def test_fingerprint_ignores_where_and_how_loud():
  config = _config()
  moved = dataclasses.replace(config, train=config.train.replace(
      output_dir="/elsewhere", verbose=0), trials=50,
                              max_accuracy_drop=0.01)
  assert moved.fingerprint() == config.fingerprint()
  for changed in (
      dataclasses.replace(config, cv_folds=3),
      dataclasses.replace(config, objectives=("accuracy",)),
      dataclasses.replace(config, space=SearchSpace(slice_ratio=(0.1, 0.2))),
      dataclasses.replace(config, train=config.train.replace(epochs=3))):
    assert changed.fingerprint() != config.fingerprint()
