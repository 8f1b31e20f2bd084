r"""Command line: rebuild the results report of finished runs, no retraining.

    python -m tf_compress.report /tmp/run
    python -m tf_compress.report /tmp/run_a /tmp/run_b --output_dir=/tmp/cmp

With one run directory, rewrites `report.html` (self-contained: plots
embedded), `report.md` and the plots from its `report.json`, the saved
models (weight histograms) and, when present, `tuning.json`. With several,
writes `comparison.html` and `comparison.md` (one column group per run) into
--output_dir, by default the first run directory. Exit code 0 on success, 2
on bad input (with one `error: ...` line on stderr).

The flags are defined only when this module runs as a program, so importing
it (e.g. to call `run`) never clashes with other tools' flags.
"""

import os
import sys

from absl import flags

from tf_compress.cli import common
from tf_compress.analysis import report_writer
from tf_compress.errors import UserInputError

__all__ = ["run", "run_from_flags", "define_flags", "main", "entry_point"]

FLAGS = flags.FLAGS


def define_flags(flag_values=None):
  """Defines this tool's flags in `flag_values` (default `flags.FLAGS`)."""
  fv = flags.FLAGS if flag_values is None else flag_values
  flags.DEFINE_string(
      "output_dir", None,
      "Where to write the report(s); default: the (first) run directory.",
      flag_values=fv)
  return fv


def _prepare(output_dir):
  output_dir = os.fspath(output_dir)
  if os.path.exists(output_dir) and not os.path.isdir(output_dir):
    raise UserInputError(f"--output_dir '{output_dir}' exists and is not a "
                         "directory")
  try:
    os.makedirs(output_dir, exist_ok=True)
  except OSError as exc:
    raise UserInputError(f"--output_dir '{output_dir}' cannot be created: "
                         f"{exc.strerror or exc}") from None
  if not os.access(output_dir, os.W_OK):
    raise UserInputError(f"--output_dir '{output_dir}' is not writable")
  return output_dir


def run(run_dirs, output_dir=None, stream=None):
  """Rebuilds one run's report, or compares several runs.

  Args:
    run_dirs: run directories (each holding a report.json).
    output_dir: where to write; default: the first run directory.
    stream: where to print what was written; default `sys.stdout`.

  Returns:
    The artifacts written: `{"html", "markdown", "plots"}` (file names
    relative to the output directory) plus `output_dir`.

  Raises:
    UserInputError: no run directory, a missing directory or report.json, a
      corrupt or unknown report, or an unwritable output directory. Every
      report is read and checked before anything is written.
  """
  run_dirs = [os.fspath(d) for d in run_dirs]
  if not run_dirs:
    raise UserInputError("give at least one run directory: python -m "
                         "tf_compress.report RUN_DIR [RUN_DIR ...]")
  loaded = [report_writer.load_report(d) for d in run_dirs]
  tunings = [report_writer.load_tuning(d) for d in run_dirs]
  out = _prepare(output_dir or run_dirs[0])
  if len(run_dirs) == 1:
    artifacts = report_writer.write_reports(loaded[0], run_dirs[0], out,
                                      tuning=tunings[0])
  else:
    runs = list(zip(report_writer.run_labels(run_dirs), loaded))
    artifacts = report_writer.write_comparison(runs, out)
  stream = sys.stdout if stream is None else stream
  for key in ("html", "markdown"):
    print(f"Wrote {os.path.join(out, artifacts[key])}", file=stream)
  print(f"Wrote {len(artifacts['plots'])} plots into {out}", file=stream)
  return dict(artifacts, output_dir=out)


def run_from_flags(run_dirs, flag_values=None):
  """Calls `run` with parsed flag values; returns the exit code (0 or 2)."""
  fv = FLAGS if flag_values is None else flag_values
  try:
    run(run_dirs, output_dir=fv.output_dir)
  except UserInputError as exc:
    return common.report_user_error(exc)
  except OSError as exc:
    return common.report_user_error(
        f"could not write the report: {exc.strerror or exc} "
        f"({exc.filename or ''})")
  return 0


def main(argv):
  """The absl entry point: positional arguments are the run directories."""
  return run_from_flags(argv[1:], FLAGS)


def entry_point():
  """Console-script entry point."""
  common.run_command(main, define_flags)


if __name__ == "__main__":
  entry_point()
