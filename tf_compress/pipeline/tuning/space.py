"""The search space of a tuning study: which compression knobs, which ranges.

Every part is optional. A part that is set becomes one Optuna parameter (or
two, for distillation); `suggest(trial, space)` draws a value for each, and
`train_overrides(params, space, base)` turns the drawn values into the
`RunConfig` fields of the `combined` variant they describe.

Example:
    space = SearchSpace(prune_sparsity=(0.5, 0.95), qat=True,
                        export=("float32", "int8"))
    params = suggest(trial, space)          # {"prune_sparsity": 0.81, ...}
    config = base.replace(**train_overrides(params, space,
                                                         base))
"""

import dataclasses
import functools
import math
from typing import Optional, Tuple

from tf_compress.pipeline import config as config_lib
from tf_compress.pipeline.fields import option
from tf_compress.pipeline.fields import options
from tf_compress.errors import UserInputError

__all__ = ["SearchSpace", "suggest", "train_overrides", "trial_export_mode",
           "parse_range", "SPACE_FLAGS", "DEFAULT_SPACE", "describe"]



def parse_range(text, name, integer=False):
  """Parses "LOW,HIGH" (or one value, LOW=HIGH) into a tuple; "" is None.

  Args:
    text: the flag's text, or None.
    name: the flag, for messages (e.g. "--slice_ratio_range").
    integer: parse ints instead of floats.

  Returns:
    `(low, high)` or None.

  Raises:
    UserInputError: naming the flag when the text is not one or two numbers.
  """
  if text is None or not str(text).strip():
    return None
  parts = [p.strip() for p in str(text).split(",")]
  cast = int if integer else float
  try:
    values = [cast(p) for p in parts]
  except ValueError:
    values = []
  if len(values) not in (1, 2) or not all(math.isfinite(v) for v in values):
    kind = "integers" if integer else "numbers"
    raise UserInputError(f"{name} must be one or two {kind} 'LOW,HIGH', got "
                         f"{text!r}")
  return (values[0], values[-1])


def _range_option(field, doc, integer=False):
  """A `LOW,HIGH` field, set by the flag `--<field>_range`."""
  flag = f"{field}_range"
  return option(None, doc, flag=flag, parse=functools.partial(
      parse_range, name=f"--{flag}", integer=integer))


def _check_range(field, value, low_ok, high_ok, expected):
  if value is None:
    return None
  value = tuple(value)
  flag = SPACE_FLAGS[field]
  if len(value) != 2:
    raise UserInputError(f"{flag} must be (low, high), got {value!r}")
  low, high = value
  if low > high:
    raise UserInputError(f"{flag} must have low <= high, got {low:g},{high:g}")
  if not (low_ok(low) and high_ok(high)):
    raise UserInputError(f"{flag} must lie {expected}, got {low:g},{high:g}")
  return value


@dataclasses.dataclass(frozen=True)
class SearchSpace:
  """The compression settings a study searches, each optional.

  Attributes:
    prune_sparsity: (low, high) target sparsity of magnitude pruning, in
      [0, 1); None: not searched.
    prune_end_epoch: (low, high) fine-tuning epoch at which the polynomial
      schedule reaches its target; None: not searched.
    slice_ratio: (low, high) share of filters removed, in [0, 1).
    cluster_count: (low, high) centroids per weight, integers >= 2.
    qat: search quantization-aware training on/off.
    export: TFLite modes to choose from (two or more make it a search
      dimension; one fixes the mode; empty: the base config's first mode).
    distill_temperature: (low, high) > 0, searched on a log scale; setting
      it or `distill_alpha` turns distillation on in every trial.
    distill_alpha: (low, high) in [0, 1].
    adv_epsilon: (low, high) >= 0; turns adversarial fine-tuning on.

  Example:
    SearchSpace(prune_sparsity=(0.5, 0.95), export=("float32", "int8"))
  """
  prune_sparsity: Optional[Tuple[float, float]] = _range_option(
      "prune_sparsity", "LOW,HIGH target sparsity of magnitude pruning to "
      "search, e.g. 0.5,0.95.")
  prune_end_epoch: Optional[Tuple[float, float]] = _range_option(
      "prune_end_epoch", "LOW,HIGH fine-tuning epoch at which the polynomial "
      "pruning schedule ends, e.g. 1,3.")
  slice_ratio: Optional[Tuple[float, float]] = _range_option(
      "slice_ratio", "LOW,HIGH share of filters to slice away.")
  cluster_count: Optional[Tuple[int, int]] = _range_option(
      "cluster_count", "LOW,HIGH clusters per weight (integers).",
      integer=True)
  qat: bool = option(False, "Search quantization-aware training on/off.",
                     flag="search_qat")
  export: Tuple[str, ...] = option(
      (), "TFLite modes to choose from, e.g. float32,int8; one mode fixes "
      "it; empty: the first --export mode.", flag="export_modes",
      element=str)
  distill_temperature: Optional[Tuple[float, float]] = _range_option(
      "distill_temperature", "LOW,HIGH distillation temperature (log "
      "scale); turns distillation on.")
  distill_alpha: Optional[Tuple[float, float]] = _range_option(
      "distill_alpha", "LOW,HIGH weight of the hard-label loss; turns "
      "distillation on.")
  adv_epsilon: Optional[Tuple[float, float]] = _range_option(
      "adv_epsilon", "LOW,HIGH adversarial-training epsilon; turns "
      "adversarial fine-tuning on (--adv_attack, default fgsm).")

  def __post_init__(self):
    fix = lambda name, value: object.__setattr__(self, name, value)
    fix("prune_sparsity", _check_range(
        "prune_sparsity", self.prune_sparsity, lambda v: v >= 0,
        lambda v: v < 1, "in [0, 1)"))
    fix("prune_end_epoch", _check_range(
        "prune_end_epoch", self.prune_end_epoch, lambda v: v > 0,
        lambda v: True, "above 0 (epochs)"))
    fix("slice_ratio", _check_range(
        "slice_ratio", self.slice_ratio, lambda v: v >= 0, lambda v: v < 1,
        "in [0, 1)"))
    if self.cluster_count is not None:
      if not all(float(v).is_integer() for v in self.cluster_count):
        raise UserInputError(f"--cluster_count_range must be integers, got "
                             f"{self.cluster_count!r}")
      fix("cluster_count", tuple(int(v) for v in self.cluster_count))
    fix("cluster_count", _check_range(
        "cluster_count", self.cluster_count, lambda v: v >= 2,
        lambda v: True, ">= 2"))
    fix("distill_temperature", _check_range(
        "distill_temperature", self.distill_temperature, lambda v: v > 0,
        lambda v: True, "above 0"))
    fix("distill_alpha", _check_range(
        "distill_alpha", self.distill_alpha, lambda v: v >= 0,
        lambda v: v <= 1, "in [0, 1]"))
    fix("adv_epsilon", _check_range(
        "adv_epsilon", self.adv_epsilon, lambda v: v >= 0, lambda v: True,
        ">= 0"))
    if isinstance(self.export, str):
      fix("export", tuple(m.strip() for m in self.export.split(",")
                          if m.strip()))
    fix("export", tuple(self.export))
    for mode in self.export:
      if mode not in config_lib.ALL_EXPORT_MODES:
        raise UserInputError(f"--export_modes takes modes from "
                             f"{', '.join(config_lib.ALL_EXPORT_MODES)}, "
                             f"got {mode!r}")
    if len(set(self.export)) != len(self.export):
      raise UserInputError(f"--export_modes has repeats: {self.export}")
    if not isinstance(self.qat, bool):
      raise UserInputError(f"--search_qat must be a bool, got {self.qat!r}")

  def dimensions(self):
    """The names of the Optuna parameters this space draws, in order."""
    names = [name for name in ("prune_sparsity", "prune_end_epoch",
                               "slice_ratio", "cluster_count")
             if getattr(self, name) is not None]
    if self.qat:
      names.append("qat")
    if len(self.export) > 1:
      names.append("export")
    names += [name for name in ("distill_temperature", "distill_alpha",
                                "adv_epsilon")
              if getattr(self, name) is not None]
    return names

  def check(self, base):
    """Checks the space against the base `RunConfig`.

    Raises:
      UserInputError: for an empty space (naming the flags that set one),
        or a pruning end epoch out of the base config's bounds.
    """
    if not self.dimensions():
      raise UserInputError(
          "the search space is empty: set at least one of "
          + ", ".join(flag for name, flag in SPACE_FLAGS.items()
                      if name != "export")
          + " or two or more --export_modes")
    unexportable = [m for m in self.export
                    if m in config_lib.QAT_UNEXPORTABLE_MODES]
    if unexportable and (self.qat or base.qat.enabled):
      raise UserInputError(
          f"--export_modes {','.join(unexportable)} cannot export a "
          "quantization-aware-trained (int8) model: drop them, or search "
          "without --search_qat/--qat")
    if self.prune_end_epoch is not None:
      if self.prune_sparsity is None and base.prune.sparsity is None:
        raise UserInputError(
            "--prune_end_epoch_range needs pruning: set "
            "--prune_sparsity_range or --prune_sparsity")
      low, high = self.prune_end_epoch
      if low <= base.prune.begin_epoch or high > base.fit.finetune_epochs:
        raise UserInputError(
            f"--prune_end_epoch_range must lie in (prune_begin_epoch="
            f"{base.prune.begin_epoch:g}, finetune_epochs="
            f"{base.fit.finetune_epochs}], got {low:g},{high:g}")
    if self.prune_sparsity is not None and (
        base.prune.begin_epoch >= base.fit.finetune_epochs):
      raise UserInputError(
          f"--prune_begin_epoch ({base.prune.begin_epoch:g}) must be before "
          f"--finetune_epochs ({base.fit.finetune_epochs}) to search pruning")

  def to_dict(self):
    """JSON-safe form (lists for tuples), also the study's fingerprint."""
    return {k: (list(v) if isinstance(v, tuple) else v)
            for k, v in dataclasses.asdict(self).items()}


# Field of SearchSpace -> the tune flag that sets it (for error messages).
SPACE_FLAGS = {opt.path[-1]: f"--{opt.flag}" for opt in options(SearchSpace)}

# What `python -m tf_compress.tune` searches when no search flag is given.
DEFAULT_SPACE = SearchSpace(prune_sparsity=(0.5, 0.95),
                            export=("float32", "int8"))


def describe(space):
  """One line saying what `space` searches, flag by flag.

  Example: `--prune_sparsity_range=0.5,0.95 --export_modes=float32,int8`.
  """
  parts = []
  for name, flag in SPACE_FLAGS.items():
    value = getattr(space, name)
    if value in (None, False, ()):
      continue
    if value is True:
      parts.append(flag)
    else:
      text = ",".join(f"{v:g}" if isinstance(v, float) else str(v)
                      for v in value)
      parts.append(f"{flag}={text}")
  return " ".join(parts) or "nothing"


def suggest(trial, space):
  """Draws one configuration from `space` through an Optuna trial.

  Args:
    trial: an `optuna.Trial` (or anything with `suggest_float`,
      `suggest_int` and `suggest_categorical`).
    space: the `SearchSpace`.

  Returns:
    The drawn parameters, keyed by `space.dimensions()` names.
  """
  params = {}
  for name in ("prune_sparsity", "prune_end_epoch", "slice_ratio"):
    bounds = getattr(space, name)
    if bounds is not None:
      params[name] = trial.suggest_float(name, *bounds)
  if space.cluster_count is not None:
    params["cluster_count"] = trial.suggest_int("cluster_count",
                                                *space.cluster_count)
  if space.qat:
    params["qat"] = trial.suggest_categorical("qat", [False, True])
  if len(space.export) > 1:
    params["export"] = trial.suggest_categorical("export", list(space.export))
  if space.distill_temperature is not None:
    params["distill_temperature"] = trial.suggest_float(
        "distill_temperature", *space.distill_temperature,
        log=space.distill_temperature[0] < space.distill_temperature[1])
  if space.distill_alpha is not None:
    params["distill_alpha"] = trial.suggest_float("distill_alpha",
                                                  *space.distill_alpha)
  if space.adv_epsilon is not None:
    params["adv_epsilon"] = trial.suggest_float("adv_epsilon",
                                                *space.adv_epsilon)
  return params


def trial_export_mode(params, space, base):
  """The one TFLite mode a trial is exported and measured in."""
  if "export" in params:
    return params["export"]
  if space.export:
    return space.export[0]
  return base.export.modes[0] if base.export.modes else "float32"


def train_overrides(params, space, base):
  """The `RunConfig` fields that a trial's parameters set.

  Drawn values map onto the fields of the same name; searching distillation
  turns `distill` on, searching epsilon turns adversarial training on (with
  the base config's attack, FGSM by default), and the export list becomes
  the trial's one mode.

  Args:
    params: the drawn parameters (see `suggest`).
    space: the `SearchSpace` they were drawn from.
    base: the base `RunConfig`.

  Returns:
    A dict for `base.replace(**overrides)` (flag names).
  """
  overrides = {k: v for k, v in params.items() if k != "export"}
  if "qat" in overrides:
    overrides["qat"] = bool(overrides["qat"])
  if "cluster_count" in overrides:
    overrides["cluster_count"] = int(overrides["cluster_count"])
  if "prune_end_epoch" in overrides:
    overrides["prune_schedule"] = "polynomial"
  if space.distill_temperature is not None or space.distill_alpha is not None:
    overrides["distill"] = True
  if space.adv_epsilon is not None:
    overrides["adv_attack"] = base.adversarial.attack or "fgsm"
  overrides["export"] = (trial_export_mode(params, space, base),)
  return overrides
