"""`report.html`: one self-contained page of a run's (or several runs') results.

Plots are embedded as base64 `data:` URIs and the style sheet is inline, so
the file opens anywhere, offline, on its own: it references no other file and
no URL (text that looks like a URL is written so that it is not one).
"""

import base64
import html
import os

from tf_compress.analysis import report_advice
from tf_compress.analysis import report_seeds
from tf_compress.analysis import report_sensitivity
from tf_compress.analysis import report_significance as significance
from tf_compress.analysis import report_tables as tables
from tf_compress.analysis.report_plots import plot_caption
from tf_compress.analysis.report_schema import FLAGFILE_NAME
from tf_compress.io_utils import atomic_write_text

__all__ = ["render_html", "render_comparison_html", "write_html",
           "table_html", "image_data_uri"]

_STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1250px;
       padding: 0 1em;
       color: #1d1d1f; background: #ffffff; line-height: 1.4; }
h1 { border-bottom: 3px solid #2b6cb0; padding-bottom: .2em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #cbd5e0; color: #2b6cb0; }
h3 { margin-bottom: .3em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: 13px; }
th, td { border: 1px solid #cbd5e0; padding: 3px 8px; text-align: right; }
th { background: #edf2f7; }
td:nth-child(-n+3), th:nth-child(-n+3) { text-align: left; }
tr.pareto td { background: #fefcbf; font-weight: bold; }
table.kv td:first-child { text-align: left; color: #4a5568; }
p.note { color: #4a5568; font-size: 13px; margin: .2em 0; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #e2e8f0; }
figcaption { color: #4a5568; font-size: 13px; }
figure.curve { display: inline-block; width: 49%; margin: .5em 0;
               vertical-align: top; }
pre { background: #f7fafc; border: 1px solid #e2e8f0; padding: .6em;
      overflow-x: auto; font-size: 12px; }
.headline { display: flex; gap: 1em; flex-wrap: wrap; }
.headline div { background: #ebf8ff; border: 1px solid #bee3f8;
                padding: .5em 1em; border-radius: 6px; }
.headline b { font-size: 20px; display: block; }
nav a { margin-right: 1em; }
"""


def _text(value):
  """Escaped text in which nothing reads as a URL (`://` is split)."""
  return html.escape(str(value)).replace("://", ":&#47;&#47;")


def image_data_uri(path):
  """The PNG at `path` as a `data:image/png;base64,...` URI."""
  with open(path, "rb") as f:
    return "data:image/png;base64," + base64.b64encode(f.read()).decode(
        "ascii")


def table_html(table):
  """One `report_tables.Table` as an HTML table (Pareto rows highlighted)."""
  out = [f"<h3>{_text(table.title)}</h3>"] if table.title else []
  if table.note:
    out.append(f'<p class="note">{_text(table.note)}</p>')
  out.append("<table>")
  if table.groups:
    out.append("<tr>" + "".join(
        f'<th colspan="{span}">{_text(label)}</th>'
        for label, span in table.groups) + "</tr>")
  out.append("<tr>" + "".join(f"<th>{_text(h)}</th>" for h in table.header)
             + "</tr>")
  highlight = table.highlight or [False] * len(table.rows)
  for row, marked in zip(table.rows, highlight):
    css = ' class="pareto"' if marked else ""
    out.append(f"<tr{css}>" + "".join(f"<td>{_text(c)}</td>" for c in row)
               + "</tr>")
  out.append("</table>")
  if not table.rows:
    out.append('<p class="note">(nothing to show)</p>')
  return "\n".join(out)


def _key_values(items):
  return ('<table class="kv">' + "".join(
      f"<tr><td>{_text(k)}</td><td>{_text(v)}</td></tr>" for k, v in items)
          + "</table>")


def _figure(uri, caption, css=""):
  css = f' class="{css}"' if css else ""
  return (f'<figure{css}><img alt="{_text(caption)}" src="{uri}">'
          f"<figcaption>{_text(caption)}</figcaption></figure>")


def _plots_html(plots, plot_dir):
  parts = []
  for name, filename in plots.items():
    path = os.path.join(plot_dir, filename)
    if os.path.exists(path):
      # Training curves (one per variant) go two to a row.
      parts.append(_figure(image_data_uri(path), plot_caption(name),
                           "curve" if name.startswith("training_curves/")
                           else ""))
  return "\n".join(parts)


def _headline_html(report):
  """Boxes: the baseline and the best compressed variant's headline metrics."""
  metrics = tables.headline_metrics(report)
  boxes = []
  baseline = next((v for v in report.get("variants", [])
                   if v["name"] == "baseline"), None)
  best = tables.best_compressed(report)
  for title, variant in (("baseline", baseline),
                         (f"best compressed: {best['name']}" if best else "",
                          best)):
    if variant is None:
      continue
    for metric in metrics:
      label = tables.metric_label(metric, report)
      value = tables.fmt(variant.get(metric), "pct")
      boxes.append(f"<div>{_text(title)} {_text(label)}<b>{_text(value)}"
                   "</b></div>")
  pareto = [f"{r['variant']}/{r['mode']}"
            for r, _, _ in tables.variant_rows(report) if r["pareto"]]
  if pareto:
    boxes.append(f"<div>Pareto-optimal exports<b>{_text(len(pareto))}</b>"
                 f"{_text(', '.join(pareto))}</div>")
  return '<div class="headline">' + "".join(boxes) + "</div>"


def _tuning_html(tuning, tuning_dir):
  parts = ['<h2 id="tuning">Tuning</h2>']
  objectives = ", ".join(f"{o} ({d})" for o, d in zip(
      tuning.get("objectives") or [], tuning.get("directions") or []))
  parts.append(f'<p class="note">Objectives: {_text(objectives)}</p>')
  parts.extend(table_html(t) for t in tables.tuning_tables(tuning))
  best = tuning.get("best") or {}
  if best:
    parts.append(f"<h3>Best configuration (trial "
                 f"{_text(best.get('number'))})</h3>")
    parts.append(_key_values(sorted((best.get("params") or {}).items())))
    if best.get("flagfile"):
      parts.append(f"<p class=\"note\">flagfile: "
                   f"{_text(best['flagfile'])}</p>")
  pareto_png = (tuning.get("plots") or {}).get("pareto")
  if pareto_png and tuning_dir and os.path.exists(
      os.path.join(tuning_dir, pareto_png)):
    parts.append(_figure(image_data_uri(os.path.join(tuning_dir, pareto_png)),
                         "Tuning: the Pareto front of the trials."))
  return "\n".join(parts)


def _page(title, body):
  return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8"
          f"\">\n<title>{_text(title)}</title>\n<style>{_STYLE}</style>\n"
          f"</head>\n<body>\n<h1>{_text(title)}</h1>\n{body}\n</body>\n"
          "</html>\n")


def render_html(report, plots, plot_dir, tuning=None, tuning_dir=None,
                title=None):
  """Renders one run's report as a self-contained HTML page.

  Args:
    report: report.json's dict.
    plots: {plot name: PNG file name} from `write_report_plots`.
    plot_dir: the directory holding those PNGs (they are embedded).
    tuning: optional tuning.json dict; adds a tuning section.
    tuning_dir: where tuning.json's plots are (its `plots` file names).
    title: the page title; defaults to the dataset and model.

  Returns:
    The HTML text.
  """
  title = title or tables.report_title(report)
  dataset = report.get("dataset") or {}
  sections = [("results", "Results"), ("significance", "Differences"),
              ("advice", "Advice"), ("sensitivity", "Sensitivity"),
              ("who-pays", "Who pays"),
              ("sweeps", "Sweeps"), ("tuning", "Tuning"), ("plots", "Plots"),
              ("dataset", "Dataset"), ("reproduce", "Reproduce")]
  sweeps = tables.sweep_tables(report)
  if not sweeps:
    sections.remove(("sweeps", "Sweeps"))
  if not tuning:
    sections.remove(("tuning", "Tuning"))
  differences = significance.significance_table(report)
  if differences is None:
    sections.remove(("significance", "Differences"))
  if not report.get("advice"):
    sections.remove(("advice", "Advice"))
  layer_table = report_sensitivity.sensitivity_table(report)
  if layer_table is None:
    sections.remove(("sensitivity", "Sensitivity"))
  body = ["<nav>" + "".join(f'<a href="#{a}">{_text(t)}</a>'
                            for a, t in sections) + "</nav>"]
  body.append('<h2 id="results">Results</h2>')
  body.append(_headline_html(report))
  body.append(table_html(tables.comparison_table(report)))
  if differences is not None:
    body.append('<h2 id="significance">What the differences mean</h2>')
    body.append("<ul class=\"claims\">" + "".join(
        f"<li>{_text(c)}</li>" for c in significance.claims(report))
                + "</ul>")
    body.append(table_html(differences))
    per_class = significance.per_class_interval_table(report)
    if per_class is not None:
      body.append(table_html(per_class))
  across = report_seeds.seeds_table(report)
  if across is not None:
    body.append(table_html(across))
  advice = report_advice.advice_table(report)
  if advice is not None:
    body.append('<h2 id="advice">Which export to ship</h2>')
    body.append("<ul class=\"claims\">" + "".join(
        f"<li>{_text(line)}</li>" for line in report_advice.advice_lines(
            report)) + "</ul>")
    body.append(table_html(advice))
  plots = dict(plots)
  layer_plot = plots.pop("sensitivity", None)
  if layer_table is not None:
    body.append('<h2 id="sensitivity">Per-layer sensitivity</h2>')
    body.append("<ul class=\"claims\">" + "".join(
        f"<li>{_text(line)}</li>" for line in
        report_sensitivity.sensitivity_lines(report)) + "</ul>")
    body.append(table_html(layer_table))
    if layer_plot and os.path.exists(os.path.join(plot_dir, layer_plot)):
      body.append(_figure(image_data_uri(os.path.join(plot_dir, layer_plot)),
                          plot_caption("sensitivity")))
  body.append('<h2 id="who-pays">Who pays for compression</h2>')
  body.append(table_html(tables.who_pays_table(report)))
  if sweeps:
    body.append('<h2 id="sweeps">Sweeps</h2>')
    body.extend(table_html(t) for t in sweeps)
  if tuning:
    body.append(_tuning_html(tuning, tuning_dir))
  body.append('<h2 id="plots">Plots</h2>')
  body.append(_plots_html(plots, plot_dir))
  body.append('<h2 id="dataset">Dataset</h2>')
  body.append(_key_values(tables.dataset_summary(dataset)))
  body.extend(table_html(t) for t in tables.dataset_tables(dataset))
  body.append(_reproduce_html(report))
  return _page(title, "\n".join(body))


def _reproduce_html(report):
  command, flagfile, items = tables.reproducibility(report)
  parts = ['<h2 id="reproduce">Reproduce</h2>']
  if command:
    parts.append("<p>The command line of this run:</p>")
    parts.append(f"<pre>{_text(command)}</pre>")
  if flagfile:
    parts.append("<p>Or, with every setting spelled out, save this as "
                 f"<code>{FLAGFILE_NAME}</code> and run <code>python -m "
                 f"tf_compress.train --flagfile={FLAGFILE_NAME}</code>:</p>")
    parts.append(f"<pre>{_text(flagfile)}</pre>")
  parts.append("<h3>Versions and seed</h3>")
  parts.append(_key_values(items))
  return "\n".join(parts)


def render_comparison_html(runs, plots, plot_dir, title=None):
  """Renders several runs side by side as one self-contained HTML page.

  Args:
    runs: list of (run label, report).
    plots: {plot name: PNG file name} from `write_comparison_plots`.
    plot_dir: the directory holding those PNGs.
    title: the page title.

  Returns:
    The HTML text.
  """
  body = ['<h2 id="runs">Runs</h2>']
  header = ["run", "dataset", "model", "seed", "variants", "command"]
  rows = []
  for label, report in runs:
    config = report.get("config") or {}
    command = tables.reproducibility(report)[0]
    rows.append([label, (report.get("dataset") or {}).get("name", "-"),
                 str(config.get("model", "-")), str(config.get("seed", "-")),
                 str(len(report.get("variants", []))), command or "-"])
  body.append(table_html(tables.Table("", header, rows)))
  body.append('<h2 id="comparison">Side by side</h2>')
  body.append(table_html(tables.multi_run_table(runs)))
  body.append('<h2 id="plots">Plots</h2>')
  body.append(_plots_html(plots, plot_dir))
  return _page(title or f"tf_compress: {len(runs)} runs compared",
               "\n".join(body))


def write_html(path, text):
  """Writes an HTML page atomically; returns `path`."""
  atomic_write_text(os.fspath(path), text)
  return os.fspath(path)
