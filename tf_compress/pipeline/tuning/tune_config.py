"""The configuration of a tuning study, validated on construction."""

import dataclasses
import math
from typing import Optional, Tuple

from tf_compress.pipeline.config import RunConfig
from tf_compress.errors import UserInputError
from tf_compress.pipeline.fields import option
from tf_compress.pipeline.fields import options
from tf_compress.pipeline.tuning import objectives as objectives_lib
from tf_compress.pipeline.tuning.space import SearchSpace

__all__ = ["TuneConfig", "SAMPLERS", "ROBUST_ATTACKS"]

SAMPLERS = ("tpe", "nsga2")
ROBUST_ATTACKS = ("fgsm", "pgd")


def _fail(field, value, expected):
  raise UserInputError(f"--{field} must be {expected}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class TuneConfig:
  """Everything `tune()` needs; `python -m tf_compress.tune` flags map onto it.

  Attributes:
    train: the base `RunConfig` every trial starts from (data, model,
      epochs, fine-tuning epochs, seed, fixed method settings); a trial is
      `train.replace(**trial_overrides)`.
    output_dir: where the study, the cached baselines and the results go.
    space: the `SearchSpace`.
    objectives: names from `objectives.OBJECTIVES`.
    max_accuracy_drop: constraint, see `objectives.Constraints`.
    max_size_bytes: constraint.
    max_latency_ms: constraint.
    trials: finished trials the study should hold (a re-run tops it up).
    timeout: seconds after which no new trial starts; None: no limit.
    cv_folds: 0: the train/validation split; K >= 2: stratified K-fold
      cross-validation of the training split.
    storage: an Optuna RDB URL; None: `sqlite:///<output_dir>/study.db`.
    study_name: the study's name in the storage.
    sampler: `tpe` (multi-objective TPE) or `nsga2`.
    early_stop_margin: margin below the accuracy constraint at which a
      trial is stopped early (see `callbacks.HopelessTrialStopper`).
    robust_attack: `fgsm` or `pgd`, for the `robust_accuracy` objective.
    robust_epsilon: its L-infinity radius.
    final_eval: retrain the Pareto-optimal configurations on the full
      training split and evaluate them on the test split.
    final_max: at most this many of them (best first); 0: all.
    heartbeat_interval: seconds between a running trial's heartbeats.
    grace_period: seconds without a heartbeat after which a trial's worker
      is taken for dead: the trial is failed and re-queued.
    poll_interval: seconds a worker waits for other workers' trials.

  Example:
    TuneConfig(train=RunConfig.from_flat(epochs=10, finetune_epochs=2),
               output_dir="/tmp/tune",
               space=SearchSpace(prune_sparsity=(0.5, 0.95)),
               objectives=("accuracy", "gzip_bytes"), trials=20)
  """
  train: RunConfig = dataclasses.field(default_factory=RunConfig)
  output_dir: str = "tf_compress_tune"
  space: SearchSpace = dataclasses.field(default_factory=SearchSpace)
  objectives: Tuple[str, ...] = option(
      ("accuracy", "gzip_bytes"),
      f"Objectives, any of {', '.join(objectives_lib.OBJECTIVES)}.",
      element=str)
  max_accuracy_drop: Optional[float] = option(
      None, "Constraint: largest allowed drop of top-1 accuracy below the "
      "baseline's (a fraction, 0.01 = 1 point); also stops hopeless trials "
      "early.")
  max_size_bytes: Optional[int] = option(
      None, "Constraint: largest gzip size of the .tflite.")
  max_latency_ms: Optional[float] = option(
      None, "Constraint: largest p50 CPU latency (ms).")
  trials: int = option(20, "Finished trials the study should hold; a re-run "
                       "tops it up.")
  timeout: Optional[float] = option(
      None, "Seconds after which no new trial starts.")
  cv_folds: int = option(0, "0: the validation split; K >= 2: stratified "
                         "K-fold cross-validation of the training split. "
                         "With --seeds, each seed is one evaluation on the "
                         "validation split instead.")
  storage: Optional[str] = option(
      None, "Optuna RDB URL of the study (e.g. a PostgreSQL server for "
      "workers on several machines); default: "
      "sqlite:///<output_dir>/study.db.")
  study_name: str = option("tf_compress_tune",
                           "The study's name in the storage.")
  sampler: str = option("tpe", "tpe: multi-objective TPE; nsga2: NSGA-II. "
                        "Seeded by --seed.", choices=SAMPLERS)
  early_stop_margin: float = option(
      0.05, "A trial stops early when its validation accuracy falls this "
      "far below the --max_accuracy_drop limit.", lower=0.0)
  robust_attack: str = option("fgsm", "Attack of the robust_accuracy "
                              "objective.", choices=ROBUST_ATTACKS)
  robust_epsilon: float = option(0.1, "Epsilon of the robust_accuracy "
                                 "objective.", lower=0.0)
  final_eval: bool = option(
      True, "Retrain the Pareto-optimal configurations on the full "
      "training split and test them.")
  final_max: int = option(0, "Retrain at most this many of them, best "
                          "first; 0: all.", lower=0)
  heartbeat_interval: int = option(
      10, "Seconds between a running trial's heartbeats.", lower=1)
  grace_period: int = option(
      30, "Seconds without a heartbeat after which a trial's worker counts "
      "as dead (trial re-queued).", lower=2)
  poll_interval: float = 1.0

  def __post_init__(self):
    if not isinstance(self.train, RunConfig):
      _fail("train", self.train, "a RunConfig")
    if not isinstance(self.space, SearchSpace):
      _fail("space", self.space, "a SearchSpace")
    if not isinstance(self.output_dir, str) or not self.output_dir:
      _fail("output_dir", self.output_dir, "a non-empty path")
    object.__setattr__(self, "objectives",
                       objectives_lib.check_objectives(self.objectives))
    self.constraints  # validates the three limits
    if isinstance(self.trials, bool) or int(self.trials) < 1:
      _fail("trials", self.trials, ">= 1")
    if self.timeout is not None and not (
        math.isfinite(self.timeout) and self.timeout > 0):
      _fail("timeout", self.timeout, "a number of seconds > 0")
    if self.storage is not None and not (isinstance(self.storage, str) and
                                         "://" in self.storage):
      _fail("storage", self.storage, "an Optuna RDB URL such as "
            "sqlite:///study.db or postgresql://user@host/db")
    if not isinstance(self.study_name, str) or not self.study_name:
      _fail("study_name", self.study_name, "a non-empty name")
    if self.sampler not in SAMPLERS:
      _fail("sampler", self.sampler, f"one of {SAMPLERS}")
    if not self.early_stop_margin >= 0:
      _fail("early_stop_margin", self.early_stop_margin, ">= 0")
    if self.robust_attack not in ROBUST_ATTACKS:
      _fail("robust_attack", self.robust_attack, f"one of {ROBUST_ATTACKS}")
    if not self.robust_epsilon >= 0:
      _fail("robust_epsilon", self.robust_epsilon, ">= 0")
    if int(self.final_max) < 0:
      _fail("final_max", self.final_max, ">= 0 (0: all)")
    if int(self.heartbeat_interval) < 1:
      _fail("heartbeat_interval", self.heartbeat_interval, ">= 1 second")
    if not self.grace_period > self.heartbeat_interval:
      _fail("grace_period", self.grace_period,
            f"above --heartbeat_interval ({self.heartbeat_interval})")
    if not self.poll_interval > 0:
      _fail("poll_interval", self.poll_interval, "> 0")
    if isinstance(self.cv_folds, bool) or int(self.cv_folds) != self.cv_folds:
      _fail("cv_folds", self.cv_folds, "an integer")
    if self.cv_folds == 1 or self.cv_folds < 0:
      _fail("cv_folds", self.cv_folds, "0 (hold-out validation split) or "
            ">= 2")
    if self.train.fit.seeds and self.cv_folds:
      _fail("cv_folds", self.cv_folds, "0 with --seeds (the seeds replace "
            "the folds: one evaluation on the validation split per seed)")
    if (objectives_lib.needs_latency(self.objectives, self.constraints) and
        self.train.latency.runs < 1):
      _fail("benchmark_runs", self.train.latency.runs,
            ">= 1 to measure latency (--objectives=p50_ms or "
            "--max_latency_ms)")
    self.space.check(self.train)

  @classmethod
  def from_flat(cls, **flat):
    """Builds a study config from the tune command's flag values.

    The train flags build the base `RunConfig` (whose `output_dir` is the
    study's), the search flags the `SearchSpace`, the rest this config.
    """
    train_flags = {opt.flag for opt in options(RunConfig)}
    space_fields = {opt.flag: opt.path[-1] for opt in options(SearchSpace)}
    train = RunConfig.from_flat(
        **{k: v for k, v in flat.items() if k in train_flags})
    space = SearchSpace(**{space_fields[k]: v for k, v in flat.items()
                           if k in space_fields})
    rest = {k: v for k, v in flat.items()
            if k not in train_flags and k not in space_fields}
    return cls(train=train, output_dir=train.output_dir, space=space, **rest)

  @property
  def constraints(self):
    """The `objectives.Constraints` of this study."""
    return objectives_lib.Constraints(
        max_accuracy_drop=self.max_accuracy_drop,
        max_size_bytes=self.max_size_bytes,
        max_latency_ms=self.max_latency_ms)

  @property
  def directions(self):
    return objectives_lib.directions(self.objectives)

  def fingerprint(self):
    """What must not change when a study is resumed (JSON-safe)."""
    train = self.train.to_dict()
    for name in ("output_dir", "verbose", "use_gpu"):
      train.pop(name, None)
    return {"objectives": list(self.objectives),
            "space": self.space.to_dict(), "cv_folds": int(self.cv_folds),
            "robust": [self.robust_attack, self.robust_epsilon],
            "train": train}
