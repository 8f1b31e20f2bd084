"""The multi-seed part of a report: mean ± std tables and error-bar plots.

Reads report.json's `seeds` block (`analysis.seed_runs.summarize_seeds`);
reports of one seed have none, and get neither the table nor the plot.
"""

import io
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

from tf_compress.analysis.report_tables import Table  # pylint: disable=g-import-not-at-top
from tf_compress.analysis.report_tables import fmt  # pylint: disable=g-import-not-at-top
from tf_compress.analysis.significance_format import mean_std_cell  # pylint: disable=g-import-not-at-top
from tf_compress.io_utils import atomic_write_bytes  # pylint: disable=g-import-not-at-top

__all__ = ["SEEDS_PLOT", "seeds_table", "plot_seed_accuracy"]

SEEDS_PLOT = "seeds_accuracy.png"


def _interval(summary):
  if not summary or summary.get("ci_low") is None:
    return "-"
  return (f"[{100 * summary['ci_low']:.2f}, "
          f"{100 * summary['ci_high']:.2f}]")


def _difference(summary):
  if not summary or summary.get("mean") is None:
    return "-"
  text = f"{100 * summary['mean']:+.2f}"
  if summary.get("std") is not None:
    text += (f" ± {100 * summary['std']:.2f} pt [{100 * summary['ci_low']:+.2f}"
             f", {100 * summary['ci_high']:+.2f}]")
  else:
    text += " pt"
  return text


def seeds_table(report):
  """One row per model: top-1 mean ± std, its interval, the difference.

  Returns:
    A `Table`, or None for a report without a `seeds` block. Rows whose
    difference interval excludes 0 are highlighted.
  """
  block = report.get("seeds")
  if not block or not block.get("models"):
    return None
  seeds = block.get("seeds") or []
  header = ["variant", "format", "top-1 mean ± std", "95% CI (seeds)",
            "\u0394 top-1 vs baseline, mean ± std [95% CI]", "gzip bytes"]
  rows, highlight = [], []
  controls = []
  for model in block["models"]:
    if model.get("control"):
      controls.append(model)
    figures = model.get("figures") or {}
    delta = (model.get("difference") or {}).get("top1")
    gzip = (figures.get("gzip_bytes") or {}).get("mean")
    rows.append([model["variant"], model["mode"],
                 mean_std_cell(figures.get("top1")),
                 _interval(figures.get("top1")), _difference(delta),
                 fmt(None if gzip is None else round(gzip), "int")])
    highlight.append(bool(delta and delta.get("ci_low") is not None and (
        delta["ci_low"] > 0 or delta["ci_high"] < 0)))
  for model in controls:
    delta = (model.get("difference_vs_control") or {}).get("top1")
    rows.append([model["variant"], f"Keras vs {model['control']}", "-", "-",
                 _difference(delta), "-"])
    highlight.append(bool(delta and delta.get("ci_low") is not None and (
        delta["ci_low"] > 0 or delta["ci_high"] < 0)))
  note = (f"{len(seeds)} runs, seeds {', '.join(str(s) for s in seeds)} "
          "(the baseline retrained for each). Mean ± sample standard "
          "deviation across seeds, and the Student-t 95% interval of the "
          "mean. \u0394 is each seed's difference from its own baseline (or, "
          "in a 'vs' row, from the variant's control); "
          "highlighted where its interval excludes 0.")
  return Table("Across seeds", header, rows, highlight, note)


def plot_seed_accuracy(report, path):
  """Bars of mean top-1 per model, with 95% across-seed error bars.

  Returns:
    The number of bars drawn (0 writes nothing).
  """
  block = report.get("seeds") or {}
  bars = []
  for model in block.get("models") or []:
    summary = (model.get("figures") or {}).get("top1") or {}
    if summary.get("mean") is None:
      continue
    low = summary.get("ci_low")
    high = summary.get("ci_high")
    mean = 100 * summary["mean"]
    error = ((mean - 100 * low, 100 * high - mean) if low is not None
             else (0.0, 0.0))
    bars.append((f"{model['variant']}\n{model['mode']}", mean, error,
                 summary.get("values") or []))
  if not bars:
    return 0
  fig, axis = plt.subplots(figsize=(max(6, 0.7 * len(bars) + 2), 4.5))
  positions = range(len(bars))
  axis.bar(positions, [b[1] for b in bars], color="#7aa6d6",
           yerr=[[b[2][0] for b in bars], [b[2][1] for b in bars]],
           capsize=4, ecolor="black")
  for x, bar in zip(positions, bars):
    axis.scatter([x] * len(bar[3]), [100 * v for v in bar[3]], s=10,
                 color="black", zorder=3)
  lowest = min(min([b[1] - b[2][0]] + [100 * v for v in b[3]]) for b in bars)
  axis.set_ylim(max(0.0, lowest - 2.0), 100.5)
  axis.set_xticks(list(positions))
  axis.set_xticklabels([b[0] for b in bars], fontsize=7)
  axis.set_ylabel("top-1 accuracy (%)")
  axis.set_title(f"top-1 over seeds {block.get('seeds')}: mean, 95% "
                 "interval, each seed")
  axis.grid(alpha=0.3, axis="y")
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100)
  plt.close(fig)
  atomic_write_bytes(os.fspath(path), buffer.getvalue())
  return len(bars)
