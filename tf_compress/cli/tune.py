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
fields of `TuneConfig` and `SearchSpace` add the search flags. With no search
flag the default space is searched, and the command says what it searched. Re-running the same command resumes the study;
several processes started with the same `--output_dir` (or `--storage`)
work on one study. Bad input prints one `error:` line and exits with code 2.
"""

from absl import flags

from tf_compress import pipeline
from tf_compress.cli import config_flags
from tf_compress.cli import common
from tf_compress.cli.common import report_user_error
from tf_compress.errors import UserInputError
from tf_compress.pipeline.tuning import tune_config as tune_config_lib
from tf_compress.pipeline.tuning import space as space_lib
from tf_compress.pipeline.tuning.tuner import tune

__all__ = ["define_flags", "config_from_flags", "summary_lines", "main",
           "entry_point"]

FLAGS = flags.FLAGS


def define_flags(flag_values=None):
  """Defines the tune flags: the train flags (the base config), the search
  space and the study, one per `TuneConfig` field; idempotent.

  Returns:
    The `flags.FlagValues` used.
  """
  fv = FLAGS if flag_values is None else flag_values
  config_flags.define_config_flags(tune_config_lib.TuneConfig, fv,
                                   defaults={"output_dir": "tf_compress_tune"})
  return fv


def config_from_flags(flag_values=None):
  """The `TuneConfig` the parsed flags describe.

  With no search flag at all, the space is `space_lib.DEFAULT_SPACE`.
  """
  fv = FLAGS if flag_values is None else flag_values
  flat = config_flags.flag_values_dict(tune_config_lib.TuneConfig, fv)
  space = space_lib.SearchSpace(**{
      opt.path[-1]: flat[opt.flag]
      for opt in pipeline.options(space_lib.SearchSpace)})
  if space == space_lib.SearchSpace():
    for opt in pipeline.options(space_lib.SearchSpace):
      flat[opt.flag] = getattr(space_lib.DEFAULT_SPACE, opt.path[-1])
  return tune_config_lib.TuneConfig.from_flat(**flat)


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


def main(argv, flag_values=None):
  """Runs the tuner on parsed flags; returns the exit code."""
  if len(argv) > 1:
    return report_user_error(UserInputError(
        f"unexpected arguments {argv[1:]}: every option is a --flag"))
  try:
    config = config_from_flags(flag_values)
    print(f"searching {space_lib.describe(config.space)}")
    summary = tune(config)
  except UserInputError as exc:
    return report_user_error(exc)
  for line in summary_lines(summary):
    print(line)
  print(f"wrote {config.output_dir}/tuning.json")
  return 0


def entry_point():
  """Console-script entry point."""
  common.run_command(main, define_flags)


if __name__ == "__main__":
  entry_point()
