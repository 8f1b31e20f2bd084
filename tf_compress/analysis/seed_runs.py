"""One run per seed, summarised: each figure's mean, spread and interval.

`summarize_seeds` takes the reports of the same run repeated with
different seeds (baseline included) and returns report.json's `seeds`
block. Every model (a variant's Keras model or one of its exports) gets,
per metric, each seed's value and `seed_summary` of them, and the same for
its paired difference from that seed's baseline. A pure function.
"""

from tf_compress.analysis.significance import seed_summary

__all__ = ["SEED_METRICS", "summarize_seeds", "seed_rows"]

# The figures summarised across seeds: the Keras model's metrics, and an
# export's (tflite_top1 named top1).
SEED_METRICS = ("top1", "topk", "balanced_accuracy", "macro_f1")
_EXPORT_FIGURES = ("gzip_bytes", "bytes")
CONFIDENCE = 0.95


def _p50(export):
  cpu = (export.get("latency") or {}).get("cpu") or []
  return cpu[0].get("p50_ms") if cpu else None


def _export_balanced(export):
  known = [a for a in export.get("per_class_accuracy") or ()
           if a is not None]
  return sum(known) / len(known) if known else None


def seed_rows(report):
  """`{(variant, mode): {figure: value}}` of one report, `keras` for models."""
  rows = {}
  for variant in report.get("variants", []):
    rows[(variant["name"], "keras")] = {
        m: variant.get(m) for m in SEED_METRICS}
    rows[(variant["name"], "keras")]["nonzero_params"] = variant.get(
        "nonzero_params")
    for export in variant.get("tflite", []):
      figures = {"top1": export.get("tflite_top1"),
                 "balanced_accuracy": _export_balanced(export),
                 "p50_ms": _p50(export)}
      for key in _EXPORT_FIGURES:
        figures[key] = export.get(key)
      rows[(variant["name"], export["mode"])] = figures
  return rows


def _control(report, key):
  """The control variant of a Keras model (`control_significance`)."""
  if key[1] != "keras":
    return None
  for variant in report.get("variants", []):
    if variant["name"] == key[0]:
      return (variant.get("control_significance") or {}).get("control")
  return None


def _delta(rows, key, reference, metric):
  value = rows.get(key, {}).get(metric)
  base = rows.get(reference, {}).get(metric)
  return None if value is None or base is None else value - base


def summarize_seeds(reports, seeds, runs):
  """report.json's `seeds` block for one run repeated over `seeds`.

  Args:
    reports: the per-seed reports, in the order of `seeds`.
    seeds: the seeds.
    runs: each seed's run directory, relative to the multi-seed directory.

  Returns:
    Dict: `seeds`, `runs`, `confidence` and `models`, a list (in the first
    report's order) of `{"variant", "mode", "figures": {figure:
    seed_summary}, "difference": {metric: seed_summary}}`. `difference` is
    each seed's figure minus that seed's baseline Keras figure, for the
    accuracy metrics. A variant with a control (the distilled student's
    `student_scratch`) also has `control` and `difference_vs_control`. A
    model missing from a seed's report counts as a missing value there.

  Raises:
    ValueError: when `reports`, `seeds` and `runs` differ in length, or no
      report is given.
  """
  if not reports or not len(reports) == len(seeds) == len(runs):
    raise ValueError(f"need one report and run per seed, got "
                     f"{len(reports)} reports, {len(seeds)} seeds and "
                     f"{len(runs)} runs")
  per_seed = [seed_rows(r) for r in reports]
  keys = list(per_seed[0])
  for rows in per_seed[1:]:
    keys += [k for k in rows if k not in keys]
  models = []
  for key in keys:
    names = []
    for rows in per_seed:
      names += [f for f in rows.get(key, {}) if f not in names]
    figures = {name: seed_summary([rows.get(key, {}).get(name)
                                   for rows in per_seed], CONFIDENCE)
               for name in names}
    difference = {}
    for metric in SEED_METRICS:
      deltas = [_delta(rows, key, ("baseline", "keras"), metric)
                for rows in per_seed]
      if any(d is not None for d in deltas) and key != ("baseline", "keras"):
        difference[metric] = seed_summary(deltas, CONFIDENCE)
    model = {"variant": key[0], "mode": key[1], "figures": figures,
             "difference": difference}
    control = _control(reports[0], key)
    if control is not None:
      model["control"] = control
      model["difference_vs_control"] = {
          metric: seed_summary([_delta(rows, key, (control, "keras"), metric)
                                for rows in per_seed], CONFIDENCE)
          for metric in SEED_METRICS}
    models.append(model)
  return {"seeds": [int(s) for s in seeds], "runs": list(runs),
          "confidence": CONFIDENCE, "models": models}
