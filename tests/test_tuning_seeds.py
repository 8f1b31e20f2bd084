"""The tuner with `--seeds` in place of folds."""

import numpy as np
import pytest

import tf_compress
from tf_compress.errors import UserInputError
from tf_compress.pipeline.tuning import tuner
from tf_compress.pipeline.tuning.space import SearchSpace
from tf_compress.pipeline.tuning.tune_config import TuneConfig


def _tune(tmp_path, **overrides):
  train = tf_compress.TrainConfig(
      model="mlp", epochs=1, verbose=0, seed=5, seeds=(3, 1, 4),
      export=("float32",), benchmark_runs=0)
  values = dict(train=train, output_dir=str(tmp_path),
                space=SearchSpace(prune_sparsity=(0.3, 0.9)),
                objectives=("accuracy", "gzip_bytes"), trials=2,
                final_eval=False)
  values.update(overrides)
  return TuneConfig(**values)


def test_each_seed_is_one_evaluation_on_the_validation_split(tmp_path,
                                                             digits):
  baseline_seeds = []

  def fake_baseline(config, fold, index, cache, latency=False):
    del cache, latency
    baseline_seeds.append((index, config.fit.seed, config.fit.seeds))
    return {"fold": index, "val_accuracy": 0.5, "gzip_bytes": 100,
            "p50_ms": None, "num_train": fold.num_train}

  def fake_evaluate(config, fold, baseline, settings, callbacks=(),
                    workdir=None):
    del settings, callbacks, workdir
    # A score that depends on the seed and the trial's sparsity only.
    return {"accuracy": config.fit.seed / 10 + config.prune.sparsity,
            "balanced_accuracy": None, "gzip_bytes": fold.num_val,
            "p50_ms": None, "robust_accuracy": None,
            "baseline_accuracy": baseline["val_accuracy"],
            "export": "float32", "stages": ["prune"]}

  study, context = tuner.run_search(_tune(tmp_path), digits, fake_evaluate,
                                    fake_baseline)
  assert baseline_seeds == [(0, 3, ()), (1, 1, ()), (2, 4, ())]
  assert [f.num_val for f in context.folds] == [digits.num_val] * 3
  np.testing.assert_array_equal(context.folds[2].y_val, digits.y_val)
  for trial in study.trials:
    sparsity = trial.params["prune_sparsity"]
    got = [f["accuracy"] for f in trial.user_attrs["folds"]]
    assert got == pytest.approx([0.3 + sparsity, 0.1 + sparsity,
                                 0.4 + sparsity])
    assert trial.values[0] == pytest.approx(np.mean(got))
    assert trial.user_attrs["std"]["accuracy"] == pytest.approx(
        np.std(got))


def test_seeds_and_folds_together_are_refused(tmp_path):
  with pytest.raises(UserInputError, match="cv_folds.*--seeds"):
    _tune(tmp_path, cv_folds=3)
