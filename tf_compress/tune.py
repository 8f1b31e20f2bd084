r"""`python -m tf_compress.tune`: search compression settings with Optuna.

Example:
  python -m tf_compress.tune --dataset=digits --epochs=10 \
      --finetune_epochs=2 --prune_sparsity_range=0.5,0.95 \
      --export_modes=float32,int8 --objectives=accuracy,gzip_bytes \
      --max_accuracy_drop=0.01 --cv_folds=3 --trials=20 \
      --output_dir=/tmp/tune
  python -m tf_compress.train --flagfile=/tmp/tune/best.flags

Every flag of `python -m tf_compress.train` sets the base configuration the
trials start from (data, model, epochs, seed, fixed method settings); the
flags below set the search. Re-running the same command resumes the study;
several processes started with the same `--output_dir` (or `--storage`)
work on one study. Bad input prints one `error:` line and exits with code 2.
"""


import dataclasses

from absl import app
from absl import flags

from tf_compress import train as train_cli
from tf_compress.cli_utils import parse_flags_or_exit
from tf_compress.cli_utils import report_user_error
from tf_compress.errors import UserInputError
from tf_compress.tuning import config as tune_config_lib
from tf_compress.tuning import objectives as objectives_lib
from tf_compress.tuning import space as space_lib
from tf_compress.tuning.tuner import tune

FLAGS = flags.FLAGS
# TuneConfig's field defaults (a default TuneConfig, with its empty search
# space, is not valid).
_DEFAULTS = {f.name: f.default
             for f in dataclasses.fields(tune_config_lib.TuneConfig)}

_PRUNE_SPARSITY_RANGE = flags.DEFINE_string(
    "prune_sparsity_range", None, "LOW,HIGH target sparsity of magnitude "
    "pruning to search, e.g. 0.5,0.95.")
_PRUNE_END_EPOCH_RANGE = flags.DEFINE_string(
    "prune_end_epoch_range", None, "LOW,HIGH fine-tuning epoch at which the "
    "polynomial pruning schedule ends, e.g. 1,3.")
_SLICE_RATIO_RANGE = flags.DEFINE_string(
    "slice_ratio_range", None, "LOW,HIGH share of filters to slice away.")
_CLUSTER_COUNT_RANGE = flags.DEFINE_string(
    "cluster_count_range", None, "LOW,HIGH clusters per weight (integers).")
_SEARCH_QAT = flags.DEFINE_boolean(
    "search_qat", False, "Search quantization-aware training on/off.")
_EXPORT_MODES = flags.DEFINE_list(
    "export_modes", [], "TFLite modes to choose from, e.g. float32,int8; one "
    "mode fixes it; empty: the first --export mode.")
_DISTILL_TEMPERATURE_RANGE = flags.DEFINE_string(
    "distill_temperature_range", None, "LOW,HIGH distillation temperature "
    "(log scale); turns distillation on.")
_DISTILL_ALPHA_RANGE = flags.DEFINE_string(
    "distill_alpha_range", None, "LOW,HIGH weight of the hard-label loss; "
    "turns distillation on.")
_ADV_EPSILON_RANGE = flags.DEFINE_string(
    "adv_epsilon_range", None, "LOW,HIGH adversarial-training epsilon; turns "
    "adversarial fine-tuning on (--adv_attack, default fgsm).")
_OBJECTIVES = flags.DEFINE_list(
    "objectives", list(_DEFAULTS["objectives"]),
    f"Objectives, any of {', '.join(objectives_lib.OBJECTIVES)}.")
_MAX_ACCURACY_DROP = flags.DEFINE_float(
    "max_accuracy_drop", None, "Constraint: largest allowed drop of top-1 "
    "accuracy below the baseline's (a fraction, 0.01 = 1 point); also stops "
    "hopeless trials early.")
_MAX_SIZE_BYTES = flags.DEFINE_integer(
    "max_size_bytes", None, "Constraint: largest gzip size of the .tflite.")
_MAX_LATENCY_MS = flags.DEFINE_float(
    "max_latency_ms", None, "Constraint: largest p50 CPU latency (ms).")
_TRIALS = flags.DEFINE_integer(
    "trials", _DEFAULTS["trials"], "Finished trials the study should hold; a "
    "re-run tops it up.")
_TIMEOUT = flags.DEFINE_float(
    "timeout", None, "Seconds after which no new trial starts.")
_CV_FOLDS = flags.DEFINE_integer(
    "cv_folds", _DEFAULTS["cv_folds"], "0: the validation split; K >= 2: "
    "stratified K-fold cross-validation of the training split.")
_STORAGE = flags.DEFINE_string(
    "storage", None, "Optuna RDB URL of the study (e.g. a PostgreSQL "
    "server for workers on several machines); default: "
    "sqlite:///<output_dir>/study.db.")
_STUDY_NAME = flags.DEFINE_string("study_name", _DEFAULTS["study_name"],
                                  "The study's name in the storage.")
_SAMPLER = flags.DEFINE_enum(
    "sampler", _DEFAULTS["sampler"], tune_config_lib.SAMPLERS,
    "tpe: multi-objective TPE; nsga2: NSGA-II. Seeded by --seed.")
_EARLY_STOP_MARGIN = flags.DEFINE_float(
    "early_stop_margin", _DEFAULTS["early_stop_margin"], "A trial stops early "
    "when its validation accuracy falls this far below the "
    "--max_accuracy_drop limit.", lower_bound=0.0)
_ROBUST_ATTACK = flags.DEFINE_enum(
    "robust_attack", _DEFAULTS["robust_attack"], tune_config_lib.ROBUST_ATTACKS,
    "Attack of the robust_accuracy objective.")
_ROBUST_EPSILON = flags.DEFINE_float(
    "robust_epsilon", _DEFAULTS["robust_epsilon"],
    "Epsilon of the robust_accuracy objective.", lower_bound=0.0)
_FINAL_EVAL = flags.DEFINE_boolean(
    "final_eval", _DEFAULTS["final_eval"], "Retrain the Pareto-optimal "
    "configurations on the full training split and test them.")
_FINAL_MAX = flags.DEFINE_integer(
    "final_max", _DEFAULTS["final_max"], "Retrain at most this many of them, "
    "best first; 0: all.", lower_bound=0)
_HEARTBEAT_INTERVAL = flags.DEFINE_integer(
    "heartbeat_interval", _DEFAULTS["heartbeat_interval"],
    "Seconds between a running trial's heartbeats.", lower_bound=1)
_GRACE_PERIOD = flags.DEFINE_integer(
    "grace_period", _DEFAULTS["grace_period"], "Seconds without a heartbeat "
    "after which a trial's worker counts as dead (trial re-queued).",
    lower_bound=2)

_RANGE_FLAGS = {
    "prune_sparsity_range": False, "prune_end_epoch_range": False,
    "slice_ratio_range": False, "cluster_count_range": True,
    "distill_temperature_range": False, "distill_alpha_range": False,
    "adv_epsilon_range": False}


def _range_validator(name, integer):
  def check(value):
    try:
      space_lib.parse_range(value, f"--{name}", integer=integer)
    except UserInputError as exc:
      raise flags.ValidationError(str(exc)) from None
    return True
  return check


for _name, _integer in _RANGE_FLAGS.items():
  flags.register_validator(_name, _range_validator(_name, _integer))


def _range(holder, integer=False):
  return space_lib.parse_range(holder.value, f"--{holder.name}",
                               integer=integer)


def config_from_flags():
  """Returns the `TuneConfig` that the parsed flags describe."""
  space = space_lib.SearchSpace(
      prune_sparsity=_range(_PRUNE_SPARSITY_RANGE),
      prune_end_epoch=_range(_PRUNE_END_EPOCH_RANGE),
      slice_ratio=_range(_SLICE_RATIO_RANGE),
      cluster_count=_range(_CLUSTER_COUNT_RANGE, integer=True),
      qat=_SEARCH_QAT.value,
      export=tuple(_EXPORT_MODES.value or ()),
      distill_temperature=_range(_DISTILL_TEMPERATURE_RANGE),
      distill_alpha=_range(_DISTILL_ALPHA_RANGE),
      adv_epsilon=_range(_ADV_EPSILON_RANGE))
  train = train_cli.config_from_flags()
  return tune_config_lib.TuneConfig(
      train=train, output_dir=train.output_dir, space=space,
      objectives=tuple(_OBJECTIVES.value or ()),
      max_accuracy_drop=_MAX_ACCURACY_DROP.value,
      max_size_bytes=_MAX_SIZE_BYTES.value,
      max_latency_ms=_MAX_LATENCY_MS.value,
      trials=_TRIALS.value, timeout=_TIMEOUT.value,
      cv_folds=_CV_FOLDS.value, storage=_STORAGE.value,
      study_name=_STUDY_NAME.value, sampler=_SAMPLER.value,
      early_stop_margin=_EARLY_STOP_MARGIN.value,
      robust_attack=_ROBUST_ATTACK.value,
      robust_epsilon=_ROBUST_EPSILON.value,
      final_eval=_FINAL_EVAL.value, final_max=_FINAL_MAX.value,
      heartbeat_interval=_HEARTBEAT_INTERVAL.value,
      grace_period=_GRACE_PERIOD.value)


def summary_lines(summary):
  """A few lines for the terminal."""
  lines = [f"{summary['num_trials']} trials; Pareto front: trials "
           f"{summary['pareto']}; hypervolume {summary['hypervolume']:.6g}"]
  best = summary["best"]
  if best is None:
    lines.append("no trial satisfies the constraints: no best.flags")
  else:
    values = ", ".join(f"{k}={v:.6g}" for k, v in best["values"].items())
    lines.append(f"best: trial {best['number']} {best['params']} ({values})")
  for entry in summary["final"]:
    if entry["test"] is None:
      lines.append(f"test of trial {entry['number']} failed: "
                   f"{entry.get('error')}")
      continue
    test = ", ".join(f"{k}={v:.6g}" for k, v in entry["test"].items()
                     if isinstance(v, (int, float)))
    lines.append(f"test of trial {entry['number']}: {test}")
  return lines


def main(argv):
  if len(argv) > 1:
    return report_user_error(UserInputError(
        f"unexpected arguments {argv[1:]}: every option is a --flag"))
  try:
    config = config_from_flags()
    summary = tune(config)
  except UserInputError as exc:
    return report_user_error(exc)
  for line in summary_lines(summary):
    print(line)
  print(f"wrote {config.output_dir}/tuning.json")
  return 0


def entry_point():
  """Console-script entry point."""
  FLAGS.set_default("output_dir", "tf_compress_tune")
  app.run(main, flags_parser=parse_flags_or_exit)


if __name__ == "__main__":
  entry_point()
