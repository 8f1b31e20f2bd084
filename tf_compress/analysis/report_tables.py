"""The tables of the results report, as plain strings: report.json in, rows out.

`report_html` and `report_md` render the same `Table`s, so both files hold
the same numbers. Nothing here draws, escapes or writes; every cell is
already formatted text.
"""

import dataclasses
import shlex

from tf_compress.analysis.comparison import comparison_rows

__all__ = ["Table", "PARETO_MARK", "headline_metrics", "metric_columns",
           "metric_label", "metric_value", "variant_rows", "comparison_table",
           "who_pays_table", "sweep_tables", "dataset_summary",
           "dataset_tables", "tuning_tables", "config_flagfile",
           "reproducibility", "best_compressed", "multi_run_table",
           "class_names", "fmt", "report_title"]

_DEFAULT_HEADLINE = ("top1", "topk")
# Every metric column the table can show, in the default order.
_METRICS = ("top1", "topk", "balanced_accuracy", "macro_f1")
_LABELS = {"top1": "top-1", "topk": "top-K", "balanced_accuracy":
           "balanced acc.", "macro_f1": "macro-F1", "ece": "ECE"}
PARETO_MARK = "\u2605"  # a star: Pareto-optimal on (top1, gzip bytes)


def report_title(report):
  """The report's default title: `tf_compress report: <model> on <dataset>`."""
  config = report.get("config") or {}
  dataset = report.get("dataset") or {}
  return (f"tf_compress report: {config.get('model', 'model')} on "
          f"{dataset.get('name', 'dataset')}")


@dataclasses.dataclass(frozen=True)
class Table:
  """One table of the report.

  Attributes:
    title: the heading above the table.
    header: column names.
    rows: rows of formatted cells (strings), as long as `header`.
    highlight: per row, True to emphasise it (Pareto-optimal rows).
    note: a sentence under the title, or "".
    groups: optional column groups `[(label, span), ...]` drawn above the
      header (the per-run groups of a multi-run comparison).

  Example:
    >>> Table("sizes", ["variant", "bytes"], [["baseline", "1 024"]])
  """
  title: str
  header: list
  rows: list
  highlight: list = None
  note: str = ""
  groups: list = None


def fmt(value, kind="float"):
  """Formats one cell: "-" for None; kinds float, pct, int, ms, ratio."""
  if value is None:
    return "-"
  if isinstance(value, str):
    return value
  if kind == "int":
    return f"{int(value):,}"
  if kind == "pct":
    return f"{100.0 * value:.2f}%"
  if kind == "pt":
    return f"{100.0 * value:+.1f} pt"
  if kind == "ms":
    return f"{value:.4f}"
  if kind == "ratio":
    return f"{value:.2f}x"
  if isinstance(value, float):
    return f"{value:.4g}"
  return str(value)


def headline_metrics(report):
  """The metrics the report leads with (`report["headline_metrics"]`).

  Falls back to top-1/top-K for reports written before the key existed.
  """
  chosen = [m for m in report.get("headline_metrics") or ()
            if isinstance(m, str)]
  return chosen or list(_DEFAULT_HEADLINE)


def metric_columns(report):
  """Headline metrics first, then the other standard metrics."""
  head = headline_metrics(report)
  return head + [m for m in _METRICS if m not in head]


def metric_label(metric, report=None):
  """A column label: `top-3` for topk when K is known."""
  if metric == "topk" and report is not None:
    for variant in report.get("variants", []):
      if variant.get("top_k"):
        return f"top-{variant['top_k']}"
  return _LABELS.get(metric, metric)


def metric_value(variant, metric, export=None):
  """A metric of a Keras model (`export` None) or of one of its exports.

  Exports hold `tflite_top1` and `per_class_accuracy`; their balanced
  accuracy is the mean of the per-class accuracies (mean recall). Other
  metrics of an export are taken from `tflite_<metric>` when present.
  """
  if export is None:
    return variant.get(metric)
  value = export.get(f"tflite_{metric}")
  if value is None and metric == "balanced_accuracy":
    known = [a for a in export.get("per_class_accuracy") or ()
             if a is not None]
    value = sum(known) / len(known) if known else None
  return value


def variant_rows(report):
  """`comparison_rows` of the report's variants, each with its entries.

  Returns:
    A list of (row, variant entry, export entry or None). The rows are
    recomputed from `report["variants"]`, so reports written before the
    `pareto` key get it too.
  """
  variants = report.get("variants", [])
  rows = comparison_rows(variants)
  by_name = {v["name"]: v for v in variants}
  out = []
  for row in rows:
    variant = by_name[row["variant"]]
    export = None
    if row["mode"] != "keras":
      export = next((e for e in variant.get("tflite", [])
                     if e["mode"] == row["mode"]), None)
    out.append((row, variant, export))
  return out


def comparison_table(report):
  """Every variant and export, headline metrics first, Pareto rows marked."""
  metrics = metric_columns(report)
  header = (["Pareto", "variant", "format"]
            + [metric_label(m, report) for m in metrics]
            + ["bytes", "gzip bytes", "gzip ratio", "agreement", "p50 ms",
               "speedup", "params", "nonzero params"])
  rows, highlight = [], []
  for row, variant, export in variant_rows(report):
    rows.append(
        [PARETO_MARK if row["pareto"] else "", row["variant"], row["mode"]]
        + [fmt(metric_value(variant, m, export), "pct") for m in metrics]
        + [fmt(row["bytes"], "int"), fmt(row["gzip_bytes"], "int"),
           fmt(row["size_ratio"], "ratio"), fmt(row["agreement"], "pct"),
           fmt(row["p50_ms"], "ms"), fmt(row["speedup"], "ratio"),
           fmt(row["params"], "int"), fmt(row["nonzero_params"], "int")])
    highlight.append(bool(row["pareto"]))
  note = (f"{PARETO_MARK} marks the Pareto-optimal exports on (top-1 "
          "accuracy, gzip bytes): no other export is both at least as "
          "accurate and at least as small. Metric columns are ordered by the "
          f"report's headline metrics ({', '.join(headline_metrics(report))})."
          " gzip ratio and speedup are against the baseline's float32 file.")
  return Table("Variants and exports", header, rows, highlight, note)


def class_names(report):
  """Class names from the dataset analysis, else the class indices."""
  dataset = report.get("dataset") or {}
  count = dataset.get("num_classes") or 0
  names = list(dataset.get("class_names") or [])
  return [str(names[i]) if i < len(names) else str(i)
          for i in range(max(count, len(names)))]


def _classes_text(change, names):
  delta = change.get("delta") or []
  parts = []
  for c in change.get("classes_below_threshold") or []:
    name = names[c] if c < len(names) else str(c)
    label = str(c) if name == str(c) else f"{c} ({name})"
    parts.append(f"{label}: {fmt(delta[c], 'pt')}" if c < len(delta)
                 and delta[c] is not None else label)
  return ", ".join(parts) if parts else "none"


def who_pays_table(report):
  """Per variant (vs baseline) and export (vs its Keras model): who lost.

  Lists the classes whose accuracy fell by more than the threshold of
  `per_class_change` (`classes_below_threshold`).
  """
  names = class_names(report)
  header = ["model", "compared with", "classes that fell more than the "
            "threshold", "worst class", "worst change", "threshold"]
  rows = []
  for variant in report.get("variants", []):
    pairs = []
    if variant.get("per_class_change"):
      pairs.append((variant["name"], "baseline", variant["per_class_change"]))
    for export in variant.get("tflite", []):
      if export.get("per_class_change"):
        pairs.append((f"{variant['name']} / {export['mode']}",
                      f"{variant['name']} (Keras)",
                      export["per_class_change"]))
    for model, reference, change in pairs:
      worst = change.get("worst_class")
      rows.append([model, reference, _classes_text(change, names),
                   "-" if worst is None else names[worst]
                   if worst < len(names) else str(worst),
                   fmt(change.get("worst_delta"), "pt"),
                   fmt(change.get("threshold"), "pct")])
  note = ("Accuracy change per class of each compressed variant against the "
          "baseline, and of each TFLite export against its own Keras model.")
  return Table("", header, rows, None, note)


def sweep_tables(report):
  """One table per sweep (`report["sweeps"]`: sparsity, slice)."""
  tables = []
  titles = {"sparsity": ("Sparsity sweep", "sparsity"),
            "slice": ("Slicing sweep", "slice ratio")}
  sweeps = report.get("sweeps") or {}
  order = [k for k in titles if k in sweeps] + sorted(
      k for k in sweeps if k not in titles)
  for key in order:
    points = sweeps[key]
    if not points:
      continue
    title, level_label = titles.get(key, (f"{key} sweep", "level"))
    modes = sorted({m for p in points for m in (p.get("gzip_bytes") or {})})
    metrics = [m for m in metric_columns(report)
               if any(p.get(m) is not None for p in points)]
    header = ([level_label, "variant", "params", "nonzero params"]
              + [metric_label(m, report) for m in metrics]
              + [f"gzip {m}" for m in modes] + [f"p50 ms {m}" for m in modes])
    rows = []
    for p in sorted(points, key=lambda p: p.get("level") or 0):
      gzip_bytes, p50 = p.get("gzip_bytes") or {}, p.get("p50_ms") or {}
      rows.append([fmt(p.get("level")), str(p.get("variant", "-")),
                   fmt(p.get("params"), "int"),
                   fmt(p.get("nonzero_params"), "int")]
                  + [fmt(p.get(m), "pct") for m in metrics]
                  + [fmt(gzip_bytes.get(m), "int") for m in modes]
                  + [fmt(p50.get(m), "ms") for m in modes])
    tables.append(Table(title, header, rows))
  return tables


def dataset_summary(dataset):
  """(label, value) pairs describing the dataset."""
  d = dataset or {}
  items = [("name", f"{d.get('name', '-')}"
            + (f" ({d['source_kind']})" if d.get("source_kind") else "")),
           ("samples", fmt(d.get("num_samples"), "int")),
           ("classes", fmt(d.get("num_classes"), "int")),
           ("feature shape", str(tuple(d.get("feature_shape") or ())))]
  if d.get("input_shape"):
    items.append(("input shape", str(tuple(d["input_shape"]))))
  splits = d.get("splits")
  if splits:
    items.append(("splits", ", ".join(f"{k} {v:,}" for k, v in
                                      splits.items())))
  items.append((f"value range ({d.get('channel_stats_units', 'raw')})",
                f"{fmt(d.get('value_min'))} .. {fmt(d.get('value_max'))}"))
  if d.get("normalization"):
    lo, hi = (list(d.get("value_range") or ()) + [None, None])[:2]
    items.append(("normalisation", f"{d['normalization'].get('mode')} -> "
                  f"[{fmt(lo)}, {fmt(hi)}]"))
  items.append(("imbalance ratio (largest / smallest class)",
                fmt(d.get("imbalance_ratio"))))
  if d.get("empty_classes"):
    items.append(("classes with no samples", str(d["empty_classes"])))
  return items


def dataset_tables(dataset):
  """Per-class counts, per-channel statistics and image sizes."""
  d = dataset or {}
  tables = []
  counts = d.get("per_class_counts") or []
  if counts:
    names = d.get("class_names") or []
    split_counts = d.get("split_class_counts") or {}
    splits = [k for k in ("train", "validation", "test") if k in split_counts]
    weights = d.get("suggested_class_weights") or {}
    total = max(d.get("num_samples") or sum(counts), 1)
    rows = []
    for c, count in enumerate(counts):
      rows.append([str(c), str(names[c]) if c < len(names) else str(c),
                   fmt(count, "int"), fmt(count / total, "pct")]
                  + [fmt(split_counts[k][c], "int") for k in splits]
                  + [fmt(weights.get(str(c)))])
    tables.append(Table("Classes", ["class", "name", "count", "share"]
                        + splits + ["suggested weight"], rows))
  stats = d.get("channel_stats")
  if stats and stats.get("mean"):
    rows = [[str(i), fmt(m), fmt(s)] for i, (m, s) in
            enumerate(zip(stats["mean"], stats["std"]))]
    tables.append(Table(
        "Per-channel statistics", ["channel", "mean", "std"], rows,
        note=f"{d.get('channel_stats_units', 'raw')} units, "
        f"{fmt(stats.get('count'), 'int')} values per channel."))
  sizes = d.get("image_sizes")
  if sizes:
    keys = ("min", "p10", "median", "mean", "p90", "max")
    rows = [[dim] + [fmt(sizes[dim].get(k)) for k in keys]
            for dim in ("height", "width") if dim in sizes]
    common = ", ".join(f"{m['height']}x{m['width']} ({m['count']})"
                       for m in sizes.get("most_common", []))
    recommended = sizes.get("recommended_size") or ("-", "-")
    tables.append(Table(
        "Original image sizes", [""] + list(keys), rows,
        note=f"{fmt(sizes.get('count'), 'int')} images; most common (HxW): "
        f"{common or '-'}; recommended size {recommended[0]}x"
        f"{recommended[1]}."))
  return tables


def tuning_tables(tuning):
  """The Pareto trials and the final test results of a `tuning.json`."""
  objectives = list(tuning.get("objectives") or [])
  directions = list(tuning.get("directions") or [])
  labels = [f"{o} ({d[:3]})" for o, d in zip(objectives, directions)]
  pareto = set(tuning.get("pareto") or [])
  trials = [t for t in tuning.get("trials") or [] if t.get("number") in pareto]
  keys = sorted({k for t in trials for k in (t.get("params") or {})})
  rows = [[str(t.get("number"))]
          + [fmt((t.get("values") or {}).get(o)) for o in objectives]
          + [fmt(t.get("feasible")) if "feasible" in t else "-"]
          + [fmt((t.get("params") or {}).get(k)) for k in keys]
          for t in trials]
  tables = [Table("Pareto-optimal trials", ["trial"] + labels + ["feasible"]
                  + keys, rows, [True] * len(rows),
                  note=f"{len(tuning.get('trials') or [])} trials; "
                  f"hypervolume {fmt(tuning.get('hypervolume'))}.")]
  final = tuning.get("final") or []
  if final:
    test_keys = sorted({k for f in final for k in (f.get("test") or {})})
    rows = [[str(f.get("number"))]
            + [fmt((f.get("test") or {}).get(k)) for k in test_keys]
            for f in final]
    tables.append(Table("Re-trained on the test split",
                        ["trial"] + test_keys, rows))
  return tables


def _flag_value(value):
  if isinstance(value, (list, tuple)):
    return ",".join(str(v) for v in value)
  return str(value)


def config_flagfile(config):
  """A flagfile for `python -m tf_compress.train` from `report["config"]`.

  Flags map one-to-one onto config fields; unset (None) fields are left out
  and booleans become `--name` / `--noname`.
  """
  lines = []
  for key, value in (config or {}).items():
    if value is None:
      continue
    if isinstance(value, bool):
      lines.append(f"--{key}" if value else f"--no{key}")
    else:
      lines.append(f"--{key}={_flag_value(value)}")
  return "\n".join(lines)


def reproducibility(report):
  """(command line, flagfile text, [(label, value)] versions and seed)."""
  argv = report.get("command")
  command = None
  if argv:
    command = shlex.join(["python", "-m", "tf_compress.train"]
                         + [str(a) for a in argv[1:]])
  environment = report.get("environment") or {}
  items = [(k, fmt(v)) for k, v in environment.items() if k != "cpu"]
  cpu = environment.get("cpu")
  if isinstance(cpu, dict):
    # Latency figures depend on these: int8 is slow without VNNI.
    items.append(("cpu", f"{cpu.get('model') or 'unknown'} "
                         f"({cpu.get('machine')}); flags: "
                         f"{', '.join(cpu.get('flags') or []) or 'none'}; "
                         f"int8 dot-product (VNNI): "
                         f"{'yes' if cpu.get('vnni') else 'no'}"))
  seed = (report.get("config") or {}).get("seed")
  if "seed" not in environment:
    items.append(("seed", fmt(seed)))
  return command, config_flagfile(report.get("config")), items


def best_compressed(report):
  """The non-baseline variant with the best first headline metric, or None."""
  metric = headline_metrics(report)[0]
  best = None
  for variant in report.get("variants", []):
    value = variant.get(metric)
    if variant["name"] == "baseline" or value is None:
      continue
    if best is None or value > best.get(metric):
      best = variant
  return best


def multi_run_table(runs):
  """One table, one column group per run, rows = (variant, format).

  Args:
    runs: list of (run label, report).
  """
  metrics = headline_metrics(runs[0][1]) if runs else list(_DEFAULT_HEADLINE)
  per_run = [[metric_label(m, runs[0][1]) for m in metrics]
             + ["gzip bytes", "Pareto"]]
  keys, cells = [], []
  for _, report in runs:
    table = {}
    for row, variant, export in variant_rows(report):
      key = (row["variant"], row["mode"])
      if key not in keys:
        keys.append(key)
      table[key] = ([fmt(metric_value(variant, m, export), "pct")
                     for m in metrics]
                    + [fmt(row["gzip_bytes"], "int"),
                       PARETO_MARK if row["pareto"] else ""])
    cells.append(table)
  width = len(per_run[0])
  header = ["variant", "format"]
  groups = [("", 2)]
  for label, _ in runs:
    header += per_run[0]
    groups.append((label, width))
  rows = []
  for key in keys:
    row = list(key)
    for table in cells:
      row += table.get(key, ["-"] * width)
    rows.append(row)
  note = (f"One column group per run. {PARETO_MARK}: Pareto-optimal within "
          "its own run on (top-1, gzip bytes).")
  return Table("Runs side by side", header, rows, None, note, groups)
