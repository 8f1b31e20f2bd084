"""`report.md`: the report's tables as GitHub markdown, plots as image links.

The same `report_tables` as `report.html`; plots are linked by their file
names, relative to the markdown file (they are written beside it).
"""

import os

from tf_compress.analysis import report_advice
from tf_compress.analysis import report_seeds
from tf_compress.analysis import report_sensitivity
from tf_compress.analysis import report_significance as significance
from tf_compress.analysis import report_tables as tables
from tf_compress.analysis.report_plots import plot_caption
from tf_compress.analysis.report_schema import FLAGFILE_NAME
from tf_compress.io_utils import atomic_write_text

__all__ = ["render_markdown", "render_comparison_markdown", "write_markdown",
           "table_markdown"]


def _cell(value):
  """A table cell: pipes escaped, newlines folded."""
  return " ".join(str(value).split()).replace("|", "\\|") or " "


def table_markdown(table):
  """One `report_tables.Table` as a GitHub markdown table."""
  out = [f"### {table.title}", ""] if table.title else []
  if table.note:
    out += [table.note, ""]
  header = list(table.header)
  if table.groups:
    # Markdown has no column groups: prefix each column with its group.
    labels = [label for label, span in table.groups for _ in range(span)]
    header = [f"{g} {h}".strip() for g, h in zip(labels, header)]
  out.append("| " + " | ".join(_cell(h) for h in header) + " |")
  out.append("|" + "|".join("---" for _ in header) + "|")
  highlight = table.highlight or [False] * len(table.rows)
  for row, marked in zip(table.rows, highlight):
    cells = [_cell(c) for c in row]
    if marked:
      cells = [f"**{c}**" if c.strip() else c for c in cells]
    out.append("| " + " | ".join(cells) + " |")
  if not table.rows:
    out.append("")
    out.append("(nothing to show)")
  out.append("")
  return "\n".join(out)


def _key_values(items):
  return table_markdown(tables.Table("", ["", ""], [[k, v] for k, v in items]))


def _plots_markdown(plots, plot_dir):
  lines = []
  for name, filename in plots.items():
    if plot_dir is None or os.path.exists(os.path.join(plot_dir, filename)):
      lines += [f"![{plot_caption(name)}]({filename})", "",
                f"*{plot_caption(name)}*", ""]
  return lines


def _tuning_markdown(tuning):
  lines = ["## Tuning", ""]
  objectives = ", ".join(f"{o} ({d})" for o, d in zip(
      tuning.get("objectives") or [], tuning.get("directions") or []))
  lines += [f"Objectives: {objectives}", ""]
  lines += [table_markdown(t) for t in tables.tuning_tables(tuning)]
  best = tuning.get("best") or {}
  if best:
    lines += [f"### Best configuration (trial {best.get('number')})", ""]
    lines.append(_key_values(sorted(
        (k, tables.fmt(v)) for k, v in (best.get("params") or {}).items())))
    if best.get("flagfile"):
      lines += [f"flagfile: `{best['flagfile']}`", ""]
  pareto_png = (tuning.get("plots") or {}).get("pareto")
  if pareto_png:
    lines += [f"![Tuning: the Pareto front]({pareto_png})", ""]
  return lines


def render_markdown(report, plots, plot_dir=None, tuning=None, title=None):
  """Renders one run's report as GitHub markdown.

  Args:
    report: report.json's dict.
    plots: {plot name: PNG file name}, linked relative to the markdown file.
    plot_dir: when given, only plots whose file exists there are linked.
    tuning: optional tuning.json dict; adds a tuning section.
    title: the title; defaults to the dataset and model.

  Returns:
    The markdown text.
  """
  title = title or tables.report_title(report)
  dataset = report.get("dataset") or {}
  lines = [f"# {title}", "", "## Results", ""]
  best = tables.best_compressed(report)
  if best is not None:
    metric = tables.headline_metrics(report)[0]
    lines += [f"Best compressed variant by "
              f"{tables.metric_label(metric, report)}: **{best['name']}** "
              f"({tables.fmt(best.get(metric), 'pct')}).", ""]
  lines.append(table_markdown(tables.comparison_table(report)))
  differences = significance.significance_table(report)
  if differences is not None:
    lines += ["## What the differences mean", ""]
    lines += [f"- {c}" for c in significance.claims(report)] + [""]
    lines.append(table_markdown(differences))
    per_class = significance.per_class_interval_table(report)
    if per_class is not None:
      lines.append(table_markdown(per_class))
  across = report_seeds.seeds_table(report)
  if across is not None:
    lines.append(table_markdown(across))
  advice = report_advice.advice_table(report)
  if advice is not None:
    lines += ["## Which export to ship", ""]
    lines += [f"- {line}" for line in report_advice.advice_lines(report)]
    lines += ["", table_markdown(advice)]
  plots = dict(plots)
  layer_plot = plots.pop("sensitivity", None)
  layer_table = report_sensitivity.sensitivity_table(report)
  if layer_table is not None:
    lines += ["## Per-layer sensitivity", ""]
    lines += [f"- {line}" for line in
              report_sensitivity.sensitivity_lines(report)]
    lines += ["", table_markdown(layer_table)]
    if layer_plot and (plot_dir is None or os.path.exists(
        os.path.join(plot_dir, layer_plot))):
      lines += [f"![{plot_caption('sensitivity')}]({layer_plot})", ""]
  lines += ["## Who pays for compression", ""]
  lines.append(table_markdown(tables.who_pays_table(report)))
  sweeps = tables.sweep_tables(report)
  if sweeps:
    lines += ["## Sweeps", ""] + [table_markdown(t) for t in sweeps]
  if tuning:
    lines += _tuning_markdown(tuning)
  lines += ["## Plots", ""] + _plots_markdown(plots, plot_dir)
  lines += ["## Dataset", "", _key_values(tables.dataset_summary(dataset))]
  lines += [table_markdown(t) for t in tables.dataset_tables(dataset)]
  command, flagfile, items = tables.reproducibility(report)
  lines += ["## Reproduce", ""]
  if command:
    lines += ["```sh", command, "```", ""]
  if flagfile:
    lines += ["Every setting, as a flagfile for `python -m tf_compress.train "
              f"--flagfile={FLAGFILE_NAME}`:", "", "```", flagfile, "```",
              ""]
  lines += ["### Versions and seed", "", _key_values(items)]
  return "\n".join(lines).rstrip() + "\n"


def render_comparison_markdown(runs, plots, plot_dir=None, title=None):
  """Renders several runs side by side as GitHub markdown.

  Args:
    runs: list of (run label, report).
    plots: {plot name: PNG file name} from `write_comparison_plots`.
    plot_dir: when given, only plots whose file exists there are linked.
    title: the title.

  Returns:
    The markdown text.
  """
  lines = [f"# {title or f'tf_compress: {len(runs)} runs compared'}", "",
           "## Runs", ""]
  rows = []
  for label, report in runs:
    config = report.get("config") or {}
    rows.append([label, (report.get("dataset") or {}).get("name", "-"),
                 str(config.get("model", "-")), str(config.get("seed", "-")),
                 tables.reproducibility(report)[0] or "-"])
  lines.append(table_markdown(tables.Table(
      "", ["run", "dataset", "model", "seed", "command"], rows)))
  lines += ["## Side by side", "",
            table_markdown(tables.multi_run_table(runs)), "## Plots", ""]
  lines += _plots_markdown(plots, plot_dir)
  return "\n".join(lines).rstrip() + "\n"


def write_markdown(path, text):
  """Writes a markdown file atomically; returns `path`."""
  atomic_write_text(os.fspath(path), text)
  return os.fspath(path)
