"""Study storage, resumption and workers.

Storage: by default an SQLite file, `sqlite:///<output_dir>/study.db`,
through Optuna's `RDBStorage`; `--storage` takes any RDB URL (PostgreSQL,
MySQL) for workers on several machines. SQLite rather than Optuna's
journal file, because Optuna's heartbeat (how a trial whose process was
killed is noticed and retried) exists only for `RDBStorage`; a journal file
would leave such a trial RUNNING for ever. SQLite's file locks make it safe
for several processes on one machine (not on a network file system); writers
wait up to 60 s for the lock instead of failing. A PostgreSQL server that
does not answer within 10 s (`connect_timeout`, unless the URL sets it) is
an error, as is a database holding tables that are not Optuna's.

Killed workers: every running trial sends a heartbeat every
`heartbeat_interval` seconds; a trial silent for `grace_period` seconds is
failed by the next worker that looks, and re-queued once with the same
parameters (`RetryHeartbeatStaleTrialCallback`, up to 2 retries).

Counting: a study aims at `trials` finished trials. Re-running the command
(or another worker) tops it up. Not counted: a trial superseded by its
retry, one stopped by Ctrl-C (a fresh trial replaces it), and a "surplus"
trial, started by a worker that lost a race for the last slot (it is failed
at once with `user_attrs["surplus"]` and left out of the outputs).
"""

import dataclasses
import logging
import os
import re
import time
import warnings

import optuna

from tf_compress.errors import one_line
from tf_compress.errors import UserInputError

__all__ = ["default_storage_url", "open_storage", "make_sampler",
           "set_constraints",
           "TrialSeededSampler", "open_study", "Tally", "tally",
           "is_surplus", "run_worker", "retried_numbers", "trial_kind",
           "fail_stale", "MAX_RETRY"]

MAX_RETRY = 2
_SQLITE_TIMEOUT_S = 60
_CONNECT_TIMEOUT_S = 10
_OPEN_ATTEMPTS = 4


def default_storage_url(output_dir):
  """`sqlite:///<absolute output_dir>/study.db`."""
  return "sqlite:///" + os.path.join(os.path.abspath(output_dir), "study.db")


def _shown(url):
  """`url` with its password, if any, masked (it goes into error lines)."""
  return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)


def _reason(exc):
  """`Type: message` of what went wrong, on one line, without the SQL.

  Optuna wraps SQLAlchemy's errors in a generic StorageInternalError; the
  wrapped one says what the database objected to.
  """
  if (isinstance(exc, optuna.exceptions.StorageInternalError) and
      exc.__cause__ is not None):
    exc = exc.__cause__
  text = one_line(exc)
  for cut in (" [SQL:", " (Background on this error"):
    text = text.split(cut, 1)[0]
  return f"{type(exc).__name__}: {text.rstrip('. ')[:300]}"


def _storage_error(url, exc):
  return UserInputError(
      f"--storage '{_shown(url)}' cannot be opened: {_reason(exc)}. Give a "
      "reachable Optuna RDB URL whose database is empty or holds Optuna's "
      "tables, such as sqlite:////path/study.db")


def _engine_kwargs(url):
  """SQLAlchemy's `engine_kwargs` for `url`.

  SQLite waits for the lock; PostgreSQL gives up connecting after
  `_CONNECT_TIMEOUT_S` (unless the URL sets `connect_timeout`) rather than
  hang on a host that never answers.
  """
  if url.startswith("sqlite:"):
    return {"connect_args": {"timeout": _SQLITE_TIMEOUT_S}}
  scheme = url.split("://", 1)[0]
  if (scheme in ("postgresql", "postgresql+psycopg", "postgresql+psycopg2")
      and "connect_timeout=" not in url):
    return {"connect_args": {"connect_timeout": _CONNECT_TIMEOUT_S}}
  return {}


def open_storage(url, heartbeat_interval=10, grace_period=30):
  """Opens (creating if needed) an Optuna RDB storage with heartbeats.

  Raises:
    UserInputError: naming `--storage` when the URL is malformed, its
      driver is missing, the database cannot be reached or created, or it
      holds tables that are not Optuna's (or of an incompatible Optuna
      schema).
  """
  if url.startswith("sqlite:"):
    path = url.split("sqlite:///", 1)[-1]
    directory = os.path.dirname(os.path.abspath(path)) if path else ""
    if path and path != ":memory:" and not os.path.isdir(directory):
      raise UserInputError(
          f"--storage '{url}': directory '{directory}' does not exist; "
          "create it or choose another location")
  for attempt in range(_OPEN_ATTEMPTS):
    try:
      with warnings.catch_warnings():
        warnings.simplefilter("ignore",
                              optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, engine_kwargs=_engine_kwargs(url),
            heartbeat_interval=int(heartbeat_interval),
            grace_period=int(grace_period),
            heartbeat_stale_trial_callback=(
                optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=MAX_RETRY)))
    except Exception as exc:  # pylint: disable=broad-except
      # sqlalchemy's OperationalError/ArgumentError/ProgrammingError, a
      # missing driver module, Optuna's schema-version RuntimeError.
      if attempt + 1 < _OPEN_ATTEMPTS and _lost_creation_race(exc):
        time.sleep(0.5 * (attempt + 1))
        continue
      raise _storage_error(url, exc) from None


def _lost_creation_race(exc):
  """True when another worker created Optuna's tables at the same moment.

  On PostgreSQL, workers started together on an empty database all create
  the tables; all but one fail on a duplicate type or table once the first
  commits, and opening again then finds the tables.
  """
  text = str(exc)
  return (type(exc).__name__ in ("IntegrityError", "ProgrammingError") and
          ("already exists" in text or "duplicate key" in text))


class TrialSeededSampler(optuna.samplers.BaseSampler):
  """Delegates to a sampler re-created for each trial, seeded `seed + number`.

  Two workers on one study then draw different random starts (their trials
  have different numbers), while one worker, or a resumed study, draws the
  same values as an uninterrupted run: TPE and NSGA-II keep no state besides
  their random generator and the study's own trials.

  Args:
    factory: `factory(seed)` returns a new sampler.
    seed: the study's seed.
  """

  def __init__(self, factory, seed):
    self._factory = factory
    self._seed = int(seed)
    self._current = factory(self._seed)

  def before_trial(self, study, trial):
    self._current = self._factory(self._seed + trial.number)
    self._current.before_trial(study, trial)

  def infer_relative_search_space(self, study, trial):
    return self._current.infer_relative_search_space(study, trial)

  def sample_relative(self, study, trial, search_space):
    return self._current.sample_relative(study, trial, search_space)

  def sample_independent(self, study, trial, param_name, distribution):
    return self._current.sample_independent(study, trial, param_name,
                                            distribution)

  def after_trial(self, study, trial, state, values):
    self._current.after_trial(study, trial, state, values)

  def reseed_rng(self):
    self._current.reseed_rng()


# Optuna 5 reads constraints set on the trial (`Trial.set_constraint`);
# older versions need the samplers' deprecated `constraints_func`.
SETS_CONSTRAINTS_ON_TRIAL = hasattr(optuna.trial.Trial, "set_constraint")


def set_constraints(trial, violations):
  """Records constraint violations (<= 0: satisfied) where samplers read them.

  Args:
    trial: the running `optuna.Trial`.
    violations: {constraint name: violation}.
  """
  trial.set_user_attr("constraints", [float(v) for v in violations.values()])
  if SETS_CONSTRAINTS_ON_TRIAL:
    for name, value in violations.items():
      trial.set_constraint(name, float(value))


def make_sampler(kind, seed, trials, num_constraints):
  """A seeded multi-objective sampler honouring the constraints.

  Args:
    kind: `tpe` (random for the first trials, then multi-objective TPE) or
      `nsga2`.
    seed: the study's seed.
    trials: the study's size (sets TPE's random start and NSGA-II's
      population).
    num_constraints: how many constraints `set_constraints` records per
      trial; 0 for none.
  """
  constraints_func = None
  if num_constraints and not SETS_CONSTRAINTS_ON_TRIAL:
    def constraints_func(frozen):
      return list(frozen.user_attrs.get("constraints",
                                        [1.0] * num_constraints))
  startup = max(2, min(10, int(trials) // 2))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    if kind == "nsga2":
      population = max(4, min(50, int(trials) // 3))
      factory = lambda s: optuna.samplers.NSGAIISampler(
          population_size=population, seed=s,
          constraints_func=constraints_func)
    else:
      factory = lambda s: optuna.samplers.TPESampler(
          n_startup_trials=startup, seed=s, multivariate=True,
          constraints_func=constraints_func)
    return TrialSeededSampler(factory, seed)


def open_study(storage, name, directions, sampler, fingerprint):
  """Creates the study, or loads it to resume.

  Raises:
    UserInputError: when the stored study was made with other objectives,
      search space, folds or base configuration, or the storage's tables
      are not Optuna's.
  """
  logging.getLogger("optuna").setLevel(logging.WARNING)
  try:
    study = optuna.create_study(storage=storage, study_name=name,
                                directions=list(directions), sampler=sampler,
                                load_if_exists=True)
    stored = study.user_attrs.get("fingerprint")
    if stored is None:
      study.set_user_attr("fingerprint", fingerprint)
  except ValueError as exc:
    raise UserInputError(
        f"cannot resume study '{name}': {one_line(exc)}; use another "
        "--output_dir or --study_name") from None
  except optuna.exceptions.StorageInternalError as exc:
    # Tables of Optuna's names but another shape pass `open_storage`.
    raise _storage_error(getattr(storage, "url", "?"), exc) from None
  if stored is not None and stored != fingerprint:
    changed = sorted(k for k in set(stored) | set(fingerprint)
                     if stored.get(k) != fingerprint.get(k))
    raise UserInputError(
        f"study '{name}' in this storage was made with different "
        f"{', '.join(changed)}; re-run with the same flags to resume, or use "
        "another --output_dir or --study_name")
  return study


@dataclasses.dataclass
class Tally:
  """How a study's trials count towards its size."""
  done: int = 0
  in_flight: int = 0
  waiting: int = 0
  kinds: dict = dataclasses.field(default_factory=dict)


def retried_numbers(trials):
  """Numbers of the trials that a retry replaced."""
  numbers = set()
  for trial in trials:
    numbers.update(trial.system_attrs.get("retry_history", []))
  return numbers


def trial_kind(trial, retried):
  """`done`, `in_flight`, `surplus`, `superseded` or `interrupted`."""
  state = trial.state
  if trial.user_attrs.get("surplus"):
    return "surplus"
  if state in (optuna.trial.TrialState.RUNNING,
               optuna.trial.TrialState.WAITING):
    return "in_flight"
  if state == optuna.trial.TrialState.FAIL and "error" not in trial.user_attrs:
    if trial.user_attrs.get("interrupted"):
      return "interrupted"
    if trial.number in retried:
      return "superseded"
  return "done"


def tally(trials):
  """Counts trials by `trial_kind` into a `Tally`."""
  retried = retried_numbers(trials)
  result = Tally()
  for trial in trials:
    kind = trial_kind(trial, retried)
    result.kinds[trial.number] = kind
    if kind == "done":
      result.done += 1
    elif kind == "in_flight":
      result.in_flight += 1
      if trial.state == optuna.trial.TrialState.WAITING:
        result.waiting += 1
  return result


def is_surplus(study, number, budget):
  """True when trial `number` is a fresh trial beyond the study's size."""
  trials = study.get_trials(deepcopy=False)
  me = next((t for t in trials if t.number == number), None)
  if me is not None and "failed_trial" in me.system_attrs:
    return False  # a retry replaces a counted trial
  kinds = tally(trials).kinds
  before = sum(1 for t in trials if t.number < number and
               kinds[t.number] in ("done", "in_flight"))
  return before >= budget


def fail_stale(study):
  """Fails (and re-queues) trials whose worker stopped sending heartbeats."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    optuna.storages.fail_stale_trials(study)


def run_worker(study, objective, budget, timeout=None, poll_interval=1.0):
  """Runs trials until the study holds `budget` finished trials.

  Trials that raise are recorded as failed and the loop goes on. While the
  remaining slots are taken by other workers' running trials, this worker
  waits (they may finish, or go stale and be re-queued here).

  Args:
    study: the `optuna.Study`.
    objective: the objective function.
    budget: finished trials wanted in the study.
    timeout: seconds after which no new trial starts; None: no limit.
    poll_interval: seconds between looks while waiting.

  Returns:
    The number of trials this worker ran.
  """
  started = time.monotonic()
  ran = 0
  while True:
    fail_stale(study)
    counts = tally(study.get_trials(deepcopy=False))
    if counts.done >= budget:
      return ran
    if timeout is not None and time.monotonic() - started >= timeout:
      return ran
    if counts.done + counts.in_flight >= budget and not counts.waiting:
      time.sleep(poll_interval)
      continue
    study.optimize(objective, n_trials=1, catch=(Exception,))
    ran += 1
