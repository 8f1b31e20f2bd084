"""What a study optimizes (objectives) and what it must respect (constraints).

Objectives are measured on the exported TFLite file of each trial, in the
trial's export mode, on the validation part of each fold:

| name | direction | measure |
|---|---|---|
| `accuracy` | maximize | top-1 accuracy of the TFLite model |
| `balanced_accuracy` | maximize | mean per-class recall of the TFLite model |
| `gzip_bytes` | minimize | size of the gzip-compressed .tflite file |
| `p50_ms` | minimize | median CPU latency, batch 1, 1 thread (XNNPACK) |
| `robust_accuracy` | maximize | TFLite accuracy, FGSM/PGD crafted on Keras |

Constraints are violation values, feasible when <= 0, in Optuna's
`constraints_func` convention:

* `max_accuracy_drop`: baseline accuracy - trial accuracy - limit (top-1,
  both means over the folds; the baseline is the uncompressed Keras model
  trained on the same fold);
* `max_size_bytes`: gzip_bytes - limit;
* `max_latency_ms`: p50_ms - limit.
"""

import dataclasses
import math
from typing import Optional

from tf_compress.errors import UserInputError

__all__ = ["OBJECTIVES", "directions", "check_objectives", "Constraints",
           "needs_latency", "needs_robustness"]

OBJECTIVES = {
    "accuracy": "maximize",
    "balanced_accuracy": "maximize",
    "gzip_bytes": "minimize",
    "p50_ms": "minimize",
    "robust_accuracy": "maximize",
}


def check_objectives(names):
  """Validates `--objectives`; returns them as a tuple.

  Raises:
    UserInputError: naming `--objectives` for an empty list, an unknown
      name or a repeat.
  """
  if isinstance(names, str):
    names = [n.strip() for n in names.split(",") if n.strip()]
  names = tuple(names)
  if not names:
    raise UserInputError("--objectives is empty: choose from "
                         f"{', '.join(OBJECTIVES)}")
  for name in names:
    if name not in OBJECTIVES:
      raise UserInputError(f"--objectives: unknown objective {name!r}; "
                           f"choose from {', '.join(OBJECTIVES)}")
  if len(set(names)) != len(names):
    raise UserInputError(f"--objectives has repeats: {','.join(names)}")
  return names


def directions(names):
  """Optuna directions ("maximize"/"minimize") of the objectives."""
  return [OBJECTIVES[name] for name in names]


@dataclasses.dataclass(frozen=True)
class Constraints:
  """Limits a configuration must respect to be chosen as "best".

  Attributes:
    max_accuracy_drop: largest allowed baseline - trial top-1 accuracy
      (fraction, e.g. 0.01 for one point); None: no limit.
    max_size_bytes: largest allowed gzip size of the .tflite file.
    max_latency_ms: largest allowed p50 CPU latency.

  Example:
    Constraints(max_accuracy_drop=0.01).violations(
        {"accuracy": 0.95}, baseline_accuracy=0.97)   # [0.01]: infeasible
  """
  max_accuracy_drop: Optional[float] = None
  max_size_bytes: Optional[int] = None
  max_latency_ms: Optional[float] = None

  def __post_init__(self):
    for name in ("max_accuracy_drop", "max_size_bytes", "max_latency_ms"):
      value = getattr(self, name)
      if value is not None and (isinstance(value, bool) or
                                not math.isfinite(value) or value < 0):
        raise UserInputError(f"--{name} must be a number >= 0, got {value!r}")
    if self.max_accuracy_drop is not None and self.max_accuracy_drop > 1:
      raise UserInputError(f"--max_accuracy_drop is a fraction in [0, 1], got "
                           f"{self.max_accuracy_drop!r}")

  def active(self):
    """Names of the constraints that are set."""
    return [name for name in ("max_accuracy_drop", "max_size_bytes",
                              "max_latency_ms")
            if getattr(self, name) is not None]

  def violations(self, values, baseline_accuracy=None):
    """One violation per active constraint; <= 0 means satisfied.

    Args:
      values: the trial's mean metrics (`accuracy`, `gzip_bytes`, `p50_ms`).
      baseline_accuracy: the baseline's mean top-1 on the same folds.

    Returns:
      A dict {constraint name: violation}; a missing measure counts as
      violated (1.0, or +inf scaled to 1e12).
    """
    result = {}
    if self.max_accuracy_drop is not None:
      accuracy = values.get("accuracy")
      if accuracy is None or baseline_accuracy is None:
        result["max_accuracy_drop"] = 1.0
      else:
        result["max_accuracy_drop"] = float(
            baseline_accuracy - accuracy - self.max_accuracy_drop)
    for name, key in (("max_size_bytes", "gzip_bytes"),
                      ("max_latency_ms", "p50_ms")):
      limit = getattr(self, name)
      if limit is not None:
        value = values.get(key)
        result[name] = (1e12 if value is None else float(value - limit))
    return result

  def to_dict(self):
    return dataclasses.asdict(self)


def needs_latency(objectives, constraints):
  """Whether trials must measure p50 latency."""
  return "p50_ms" in objectives or constraints.max_latency_ms is not None


def needs_robustness(objectives):
  """Whether trials must measure robust accuracy."""
  return "robust_accuracy" in objectives
