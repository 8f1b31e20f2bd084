"""The report's per-layer sensitivity table, from report.json's `sensitivity`.

`python -m tf_compress.train --sensitivity=int8` (or `prune:S`,
`cluster:K`) writes `sensitivity` (`analysis.sensitivity`); a report
without it gets no such section. The plot of the same rows is
`sensitivity_plots.plot_sensitivity`, drawn by `write_report_plots`.
"""

from tf_compress.analysis.report_tables import Table
from tf_compress.analysis.report_tables import fmt

__all__ = ["SENSITIVITY_PLOT", "sensitivity_table", "sensitivity_lines"]

SENSITIVITY_PLOT = "sensitivity.png"


def _describe(method):
  kind, _, value = str(method).partition(":")
  if kind == "int8":
    return ("quantized to int8 alone (every other op float), run on LiteRT, "
            "against the float32 TFLite file")
  if kind == "prune":
    return (f"magnitude-pruned alone to sparsity {value} (no fine-tuning), "
            "against the Keras model")
  return (f"clustered alone to {value} centroids (1-D k-means), against the "
          "Keras model")


def sensitivity_lines(report):
  """One sentence naming the most sensitive layer, or [] without data."""
  result = report.get("sensitivity") or {}
  rows = result.get("rows") or []
  if not rows:
    return []
  top = rows[0]
  verdict = ("significant" if top.get("significant")
             else "not significant: its interval includes 0")
  return [f"Most sensitive layer to {result.get('method')}: {top['layer']}, "
          f"{top['drop']:+.2f} pt top-1 drop [{top['ci_low']:+.2f}, "
          f"{top['ci_high']:+.2f}] ({verdict})."]


def sensitivity_table(report):
  """One row per layer, the largest drop first; None without sensitivity."""
  result = report.get("sensitivity")
  if not result or not result.get("rows"):
    return None
  level = round(100 * float(result.get("confidence", 0.95)))
  header = ["layer", f"top-1 drop (pt) [{level}% CI]", "p", "top-1"]
  rows, highlight = [], []
  for row in result["rows"]:
    rows.append([row["layer"],
                 f"{row['drop']:+.2f} [{row['ci_low']:+.2f}, "
                 f"{row['ci_high']:+.2f}]",
                 f"{row['p']:.2g}", fmt(row.get("top1"), "pct")])
    highlight.append(bool(row.get("significant")))
  note = (f"Each layer {_describe(result.get('method'))}; top-1 on the "
          f"{result.get('num_samples', '?')} validation samples (reference "
          f"{fmt(result.get('reference_top1'), 'pct')}). Paired bootstrap "
          f"intervals ({result.get('num_resamples', '?')} resamples, seed "
          f"{result.get('seed', '?')}); p: McNemar's exact test. "
          "Highlighted: the interval excludes 0.")
  return Table(f"Per-layer sensitivity: {result.get('method')}", header,
               rows, highlight, note)
