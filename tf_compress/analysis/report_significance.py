"""The report's tables of what each difference means: intervals, p-values.

report.json in, `Table`s and sentences out, like `report_tables`. The
figures come from the run's `statistics` and each entry's `significance`
and `per_class_interval` (see `pipeline.paired`); reports written before
those keys existed simply get no such tables.
"""

from tf_compress.analysis.report_tables import Table
from tf_compress.analysis.report_tables import class_names
from tf_compress.analysis.report_tables import fmt
from tf_compress.analysis.report_tables import metric_label
from tf_compress.analysis.significance_format import difference_cell
from tf_compress.analysis.significance_format import verdict

__all__ = ["claims", "significance_table", "per_class_interval_table"]


def claims(report):
  """The one-sentence claims of the run, in variant order."""
  statistics = report.get("statistics") or {}
  return [c["text"] for c in statistics.get("claims") or []]


def _compared(report):
  """(label, entry with `significance`) for every compared model."""
  for variant in report.get("variants", []):
    targets = [("Keras", variant)] + [(e["mode"], e)
                                      for e in variant.get("tflite", [])]
    for mode, target in targets:
      if target.get("significance"):
        yield variant["name"], mode, target["significance"]
    control = variant.get("control_significance")
    if control:
      yield (variant["name"], f"Keras vs {control['control']}",
             {k: v for k, v in control.items() if k != "control"})


def significance_table(report):
  """Each variant and export against the baseline: difference, CI, p.

  Returns:
    A `Table` (rows highlighted where the first metric's difference is
    significant), or None for a report without statistics.
  """
  statistics = report.get("statistics") or {}
  metrics = statistics.get("metrics") or []
  if not metrics:
    return None
  level = round(100 * statistics.get("confidence", 0.95))
  header = ["variant", "format"]
  for metric in metrics:
    header += [f"\u0394 {metric_label(metric, report)} [{level}% CI]",
               "p"]
  header.append("verdict")
  rows, highlight = [], []
  for name, mode, stats in _compared(report):
    row = [name, mode]
    for metric in metrics:
      stat = stats.get(metric)
      row += [difference_cell(stat),
              "-" if not stat else f"{stat['p_value']:.2g}"]
    row.append(verdict(stats.get(metrics[0])))
    rows.append(row)
    first = stats.get(metrics[0]) or {}
    highlight.append(bool(first.get("significant")))
  note = (f"Differences from the baseline's Keras model (or, where named, "
          f"from a variant's control) on the same "
          f"{statistics.get('num_samples', '?')} test samples, in points, "
          f"with paired bootstrap {level}% intervals "
          f"({statistics.get('bootstrap_resamples', '?')} resamples, seed "
          f"{statistics.get('seed', '?')}). p: McNemar's exact test for "
          "top-1, the bootstrap for the other metrics. A difference is "
          "significant (highlighted) only when its interval excludes 0.")
  return Table("Differences from the baseline", header, rows, highlight,
               note)


def per_class_interval_table(report):
  """Per-class accuracy of every Keras model, with Wilson intervals.

  Returns:
    A `Table` (one row per class, one column per variant), or None when no
    variant has `per_class_interval`.
  """
  variants = [v for v in report.get("variants", [])
              if v.get("per_class_interval")]
  if not variants:
    return None
  names = class_names(report)
  supports = [r["support"] for r in variants[0]["per_class_interval"]]
  header = ["class", "test samples"] + [v["name"] for v in variants]
  rows = []
  for cls, support in enumerate(supports):
    row = [names[cls] if cls < len(names) else str(cls), fmt(support, "int")]
    for variant in variants:
      interval = variant["per_class_interval"][cls]
      if interval["accuracy"] is None:
        row.append("-")
        continue
      row.append(f"{fmt(interval['accuracy'], 'pct')} "
                 f"[{100 * interval['ci_low']:.1f}, "
                 f"{100 * interval['ci_high']:.1f}]")
    rows.append(row)
  note = ("Accuracy on each class's test samples with its Wilson 95% "
          "interval: a class with few test samples has a wide interval and "
          "should not be read like one with many.")
  return Table("Per-class accuracy with intervals", header, rows, None, note)
