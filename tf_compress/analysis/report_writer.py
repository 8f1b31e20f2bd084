"""Writes a run's `report.html`, `report.md` and plots; compares runs.

    from tf_compress.analysis import write_reports
    report = tf_compress.pipeline.run(config)
    write_reports(report, config.output_dir)
    # {"html": "report.html", "markdown": "report.md", "plots": {...}}

`python -m tf_compress.report RUN_DIR...` calls `load_report` and these
functions to rebuild the reports of finished runs without retraining.
"""

import json
import os

from tf_compress.analysis import report_html
from tf_compress.analysis import report_md
from tf_compress.analysis import report_plots
from tf_compress.analysis.report_schema import COMPARISON_HTML
from tf_compress.analysis.report_schema import COMPARISON_MD
from tf_compress.analysis.report_schema import REPORT_HTML
from tf_compress.analysis.report_schema import REPORT_MD
from tf_compress.analysis.report_schema import REPORT_NAME
from tf_compress.analysis.report_schema import REPORT_SCHEMA_VERSION
from tf_compress.analysis.report_schema import TUNING_NAME
from tf_compress.errors import UserInputError
from tf_compress.io_utils import atomic_write_bytes

__all__ = ["write_reports", "write_comparison", "load_report",
           "load_tuning", "run_labels"]


def _read_json(path, what):
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as exc:
    raise UserInputError(f"{what} '{path}' is not valid JSON ({exc}); "
                         "re-run the job that wrote it.") from None
  except OSError as exc:
    raise UserInputError(f"cannot read {what} '{path}': "
                         f"{exc.strerror or exc}") from None


def load_report(run_dir):
  """Reads and checks `RUN_DIR/report.json`.

  Args:
    run_dir: a directory written by `python -m tf_compress.train`.

  Returns:
    The report dict.

  Raises:
    UserInputError: the directory or report.json is missing, the JSON is
      corrupt, or it is not a tf_compress report of a known schema version.
  """
  run_dir = os.fspath(run_dir)
  if not os.path.isdir(run_dir):
    raise UserInputError(f"run directory '{run_dir}' does not exist or is "
                         "not a directory; give the --output_dir of a "
                         "python -m tf_compress.train run.")
  path = os.path.join(run_dir, REPORT_NAME)
  if not os.path.isfile(path):
    raise UserInputError(f"no {REPORT_NAME} in '{run_dir}'; give the "
                         "--output_dir of a finished tf_compress.train run.")
  report = _read_json(path, "report")
  version = report.get("schema_version") if isinstance(report, dict) else None
  if (isinstance(version, bool) or not isinstance(version, int)
      or not 1 <= version <= REPORT_SCHEMA_VERSION):
    raise UserInputError(
        f"'{path}' has schema_version {version!r}; this tf_compress reads "
        f"report schema versions 1 to {REPORT_SCHEMA_VERSION}.")
  variants = report.get("variants")
  if (not isinstance(variants, list) or not variants or not all(
      isinstance(v, dict) and isinstance(v.get("name"), str)
      for v in variants)):
    raise UserInputError(f"'{path}' has no valid 'variants' list; it is not "
                         "a tf_compress.train report.")
  return report


def load_tuning(run_dir):
  """`RUN_DIR/tuning.json` as a dict, or None when there is none.

  Raises:
    UserInputError: the file exists but is not a JSON object.
  """
  path = os.path.join(os.fspath(run_dir), TUNING_NAME)
  if not os.path.isfile(path):
    return None
  tuning = _read_json(path, "tuning results")
  if not isinstance(tuning, dict):
    raise UserInputError(f"'{path}' does not hold a JSON object; it is not "
                         "a tf_compress tuning result.")
  return tuning


def _copy_tuning_plots(tuning, run_dir, output_dir):
  """Copies tuning.json's plots next to report.md when writing elsewhere."""
  for filename in (tuning.get("plots") or {}).values():
    source = os.path.join(run_dir, filename)
    target = os.path.join(output_dir, filename)
    if (os.path.isfile(source)
        and os.path.abspath(source) != os.path.abspath(target)):
      with open(source, "rb") as f:
        atomic_write_bytes(target, f.read())


def write_reports(report, run_dir, output_dir=None, models=None,
                  tuning=None):
  """Writes the plots, `report.html` and `report.md` of one run.

  Args:
    report: the run's report (report.json's dict).
    run_dir: the run directory (its saved models and TFLite files feed the
      weight histograms; a `tuning.json` there adds a tuning section).
    output_dir: where to write; defaults to `run_dir`.
    models: optional {variant name: tf_keras model} to histogram instead of
      loading the saved files.
    tuning: optional tuning.json dict; by default read from `run_dir`.

  Returns:
    {"html": "report.html", "markdown": "report.md", "plots": {plot name:
    PNG file name}}, file names relative to `output_dir`.

  Raises:
    UserInputError: a corrupt tuning.json.
    OSError: the output cannot be written.
  """
  run_dir = os.fspath(run_dir)
  output_dir = os.fspath(output_dir or run_dir)
  os.makedirs(output_dir, exist_ok=True)
  if tuning is None:
    tuning = load_tuning(run_dir)
  if tuning:
    _copy_tuning_plots(tuning, run_dir, output_dir)
  plots = report_plots.write_report_plots(report, run_dir, output_dir,
                                          models=models)
  report_html.write_html(
      os.path.join(output_dir, REPORT_HTML),
      report_html.render_html(report, plots, output_dir, tuning=tuning,
                              tuning_dir=output_dir))
  report_md.write_markdown(
      os.path.join(output_dir, REPORT_MD),
      report_md.render_markdown(report, plots, output_dir, tuning=tuning))
  return {"html": REPORT_HTML, "markdown": REPORT_MD, "plots": plots}


def run_labels(run_dirs):
  """Short unique labels for run directories (their base names)."""
  labels = []
  for run_dir in run_dirs:
    label = os.path.basename(os.path.normpath(os.fspath(run_dir))) or "run"
    base, n = label, 2
    while label in labels:
      label, n = f"{base} ({n})", n + 1
    labels.append(label)
  return labels


def write_comparison(runs, output_dir):
  """Writes `comparison.html` and `comparison.md`: runs side by side.

  Args:
    runs: list of (run label, report).
    output_dir: where to write (created if needed).

  Returns:
    {"html": "comparison.html", "markdown": "comparison.md", "plots": {...}}.
  """
  output_dir = os.fspath(output_dir)
  os.makedirs(output_dir, exist_ok=True)
  plots = report_plots.write_comparison_plots(runs, output_dir)
  report_html.write_html(
      os.path.join(output_dir, COMPARISON_HTML),
      report_html.render_comparison_html(runs, plots, output_dir))
  report_md.write_markdown(
      os.path.join(output_dir, COMPARISON_MD),
      report_md.render_comparison_markdown(runs, plots, output_dir))
  return {"html": COMPARISON_HTML, "markdown": COMPARISON_MD, "plots": plots}
