"""The data behind the report's plots: points and series from report.json.

Pure functions: a report dict in, lists of numbers out. `report_plots`
draws them.
"""

from tf_compress.analysis import report_tables

__all__ = ["size_points", "sweep_series"]


def size_points(report, run_label=None):
  """The points of the accuracy-vs-size plot: one per export with a size.

  Args:
    report: report.json's dict.
    run_label: when given, the `group` (colour) of every point, for plots
      of several runs.

  Returns:
    A list of dicts: `label` (variant/format), `group` (the variant, or
    `run_label`), `mode`, `size` (gzip bytes), `accuracy` (top-1) and
    `pareto` (from `comparison_rows`).
  """
  points = []
  for row, _, _ in report_tables.variant_rows(report):
    if row["gzip_bytes"] is None or row["top1"] is None:
      continue
    points.append({"label": f"{row['variant']}/{row['mode']}",
                   "group": run_label or row["variant"], "mode": row["mode"],
                   "size": row["gzip_bytes"], "accuracy": row["top1"],
                   "pareto": bool(row["pareto"])})
  return points


def _value(entry, metric):
  """`metric` of a variant or sweep point, falling back to top-1."""
  value = entry.get(metric)
  return entry.get("top1") if value is None else value


def _sparsity(point):
  """Measured sparsity of a sweep point, else its target level."""
  value = point.get("sparsity")
  return point.get("level") if value is None else value


def sweep_series(report):
  """Series of the accuracy-vs-sparsity and accuracy-vs-params plots.

  The accuracy is the first headline metric (top-1 where a point lacks it).

  Returns:
    A dict: `metric_label`; `accuracy_vs_sparsity`: `(series, labelled)`
    with series `{"sparsity sweep": [(sparsity, accuracy), ...]}` (the
    baseline at sparsity 0 included) and labelled `[(variant, sparsity,
    accuracy)]` for each variant with nonzero sparsity that is not a sweep
    point, or None when there is neither; `params_vs_accuracy`:
    `(series, labelled)` with one series per sweep of `[(nonzero params,
    accuracy)]` (the baseline's point last) and every variant that is not a sweep point labelled, or
    None without sweeps.
  """
  metric = report_tables.headline_metrics(report)[0]
  sweeps = report.get("sweeps") or {}
  variants = report.get("variants", [])
  result = {"metric_label": report_tables.metric_label(metric, report),
            "accuracy_vs_sparsity": None, "params_vs_accuracy": None}
  sparsity = sweeps.get("sparsity") or []
  # Sweep points are variants too; they are drawn as the sweep's line.
  swept = {p.get("variant") for points in sweeps.values()
           for p in points or ()}
  pruned = [(v["name"], v["sparsity"]["overall"], _value(v, metric))
            for v in variants if v["name"] not in swept
            and ((v.get("sparsity") or {}).get("overall") or 0) > 0]
  if sparsity or pruned:
    series = {}
    if sparsity:
      pairs = [(_sparsity(p), _value(p, metric)) for p in sparsity]
      pairs += [(0.0, _value(v, metric)) for v in variants
                if v["name"] == "baseline"]
      series["sparsity sweep"] = pairs
    result["accuracy_vs_sparsity"] = (series, pruned)
  if any(sweeps.values()):
    # Each sweep starts from the baseline: its point closes every curve.
    start = [(v.get("nonzero_params") or v.get("params"), _value(v, metric))
             for v in variants if v["name"] == "baseline"]
    series = {f"{key} sweep": [
        (p.get("nonzero_params") or p.get("params"), _value(p, metric))
        for p in points] + start for key, points in sweeps.items() if points}
    labelled = [(v["name"], v.get("nonzero_params") or v.get("params"),
                 _value(v, metric)) for v in variants
                if v["name"] not in swept]
    result["params_vs_accuracy"] = (series, labelled)
  return result
