"""The configuration of a tuning study, validated on construction."""

import dataclasses
import math
from typing import Optional, Tuple

from tf_compress.config import TrainConfig
from tf_compress.errors import UserInputError
from tf_compress.tuning import objectives as objectives_lib
from tf_compress.tuning.space import SearchSpace

__all__ = ["TuneConfig", "SAMPLERS", "ROBUST_ATTACKS"]

SAMPLERS = ("tpe", "nsga2")
ROBUST_ATTACKS = ("fgsm", "pgd")


def _fail(field, value, expected):
  raise UserInputError(f"--{field} must be {expected}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class TuneConfig:
  """Everything `tune()` needs; `python -m tf_compress.tune` flags map onto it.

  Attributes:
    train: the base `TrainConfig` every trial starts from (data, model,
      epochs, fine-tuning epochs, seed, fixed method settings); a trial is
      `dataclasses.replace(train, **trial_overrides)`.
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
    TuneConfig(train=TrainConfig(epochs=10, finetune_epochs=2),
               output_dir="/tmp/tune",
               space=SearchSpace(prune_sparsity=(0.5, 0.95)),
               objectives=("accuracy", "gzip_bytes"), trials=20)
  """
  train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
  output_dir: str = "tf_compress_tune"
  space: SearchSpace = dataclasses.field(default_factory=SearchSpace)
  objectives: Tuple[str, ...] = ("accuracy", "gzip_bytes")
  max_accuracy_drop: Optional[float] = None
  max_size_bytes: Optional[int] = None
  max_latency_ms: Optional[float] = None
  trials: int = 20
  timeout: Optional[float] = None
  cv_folds: int = 0
  storage: Optional[str] = None
  study_name: str = "tf_compress_tune"
  sampler: str = "tpe"
  early_stop_margin: float = 0.05
  robust_attack: str = "fgsm"
  robust_epsilon: float = 0.1
  final_eval: bool = True
  final_max: int = 0
  heartbeat_interval: int = 10
  grace_period: int = 30
  poll_interval: float = 1.0

  def __post_init__(self):
    if not isinstance(self.train, TrainConfig):
      _fail("train", self.train, "a TrainConfig")
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
    if (objectives_lib.needs_latency(self.objectives, self.constraints) and
        self.train.benchmark_runs < 1):
      _fail("benchmark_runs", self.train.benchmark_runs,
            ">= 1 to measure latency (--objectives=p50_ms or "
            "--max_latency_ms)")
    self.space.check(self.train)

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
