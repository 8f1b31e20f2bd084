"""Study storage, seeding, trial counting, stale trials and the worker loop."""

import time

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
import pytest

from tf_compress.errors import UserInputError
from tf_compress.pipeline.tuning import study as study_lib

# Trials asked for by hand (no Study.optimize) run without heartbeats.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Heartbeat of storage is supposed to be used")


def _storage(tmp_path, **kwargs):
  return study_lib.open_storage(f"sqlite:///{tmp_path / 'study.db'}",
                                **kwargs)


def _open(storage, fingerprint=None, seed=0, trials=10):
  sampler = study_lib.make_sampler("tpe", seed, trials, 0)
  return study_lib.open_study(storage, "s", ["maximize", "minimize"], sampler,
                              fingerprint or {"space": 1})


def _objective(trial):
  x = trial.suggest_float("x", 0.0, 1.0)
  return x, 1.0 - x


@pytest.mark.parametrize("url,message", [
    ("sqlite:////nonexistent_dir_xyz/study.db", "--storage 'sqlite:////"
     "nonexistent_dir_xyz/study.db': directory '/nonexistent_dir_xyz' does "
     "not exist"),
    ("postgresql://nohost:1/x", "--storage 'postgresql://nohost:1/x' cannot "
     "be opened"),
    ("nosuchdialect://x/y", "--storage 'nosuchdialect://x/y' cannot be "
     "opened"),
])
def test_unreachable_storage(url, message):
  with pytest.raises(UserInputError, match=message):
    study_lib.open_storage(url)


def test_unwritable_sqlite_directory(tmp_path):
  locked = tmp_path / "ro"
  locked.mkdir(mode=0o500)
  try:
    storage = study_lib.open_storage(f"sqlite:///{locked / 'study.db'}")
  except UserInputError as exc:
    assert "--storage" in str(exc)
  else:  # root may write anywhere; then the study must work
    assert _open(storage) is not None


def test_default_url(tmp_path):
  assert study_lib.default_storage_url(str(tmp_path)) == (
      f"sqlite:///{tmp_path}/study.db")


def test_resuming_with_another_configuration_is_refused(tmp_path):
  storage = _storage(tmp_path)
  _open(storage, {"objectives": ["accuracy"], "space": 1})
  again = _open(storage, {"objectives": ["accuracy"], "space": 1})
  assert again.user_attrs["fingerprint"]["space"] == 1
  with pytest.raises(UserInputError, match="made with different space"):
    _open(storage, {"objectives": ["accuracy"], "space": 2})


def test_sampler_seeds_by_trial_number(tmp_path):
  def first_draws(seed, n):
    study = optuna.create_study(
        directions=["maximize", "minimize"],
        sampler=study_lib.make_sampler("tpe", seed, 20, 0))
    study.optimize(_objective, n_trials=n)
    return [t.params["x"] for t in study.trials]
  a, b = first_draws(0, 3), first_draws(0, 3)
  assert a == b                          # seeded: reproducible
  assert len(set(a)) == 3                # trial numbers give new draws
  assert first_draws(1, 1) != a[:1]      # the seed matters
  # A second worker (another process: its own sampler object) on the same
  # study draws a different value for its own trial number.
  storage = _storage(tmp_path)
  one, two = _open(storage), _open(storage)
  t0, t1 = one.ask(), two.ask()
  assert t0.suggest_float("x", 0, 1) != t1.suggest_float("x", 0, 1)


def test_nsga2_sampler_with_constraints():
  sampler = study_lib.make_sampler("nsga2", 3, 12, 1)
  study = optuna.create_study(directions=["maximize", "minimize"],
                              sampler=sampler)

  def objective(trial):
    x = trial.suggest_float("x", 0, 1)
    study_lib.set_constraints(trial, {"max_size_bytes": x - 0.5})
    return x, 1 - x
  study.optimize(objective, n_trials=6)
  for trial in study.trials:
    assert trial.user_attrs["constraints"] == [trial.params["x"] - 0.5]
    if study_lib.SETS_CONSTRAINTS_ON_TRIAL:
      assert trial.constraints == {"max_size_bytes": trial.params["x"] - 0.5}
    else:
      assert trial.system_attrs["constraints"] == (trial.params["x"] - 0.5,)


def _frozen(number, state, user_attrs=None, system_attrs=None):
  trial = optuna.trial.create_trial(
      state=state, values=[0.5, 0.5] if state == TrialState.COMPLETE
      else None, params={"x": 0.1},
      distributions={"x": FloatDistribution(0, 1)},
      user_attrs=user_attrs or {}, system_attrs=system_attrs or {})
  trial.number = number
  return trial


def test_tally_counts_each_kind():
  trials = [
      _frozen(0, TrialState.COMPLETE),
      _frozen(1, TrialState.PRUNED),
      _frozen(2, TrialState.FAIL, {"error": "ValueError: x"}),
      _frozen(3, TrialState.FAIL),                       # killed, retried
      _frozen(4, TrialState.FAIL, {"interrupted": True}),
      _frozen(5, TrialState.FAIL, {"surplus": True}),
      _frozen(6, TrialState.COMPLETE, system_attrs={
          "failed_trial": 3, "retry_history": [3]}),
      _frozen(7, TrialState.RUNNING),
      _frozen(8, TrialState.WAITING),
      _frozen(9, TrialState.FAIL),                       # retries used up
  ]
  counts = study_lib.tally(trials)
  assert counts.kinds == {0: "done", 1: "done", 2: "done", 3: "superseded",
                          4: "interrupted", 5: "surplus", 6: "done",
                          7: "in_flight", 8: "in_flight", 9: "done"}
  assert (counts.done, counts.in_flight, counts.waiting) == (5, 2, 1)


def test_surplus_is_decided_by_trial_number(tmp_path):
  study = _open(_storage(tmp_path))
  for _ in range(3):
    study.ask()  # three running trials: 0, 1, 2
  assert not study_lib.is_surplus(study, 1, budget=2)
  assert study_lib.is_surplus(study, 2, budget=2)
  # A retry replaces a counted trial, so it is never surplus.
  study_lib.fail_stale(study)
  with pytest.warns(optuna.exceptions.ExperimentalWarning):
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback()
  study.tell(0, state=TrialState.FAIL)
  retry(study, study.trials[0])
  assert study.trials[3].state == TrialState.WAITING
  assert not study_lib.is_surplus(study, 3, budget=2)


def test_worker_reaches_the_budget_and_resumes(tmp_path):
  storage = _storage(tmp_path)
  study = _open(storage)
  assert study_lib.run_worker(study, _objective, budget=3) == 3
  first = [t.params for t in study.trials]
  # A re-run with the same budget runs nothing; a larger one tops it up.
  again = _open(storage)
  assert study_lib.run_worker(again, _objective, budget=3) == 0
  assert study_lib.run_worker(again, _objective, budget=5) == 2
  assert [t.params for t in again.trials][:3] == first
  assert len(again.trials) == 5


def test_failing_trials_are_recorded_and_the_study_goes_on(tmp_path):
  study = _open(_storage(tmp_path))

  def flaky(trial):
    x, y = _objective(trial)
    if trial.number % 2 == 0:
      trial.set_user_attr("error", "RuntimeError: even trial")
      raise RuntimeError("even trial")
    return x, y
  assert study_lib.run_worker(study, flaky, budget=4) == 4
  states = [t.state for t in study.trials]
  assert states == [TrialState.FAIL, TrialState.COMPLETE] * 2
  assert study.trials[0].user_attrs["error"] == "RuntimeError: even trial"


def test_stale_trial_of_a_dead_worker_is_retried_once(tmp_path):
  storage = _storage(tmp_path, heartbeat_interval=1, grace_period=2)
  dead = _open(storage)
  lost = dead.ask()
  lost_x = lost.suggest_float("x", 0.0, 1.0)
  storage.record_heartbeat(lost._trial_id)  # then the worker "dies"
  time.sleep(3.1)
  alive = _open(storage)
  started = time.monotonic()
  assert study_lib.run_worker(alive, _objective, budget=3,
                              poll_interval=0.2) == 3
  assert time.monotonic() - started < 30
  trials = alive.trials
  assert trials[0].state == TrialState.FAIL
  retries = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
  assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
  assert retries[0].params["x"] == lost_x  # same parameters
  counts = study_lib.tally(trials)
  assert counts.done == 3 and counts.kinds[0] == "superseded"
