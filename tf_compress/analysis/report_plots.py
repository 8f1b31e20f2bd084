"""The results report's plots: plain data in, PNG files out (matplotlib Agg).

Each `plot_*` function takes numbers (lists, dicts, arrays) and a path,
writes the PNG atomically and returns a `Drawn` record of what it drew,
read back from the figure's artists, so tests can check the picture holds
the data. `write_report_plots(report, run_dir)` draws every plot that a
report's data allows.
"""

import dataclasses
import io
import math
import os
import textwrap

import matplotlib

matplotlib.use("Agg")
# pylint: disable=g-import-not-at-top
from matplotlib.lines import Line2D
import matplotlib.pyplot as plt
import numpy as np

from tf_compress.analysis import report_seeds
from tf_compress.analysis import report_sensitivity
from tf_compress.analysis import report_series
from tf_compress.analysis import report_tables
from tf_compress.analysis import report_weights
from tf_compress.analysis.pareto import pareto_mask
from tf_compress.analysis.plots import plot_training_curves
from tf_compress.analysis.sensitivity_plots import plot_sensitivity
from tf_compress.io_utils import atomic_write_bytes
# pylint: enable=g-import-not-at-top

__all__ = ["Drawn", "PLOT_CAPTIONS", "plot_accuracy_vs_size",
           "plot_accuracy_vs_sparsity", "plot_params_vs_accuracy",
           "plot_per_layer_sparsity", "plot_class_heatmap",
           "plot_confusion_matrix", "plot_weight_histograms", "plot_caption",
           "write_report_plots", "write_comparison_plots"]

PLOT_CAPTIONS = {
    "accuracy_vs_size": "Accuracy vs gzip size of every export; circled "
                        "points are Pareto-optimal.",
    "accuracy_vs_sparsity": "Accuracy vs sparsity: the sparsity sweep and "
                            "the pruned variants.",
    "params_vs_accuracy": "Accuracy vs (nonzero) parameters: the sweeps and "
                          "every variant.",
    "per_layer_sparsity": "Sparsity of each layer's kernel per variant.",
    "per_class_change": "Per-class accuracy change against the baseline "
                        "(percentage points).",
    "confusion_matrix": "Confusion matrix of the best compressed variant "
                        "(rows: true class).",
    "seeds": "Top-1 accuracy over the seeds: mean, 95% interval across "
             "seeds, and each seed's value (dots).",
    "sensitivity": "Per-layer sensitivity: the top-1 drop when one layer "
                   "at a time is compressed, with its 95% interval (red: "
                   "significant).",
    "weight_histograms": "Kernel weights before and after compression "
                         "(zeros of pruning, centroids of clustering) and "
                         "the int8 values of the int8 exports.",
}


def plot_caption(name):
  """The caption of a plot named by `write_report_plots`."""
  if name.startswith("training_curves/"):
    variant = name.split("/", 1)[1]
    return (f"Training curves: {variant}" if variant == "baseline"
            else f"Fine-tuning curves: {variant}")
  return PLOT_CAPTIONS.get(name, name)


_MARKERS = {"keras": "s", "float32": "o", "float16": "^", "dynamic": "D",
            "int8": "v", "int16x8": "P"}


@dataclasses.dataclass(frozen=True)
class Drawn:
  """What a plot function drew.

  Attributes:
    path: the PNG written.
    points: the number of data points (markers, bars or cells) drawn.
    marked: indices of the input points drawn with the highlight marker.
  """
  path: str
  points: int
  marked: tuple = ()


def _save(fig, path):
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100)
  plt.close(fig)
  atomic_write_bytes(os.fspath(path), buffer.getvalue())
  return os.fspath(path)


def _finite(*values):
  return all(v is not None and math.isfinite(v) for v in values)


def plot_accuracy_vs_size(points, path, title="accuracy vs size",
                          annotate=True):
  """Accuracy against gzip bytes (log x); Pareto points circled and joined.

  Args:
    points: dicts with `size`, `accuracy`, `pareto`, and optional `label`,
      `group` (one colour per group) and `mode` (marker shape).
    path: the PNG to write.
    title: the figure title.
    annotate: write each point's label beside it.

  Returns:
    `Drawn`; `marked` are the indices of `points` drawn as Pareto-optimal,
    found from the highlight artist's coordinates.
  """
  fig, axis = plt.subplots(figsize=(9, 5.5))
  groups = list(dict.fromkeys(p.get("group", "") for p in points))
  colors = plt.get_cmap("tab10")
  drawn = 0
  for g, group in enumerate(groups):
    for mode in dict.fromkeys(p.get("mode") for p in points):
      chosen = [p for p in points if p.get("group", "") == group
                and p.get("mode") == mode and _finite(p["size"],
                                                      p["accuracy"])]
      if chosen:
        axis.scatter([p["size"] for p in chosen],
                     [100 * p["accuracy"] for p in chosen],
                     marker=_MARKERS.get(mode, "o"), color=colors(g % 10),
                     zorder=3)
        drawn += len(chosen)
  front = sorted((p for p in points if p.get("pareto")
                  and _finite(p["size"], p["accuracy"])),
                 key=lambda p: p["size"])
  if front:
    axis.plot([p["size"] for p in front], [100 * p["accuracy"] for p in front],
              "--", color="grey", zorder=2)
  highlight = axis.scatter([p["size"] for p in front],
                           [100 * p["accuracy"] for p in front], s=220,
                           facecolors="none", edgecolors="crimson",
                           linewidths=2, zorder=4)
  if annotate and len(points) <= 40:
    for p in points:
      if _finite(p["size"], p["accuracy"]):
        axis.annotate(p.get("label", ""), (p["size"], 100 * p["accuracy"]),
                      textcoords="offset points", xytext=(5, 4), fontsize=7)
  if drawn:
    axis.set_xscale("log")
  axis.set_xlabel("gzip bytes (log scale)")
  axis.set_ylabel("top-1 accuracy (%)")
  axis.set_title(title)
  axis.grid(alpha=0.3, which="both")
  # Colour = group, marker = format: one legend entry each, not per pair.
  handles = [Line2D([], [], marker="o", linestyle="", color=colors(g % 10),
                    label=str(group)) for g, group in enumerate(groups)]
  handles += [Line2D([], [], marker=_MARKERS.get(mode, "o"), linestyle="",
                     color="black", label=str(mode))
              for mode in dict.fromkeys(p.get("mode") for p in points)]
  handles.append(Line2D([], [], marker="o", linestyle="", markersize=12,
                        markerfacecolor="none", markeredgecolor="crimson",
                        markeredgewidth=2, label="Pareto-optimal"))
  axis.legend(handles=handles, fontsize=7, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))
  offsets = np.asarray(highlight.get_offsets()).reshape(-1, 2)
  marked = tuple(i for i, p in enumerate(points) if _finite(
      p["size"], p["accuracy"]) and any(
          np.isclose(o[0], p["size"]) and np.isclose(o[1], 100 * p["accuracy"])
          for o in offsets))
  fig.tight_layout()
  return Drawn(_save(fig, path), drawn, marked)


def _plot_series(series, path, xlabel, ylabel, title, xscale="linear",
                 labelled=None):
  """Lines (one per series, sorted by x) plus optional labelled points."""
  fig, axis = plt.subplots(figsize=(8, 5))
  drawn = 0
  for name, pairs in series.items():
    pairs = sorted((x, y) for x, y in pairs if _finite(x, y))
    if pairs:
      axis.plot([x for x, _ in pairs], [100 * y for _, y in pairs], "-o",
                label=name)
      drawn += len(pairs)
  for label, x, y in labelled or ():
    if _finite(x, y):
      axis.scatter([x], [100 * y], marker="*", s=120, zorder=3)
      axis.annotate(label, (x, 100 * y), textcoords="offset points",
                    xytext=(5, 4), fontsize=8)
      drawn += 1
  if xscale == "log" and drawn:
    axis.set_xscale("log")
  axis.set_xlabel(xlabel)
  axis.set_ylabel(ylabel)
  axis.set_title(title)
  axis.grid(alpha=0.3)
  if axis.get_legend_handles_labels()[0]:
    axis.legend(fontsize=8)
  fig.tight_layout()
  return Drawn(_save(fig, path), drawn)


def plot_accuracy_vs_sparsity(series, path, labelled=None,
                              metric_label="top-1 accuracy",
                              title="accuracy vs sparsity"):
  """Accuracy (y, %) against sparsity (x, 0-1) per series.

  Args:
    series: {name: [(sparsity, accuracy), ...]}, e.g. the sparsity sweep.
    path: the PNG to write.
    labelled: optional [(label, sparsity, accuracy)] single points (the
      pruned variants).
    metric_label: the y axis label.
    title: the figure title.

  Returns:
    `Drawn` with the number of points drawn.
  """
  return _plot_series(series, path, "sparsity (share of zero weights)",
                      f"{metric_label} (%)", title, labelled=labelled)


def plot_params_vs_accuracy(series, path, labelled=None,
                            metric_label="top-1 accuracy",
                            title="accuracy vs parameters"):
  """Accuracy (y, %) against (nonzero) parameters (x, log) per series."""
  return _plot_series(series, path, "nonzero parameters (log scale)",
                      f"{metric_label} (%)", title, xscale="log",
                      labelled=labelled)


def plot_per_layer_sparsity(per_layer, path, title="per-layer sparsity"):
  """Grouped bars: sparsity of each layer, one bar per variant.

  Args:
    per_layer: {variant: [{"layer": name, "sparsity": 0-1}, ...]}.
    path: the PNG to write.
    title: the figure title.

  Returns:
    `Drawn`; `points` is the number of bars.
  """
  layers = list(dict.fromkeys(r["layer"] for rows in per_layer.values()
                              for r in rows))
  fig, axis = plt.subplots(figsize=(max(6, 1.2 * len(layers) + 3), 4.5))
  width = 0.8 / max(len(per_layer), 1)
  drawn = 0
  for v, (variant, rows) in enumerate(per_layer.items()):
    values = {r["layer"]: r["sparsity"] for r in rows}
    xs = [i + v * width for i, layer in enumerate(layers) if layer in values]
    ys = [100 * values[layer] for layer in layers if layer in values]
    axis.bar(xs, ys, width=width, label=variant)
    drawn += len(xs)
  axis.set_xticks([i + 0.4 - width / 2 for i in range(len(layers))])
  axis.set_xticklabels(layers, rotation=30, ha="right", fontsize=8)
  axis.set_ylim(0, 100)
  axis.set_ylabel("zero weights (%)")
  axis.set_title(title)
  axis.grid(alpha=0.3, axis="y")
  if per_layer:
    axis.legend(fontsize=8)
  fig.tight_layout()
  return Drawn(_save(fig, path), drawn)


def _heatmap(matrix, row_labels, col_labels, path, title, cmap, colorbar,
             value_format, vmin=None, vmax=None, xlabel="", ylabel=""):
  values = np.array([[np.nan if v is None else v for v in row]
                     for row in matrix], dtype=np.float64).reshape(
                         len(row_labels), len(col_labels))
  fig, axis = plt.subplots(figsize=(max(5, 0.55 * len(col_labels) + 3),
                                    max(3, 0.45 * len(row_labels) + 2)))
  image = axis.imshow(np.ma.masked_invalid(values),
                      cmap=plt.get_cmap(cmap).with_extremes(bad="lightgrey"),
                      vmin=vmin, vmax=vmax, aspect="auto")
  axis.set_xticks(range(len(col_labels)))
  axis.set_xticklabels(col_labels, rotation=45 if len(col_labels) > 10
                       else 0, ha="right" if len(col_labels) > 10 else
                       "center", fontsize=8)
  axis.set_yticks(range(len(row_labels)))
  axis.set_yticklabels(row_labels, fontsize=8)
  if values.size <= 400:
    for (i, j), value in np.ndenumerate(values):
      if np.isfinite(value):
        # White text on the dark end of the colour map.
        shade = image.norm(value)
        dark = shade > 0.7 or (cmap == "RdBu" and shade < 0.2)
        axis.text(j, i, value_format(value), ha="center", va="center",
                  fontsize=7, color="white" if dark else "black")
  axis.set_xlabel(xlabel)
  axis.set_ylabel(ylabel)
  fig.colorbar(image, ax=axis, label=colorbar)
  axis.set_title(title)
  fig.tight_layout()
  return Drawn(_save(fig, path), int(np.isfinite(values).sum()))


def plot_class_heatmap(deltas, variants, classes, path,
                       title="per-class accuracy change vs baseline"):
  """Heatmap of per-class accuracy changes: variants (rows) x classes.

  Args:
    deltas: one list per variant of accuracy changes (fractions; None where
      unknown, drawn grey), e.g. `per_class_change(...)["delta"]`.
    variants: the row labels.
    classes: the column labels.
    path: the PNG to write.
    title: the figure title.

  Returns:
    `Drawn`; `points` is the number of known cells.
  """
  finite = [abs(v) for row in deltas for v in row if v is not None]
  limit = max(max(finite, default=0.0) * 100, 1.0)
  return _heatmap([[None if v is None else 100 * v for v in row]
                   for row in deltas], variants, classes, path, title,
                  "RdBu", "change (percentage points)",
                  lambda v: f"{v:+.0f}", -limit, limit, "class", "variant")


def plot_confusion_matrix(matrix, classes, path, title="confusion matrix"):
  """Confusion matrix counts, rows = true class, columns = predicted."""
  return _heatmap(matrix, classes, classes, path, title, "Blues", "samples",
                  lambda v: f"{v:.0f}", xlabel="predicted class",
                  ylabel="true class")


def _stairs(axis, values, edges, **kwargs):
  """A filled histogram as one artist (hist() draws one patch per bin)."""
  counts, _ = np.histogram(values, bins=edges)
  # Log axes drop zero counts; a floor below 1 keeps the outline closed.
  axis.stairs(np.maximum(counts, 0.5), edges, fill=True, baseline=0.5,
              **kwargs)


def plot_weight_histograms(panels, path, bins=80):
  """Per variant: float kernels before/after compression, and int8 values.

  Args:
    panels: dicts from `report_weights.weight_panels`: `name`, `before`,
      `after`, `int8` (arrays or None) and `centroids` (list or None).
    path: the PNG to write.
    bins: bins of the float histograms (int8 values get one bin each).

  Returns:
    `Drawn`; `points` is the number of weight values histogrammed.
  """
  fig, axes = plt.subplots(len(panels), 2, figsize=(11, 2.4 * len(panels)),
                           squeeze=False)
  drawn = 0
  for (left, right), panel in zip(axes, panels):
    after, before = panel.get("after"), panel.get("before")
    if after is not None:
      arrays = [a for a in (before, after) if a is not None]
      edges = np.histogram_bin_edges(np.concatenate(arrays), bins=bins)
      if before is not None:
        _stairs(left, before, edges, color="grey", alpha=0.5,
                label="baseline")
        drawn += before.size
      zeros = float(np.mean(after == 0))
      _stairs(left, after, edges, color="tab:blue", alpha=0.6,
              label=f"{panel['name']} ({100 * zeros:.1f}% zeros)")
      drawn += after.size
      for centroid in panel.get("centroids") or ():
        left.axvline(centroid, color="crimson", linewidth=0.6, alpha=0.7)
      if panel.get("centroids"):
        left.plot([], [], color="crimson",
                  label=f"{len(panel['centroids'])} centroids")
      left.set_yscale("log")
      left.legend(fontsize=7)
    else:
      note = "; ".join(panel.get("notes") or ["no Keras model"])
      left.text(0.5, 0.5, textwrap.fill(note, 70), ha="center", va="center",
                fontsize=7, transform=left.transAxes)
      left.set_axis_off()
    left.set_title(f"{panel['name']}: float kernels", fontsize=9)
    int8 = panel.get("int8")
    if int8 is not None:
      _stairs(right, int8.astype(np.int16), np.arange(-128.5, 128.5, 1.0),
              color="tab:green")
      right.set_yscale("log")
      right.set_title(f"{panel['name']}: int8 kernel values "
                      f"({100 * float(np.mean(int8 == 0)):.1f}% zeros, "
                      f"{np.unique(int8).size} levels)", fontsize=9)
      drawn += int8.size
    else:
      right.set_title(f"{panel['name']}: no int8 export", fontsize=9)
  fig.tight_layout()
  return Drawn(_save(fig, path), drawn)


def _sweep_plots(report, out):
  """Accuracy vs sparsity and vs parameters, from sweeps and variants."""
  data = report_series.sweep_series(report)
  drawn = {}
  for name, plot in (("accuracy_vs_sparsity", plot_accuracy_vs_sparsity),
                     ("params_vs_accuracy", plot_params_vs_accuracy)):
    if data[name] is not None:
      series, labelled = data[name]
      plot(series, os.path.join(out, f"{name}.png"), labelled=labelled,
           metric_label=data["metric_label"])
      drawn[name] = f"{name}.png"
  return drawn


def write_report_plots(report, run_dir, output_dir=None, models=None):
  """Draws every plot that `report`'s data allows.

  Args:
    report: report.json's dict.
    run_dir: the run directory (saved models and TFLite files, read for the
      weight histograms).
    output_dir: where to write the PNGs; defaults to `run_dir`.
    models: optional {variant: tf_keras model} for the weight histograms
      (see `report_weights.weight_panels`).

  Returns:
    {plot name: PNG file name in `output_dir`}, in display order: the
    comparison plots first, then the training curves, named
    `training_curves/<variant>`.
  """
  out = output_dir or run_dir
  plots = {}
  dataset = (report.get("dataset") or {}).get("name", "")
  model = (report.get("config") or {}).get("model", "model")
  points = report_series.size_points(report)
  if points:
    plot_accuracy_vs_size(points, os.path.join(out, "accuracy_vs_size.png"),
                          title=f"accuracy vs gzip size ({dataset})")
    plots["accuracy_vs_size"] = "accuracy_vs_size.png"
  plots.update(_sweep_plots(report, out))
  per_layer = {v["name"]: v["sparsity"]["per_layer"]
               for v in report.get("variants", [])
               if (v.get("sparsity") or {}).get("per_layer")}
  if per_layer:
    plot_per_layer_sparsity(per_layer,
                            os.path.join(out, "per_layer_sparsity.png"))
    plots["per_layer_sparsity"] = "per_layer_sparsity.png"
  changed = [v for v in report.get("variants", [])
             if (v.get("per_class_change") or {}).get("delta")]
  names = report_tables.class_names(report)
  if changed:
    deltas = [v["per_class_change"]["delta"] for v in changed]
    width = max(len(d) for d in deltas)
    classes = (names + [str(i) for i in range(len(names), width)])[:width]
    plot_class_heatmap([d + [None] * (width - len(d)) for d in deltas],
                       [v["name"] for v in changed], classes,
                       os.path.join(out, "per_class_change.png"))
    plots["per_class_change"] = "per_class_change.png"
  best = report_tables.best_compressed(report)
  if best is not None and best.get("confusion_matrix"):
    matrix = best["confusion_matrix"]
    classes = (names + [str(i) for i in range(len(names), len(matrix))])
    plot_confusion_matrix(matrix, classes[:len(matrix)],
                          os.path.join(out, "confusion_matrix.png"),
                          title=f"confusion matrix of {best['name']}")
    plots["confusion_matrix"] = "confusion_matrix.png"
  panels = report_weights.weight_panels(report, run_dir, models=models)
  if panels:
    plot_weight_histograms(panels, os.path.join(out, "weight_histograms.png"))
    plots["weight_histograms"] = "weight_histograms.png"
  if report_seeds.plot_seed_accuracy(
      report, os.path.join(out, report_seeds.SEEDS_PLOT)):
    plots["seeds"] = report_seeds.SEEDS_PLOT
  if (report.get("sensitivity") or {}).get("rows"):
    plot_sensitivity(report["sensitivity"], os.path.join(
        out, report_sensitivity.SENSITIVITY_PLOT))
    plots["sensitivity"] = report_sensitivity.SENSITIVITY_PLOT
  for name, history in (report.get("history") or {}).items():
    if history:
      filename = ("training_curves.png" if name == "baseline"
                  else f"training_curves_{name}.png")
      plot_training_curves(history, os.path.join(out, filename),
                           title=(f"baseline ({model}) on {dataset}"
                                  if name == "baseline"
                                  else f"{name} fine-tuning on {dataset}"))
      plots[f"training_curves/{name}"] = filename
  return plots


def write_comparison_plots(runs, output_dir):
  """The multi-run accuracy-vs-size plot: one colour per run.

  Args:
    runs: list of (run label, report).
    output_dir: where to write `comparison_accuracy_vs_size.png`.

  Returns:
    {plot name: file name}.
  """
  points = [p for label, report in runs
            for p in report_series.size_points(report, label)]
  if not points:
    return {}
  for p in points:
    p["label"] = ""
  # Pareto flags are per run; recompute them over all runs together.
  mask = pareto_mask([(p["accuracy"], p["size"]) for p in points],
                     ("maximize", "minimize"))
  for p, optimal in zip(points, mask):
    p["pareto"] = optimal
  filename = "comparison_accuracy_vs_size.png"
  plot_accuracy_vs_size(points, os.path.join(output_dir, filename),
                        title="accuracy vs gzip size, all runs")
  return {"accuracy_vs_size": filename}
