"""The search: fold scores, resumption, and no access to test labels."""

import dataclasses

import numpy as np
from optuna.trial import TrialState
import pytest
from sklearn.model_selection import StratifiedKFold

import tf_compress
from tf_compress.errors import UserInputError
from tf_compress.pipeline.tuning import tuner
from tf_compress.pipeline.tuning.tune_config import TuneConfig
from tf_compress.pipeline.tuning.space import SearchSpace


def _train(**overrides):
  values = dict(model="mlp", width=0.5, epochs=2, learning_rate=0.01,
                batch_size=64, finetune_epochs=1, verbose=0, seed=5,
                export=("float32",), benchmark_runs=0, prune_frequency=2)
  values.update(overrides)
  return tf_compress.TrainConfig(**values)


def _tune(tmp_path, train=None, **overrides):
  values = dict(train=train or _train(), output_dir=str(tmp_path),
                space=SearchSpace(prune_sparsity=(0.3, 0.9)),
                objectives=("accuracy", "gzip_bytes"), trials=2,
                final_eval=False)
  values.update(overrides)
  return TuneConfig(**values)


def _fake_baseline(config, fold, index, cache, latency=False):
  del config, cache, latency
  return {"fold": index, "val_accuracy": 0.5, "gzip_bytes": 10000,
          "p50_ms": None, "num_train": fold.num_train}


def _centroid_accuracy(fold, sparsity):
  """A cheap deterministic 'model': nearest class mean of the fold."""
  x = fold.x_train.reshape(len(fold.x_train), -1)
  means = np.stack([x[fold.y_train == c].mean(0)
                    for c in range(fold.num_classes)])
  means = np.where(means > np.quantile(means, sparsity), means, 0.0)
  v = fold.x_val.reshape(len(fold.x_val), -1)
  predicted = np.argmin(((v[:, None] - means[None]) ** 2).sum(-1), axis=1)
  return float(np.mean(predicted == fold.y_val))


def _fake_evaluate(config, fold, baseline, settings, callbacks=(),
                   workdir=None):
  del settings, callbacks, workdir
  return {"accuracy": _centroid_accuracy(fold, config.prune.sparsity),
          "balanced_accuracy": None, "gzip_bytes": fold.num_train,
          "p50_ms": None, "robust_accuracy": None,
          "baseline_accuracy": baseline["val_accuracy"],
          "export": config.export.modes[0], "stages": ["prune"]}


def test_fold_scores_equal_a_hand_run_stratified_kfold(tmp_path, digits):
  config = _tune(tmp_path, cv_folds=3)
  study, context = tuner.run_search(config, digits, _fake_evaluate,
                                    _fake_baseline)
  hand = list(StratifiedKFold(3, shuffle=True, random_state=5).split(
      np.zeros(digits.num_train), digits.y_train))
  assert [f.num_val for f in context.folds] == [len(va) for _, va in hand]
  trials = study.trials
  assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
  for trial in trials:
    sparsity = trial.params["prune_sparsity"]
    expected = []
    for train_idx, val_idx in hand:
      fold = dataclasses.replace(
          digits, x_train=digits.x_train[train_idx],
          y_train=digits.y_train[train_idx], x_val=digits.x_train[val_idx],
          y_val=digits.y_train[val_idx])
      expected.append(_centroid_accuracy(fold, sparsity))
    got = [f["accuracy"] for f in trial.user_attrs["folds"]]
    assert got == expected
    assert trial.user_attrs["mean"]["accuracy"] == pytest.approx(
        np.mean(expected), abs=1e-12)
    assert trial.user_attrs["std"]["accuracy"] == pytest.approx(
        np.std(expected), abs=1e-12)
    assert trial.values == [pytest.approx(np.mean(expected), abs=1e-12),
                            pytest.approx(np.mean([len(t) for t, _ in hand]))]


def test_resume_runs_only_the_remaining_trials(tmp_path, digits):
  config = _tune(tmp_path, trials=2)
  study, _ = tuner.run_search(config, digits, _fake_evaluate, _fake_baseline)
  first = [(t.number, t.params, t.values) for t in study.trials]
  again, _ = tuner.run_search(config, digits, _fake_evaluate, _fake_baseline)
  assert [(t.number, t.params, t.values) for t in again.trials] == first
  more, _ = tuner.run_search(dataclasses.replace(config, trials=4), digits,
                             _fake_evaluate, _fake_baseline)
  trials = more.trials
  assert len(trials) == 4 and [(t.number, t.params, t.values)
                               for t in trials[:2]] == first
  assert all(t.state == TrialState.COMPLETE for t in trials)
  # The same seed gives the same first trials in a new study.
  fresh, _ = tuner.run_search(
      dataclasses.replace(config, output_dir=str(tmp_path / "fresh")),
      digits, _fake_evaluate, _fake_baseline)
  assert [t.params for t in fresh.trials] == [p for _, p, _ in first]
  # Another search space cannot resume this study.
  changed = dataclasses.replace(config, space=SearchSpace(
      slice_ratio=(0.1, 0.5)))
  with pytest.raises(UserInputError, match="made with different space"):
    tuner.run_search(changed, digits, _fake_evaluate, _fake_baseline)


def test_a_failing_trial_is_recorded_and_the_study_goes_on(tmp_path, digits):
  def flaky(config, *args, **kwargs):
    if config.prune.sparsity > 0.6:
      raise tf_compress.ModelError("cannot prune that far")
    return _fake_evaluate(config, *args, **kwargs)
  config = _tune(tmp_path, trials=6)
  study, _ = tuner.run_search(config, digits, flaky, _fake_baseline)
  trials = study.trials
  assert len(trials) == 6
  for trial in trials:
    if trial.params["prune_sparsity"] > 0.6:
      assert trial.state == TrialState.FAIL
      assert trial.user_attrs["error"] == (
          "ModelError: cannot prune that far")
    else:
      assert trial.state == TrialState.COMPLETE
  assert {t.state for t in trials} == {TrialState.FAIL, TrialState.COMPLETE}


class _Poison:
  """Test labels that raise on any use."""

  def __init__(self):
    self.touched = []

  def _touch(self, what):
    self.touched.append(what)
    raise AssertionError(f"the search read test data ({what})")

  def __getattr__(self, name):
    return self._touch(name)

  def __len__(self):
    return self._touch("len")

  def __array__(self, *args, **kwargs):
    return self._touch("array")

  def __getitem__(self, key):
    return self._touch("getitem")


def test_search_cannot_read_test_labels(tmp_path, digits):
  poisoned = dataclasses.replace(digits)
  poisons = {name: _Poison() for name in ("x_test", "y_test", "raw_x",
                                           "raw_y")}
  for name, poison in poisons.items():
    object.__setattr__(poisoned, name, poison)
  # Trial 0 prunes 30%; trial 1 prunes 99% and is stopped as hopeless
  # after its first epoch (validation accuracy below baseline - 0.3).
  config = _tune(tmp_path, max_accuracy_drop=0.3, early_stop_margin=0.0,
                 space=SearchSpace(prune_sparsity=(0.3, 0.99)))
  study = tuner._open_study(config)  # pylint: disable=protected-access
  study.enqueue_trial({"prune_sparsity": 0.3})
  study.enqueue_trial({"prune_sparsity": 0.99})
  study, context = tuner.run_search(config, poisoned)
  assert all(not p.touched for p in poisons.values())
  assert context.folds[0].num_test == 0
  done, hopeless = study.trials
  assert done.state == TrialState.COMPLETE, done.user_attrs.get("error")
  assert "error" not in done.user_attrs
  assert 0.5 < done.values[0] <= 1.0 and done.values[1] > 0
  assert hopeless.state == TrialState.PRUNED
  assert hopeless.user_attrs["stopped"]["epoch"] == 1
  assert hopeless.user_attrs["stopped"]["val_accuracy"] < (
      context.baselines[0]["val_accuracy"] - 0.3)


def test_finalize_survives_a_failing_retraining(tmp_path, digits,
                                                monkeypatch):
  config = _tune(tmp_path, trials=3, final_eval=True)
  study, context = tuner.run_search(config, digits, _fake_evaluate,
                                    _fake_baseline)
  calls = []

  def fake_final(run_config, robust=None):
    calls.append(run_config)
    if len(calls) == 1:
      raise tf_compress.ModelError("cannot retrain")
    return {"top1": 0.9, "balanced_accuracy": 0.9, "gzip_bytes": 1,
            "p50_ms": None}, {}
  monkeypatch.setattr(tuner.final_lib, "evaluate_final", fake_final)
  summary = tuner.finalize(config, study, context)
  assert [e["number"] for e in summary["final"]][0] == summary["best"][
      "number"]  # the best is retrained first
  assert len(calls) == len(summary["pareto"]) >= 1
  assert all(c.combine and c.output_dir.startswith(str(tmp_path / "final"))
             for c in calls)
  first = summary["final"][0]
  assert first["test"] is None and first["error"] == (
      "ModelError: cannot retrain")
  assert (tmp_path / "best.flags").is_file()
  assert (tmp_path / "tuning.json").is_file()
