"""`python -m tf_compress.train`: train, compress, evaluate and report.

Example:
  python -m tf_compress.train --dataset=digits --output_dir=/tmp/run
  python -m tf_compress.train --flagfile=run.flags

Every flag is a field of `tf_compress.pipeline.RunConfig`, generated from
its declaration. Bad input (flags, dataset, model, output directory) prints
one line starting with `error:` and exits with code 2.
"""

import sys

from absl import flags

from tf_compress.analysis import format_comparison
from tf_compress.cli import common
from tf_compress.cli import config_flags
from tf_compress.errors import UserInputError
from tf_compress.pipeline import RunConfig
from tf_compress.pipeline import run

__all__ = ["define_flags", "config_from_flags", "main", "entry_point"]


def define_flags(flag_values=None, defaults=None):
  """Defines the train flags (one per `RunConfig` field); idempotent.

  Args:
    flag_values: the `flags.FlagValues`; default `flags.FLAGS`.
    defaults: `{flag name: default}` overrides for another command.

  Returns:
    The `flags.FlagValues` used.
  """
  fv = flags.FLAGS if flag_values is None else flag_values
  config_flags.define_config_flags(RunConfig, fv, defaults)
  return fv


def config_from_flags(flag_values=None):
  """The `RunConfig` the parsed flags describe."""
  return config_flags.config_from_flags(RunConfig, flag_values)


def _summary_line(report):
  rows = []
  for variant in report["variants"]:
    rows.append(f"{variant['name']}: top1={variant['top1']:.4f} "
                f"top{variant['top_k']}={variant['topk']:.4f} "
                f"params={variant['params']}")
  return "; ".join(rows)


def main(argv, flag_values=None):
  """Runs the train command on parsed flags; returns the exit code."""
  if len(argv) > 1:
    return common.report_user_error(UserInputError(
        f"unexpected arguments {argv[1:]}: every option is a --flag"))
  try:
    config = config_from_flags(flag_values)
    report = run(config, argv=sys.argv)
  except UserInputError as exc:
    return common.report_user_error(exc)
  print(format_comparison(report["comparison"]))
  for claim in (report.get("statistics") or {}).get("claims", []):
    print(claim["text"])
  # A multi-worker run's non-chief wrote into a temporary directory.
  output_dir = report.get("config", {}).get("output_dir", config.output_dir)
  print(f"wrote {output_dir}/report.json; {_summary_line(report)}")
  return 0


def entry_point():
  """Console-script entry point."""
  common.run_command(main, define_flags)


if __name__ == "__main__":
  entry_point()
