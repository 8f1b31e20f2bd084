r"""Command line: which export of a finished run to ship, and why.

    python -m tf_compress.advise /tmp/run --max_drop=1.0

Reads RUN_DIR/report.json (the exports, their accuracy, the paired
intervals, gzip sizes and measured LiteRT latency, and the CPU's
instruction set), picks the fastest export on this CPU, the fastest on the
GPU accelerator where one was measured ("not measured" otherwise) and the
smallest, among those whose top-1 drop from the baseline stays within
--max_drop points, and says plainly when int8 ran slower than float32 and
why. The choice is printed, written into report.json as `advice` and into
report.html and report.md (rebuilt). Exit code 0 on success, 2 on bad input
(one `error: ...` line).
"""

import os
import sys

from absl import flags

from tf_compress.analysis import advise as advise_report
from tf_compress.analysis import report_writer
from tf_compress.analysis.report_schema import REPORT_NAME
from tf_compress.cli import common
from tf_compress.errors import UserInputError
from tf_compress.io_utils import atomic_write_json

__all__ = ["run", "define_flags", "main", "entry_point"]

FLAGS = flags.FLAGS


def define_flags(flag_values=None):
  """Defines this tool's flags in `flag_values` (default `flags.FLAGS`)."""
  fv = flags.FLAGS if flag_values is None else flag_values
  flags.DEFINE_float(
      "max_drop", 1.0, "Largest top-1 drop from the baseline's Keras model "
      "allowed, in percentage points.", lower_bound=0.0, flag_values=fv)
  return fv


def run(run_dir, max_drop=1.0, stream=None):
  """Advises on one run and writes the advice into its reports.

  Args:
    run_dir: a directory written by `python -m tf_compress.train`.
    max_drop: the accuracy budget, in points.
    stream: where to print the advice; default `sys.stdout`.

  Returns:
    The advice (`analysis.advise`), as stored in report.json's `advice`.

  Raises:
    UserInputError: a missing or bad run directory or report, or a run
      without exports.
  """
  run_dir = os.fspath(run_dir)
  report = report_writer.load_report(run_dir)
  try:
    advice = advise_report(report, max_drop_pt=max_drop)
  except ValueError as exc:
    raise UserInputError(f"cannot advise on '{run_dir}': {exc}") from None
  report["advice"] = advice
  atomic_write_json(os.path.join(run_dir, REPORT_NAME), report)
  report_writer.write_reports(report, run_dir)
  stream = sys.stdout if stream is None else stream
  for line in advice["summary"]:
    print(line, file=stream)
  print(f"Wrote the advice into {os.path.join(run_dir, REPORT_NAME)} and "
        "report.html", file=stream)
  return advice


def main(argv):
  """The absl entry point: the one positional argument is the run dir."""
  if len(argv) != 2:
    return common.report_user_error(UserInputError(
        "give one run directory: python -m tf_compress.advise RUN_DIR "
        "[--max_drop=1.0]"))
  try:
    run(argv[1], max_drop=FLAGS.max_drop)
  except UserInputError as exc:
    return common.report_user_error(exc)
  except OSError as exc:
    return common.report_user_error(
        f"could not write the advice: {exc.strerror or exc} "
        f"({exc.filename or ''})")
  return 0


def entry_point():
  """Console-script entry point."""
  common.run_command(main, define_flags)


if __name__ == "__main__":
  entry_point()
