"""The side-by-side table of every variant and export of a run."""

from tf_compress.analysis.pareto import pareto_mask

__all__ = ["comparison_rows", "format_comparison"]


def _p50(entry):
  """p50 latency (ms) of the first CPU result of a TFLite entry, or None."""
  latency = entry.get("latency") or {}
  cpu = latency.get("cpu") or []
  return cpu[0].get("p50_ms") if cpu else None


def comparison_rows(variants):
  """One row per (variant, TFLite mode), plus one per Keras model.

  Args:
    variants: report.json's `variants` list.

  Returns:
    A list of dicts: `variant`, `mode` (`keras` for the Keras model),
    `bytes`, `gzip_bytes`, `top1`, `agreement`, `p50_ms` (first CPU thread
    count), `speedup` (baseline float32 p50 over this p50) and
    `size_ratio` (baseline float32 gzip bytes over these gzip bytes),
    `params`, `nonzero_params` and `pareto`: True when no other row with a
    gzip size is at least as accurate (top1) and as small (gzip_bytes) and
    better in one of them. Rows without a gzip size (the Keras models) are
    never Pareto-optimal.
  """
  reference_p50 = reference_gzip = None
  for variant in variants:
    if variant["name"] == "baseline":
      for entry in variant.get("tflite", []):
        if entry["mode"] == "float32":
          reference_p50, reference_gzip = _p50(entry), entry["gzip_bytes"]
  rows = []
  for variant in variants:
    rows.append({"variant": variant["name"], "mode": "keras",
                 "bytes": variant.get("keras_bytes"), "gzip_bytes": None,
                 "top1": variant["top1"], "agreement": None, "p50_ms": None,
                 "speedup": None, "size_ratio": None,
                 "params": variant.get("params"),
                 "nonzero_params": variant.get("nonzero_params")})
    for entry in variant.get("tflite", []):
      p50 = _p50(entry)
      rows.append({
          "variant": variant["name"], "mode": entry["mode"],
          "bytes": entry["bytes"], "gzip_bytes": entry["gzip_bytes"],
          "top1": entry.get("tflite_top1"), "agreement": entry.get("agreement"),
          "p50_ms": p50,
          "speedup": (reference_p50 / p50 if reference_p50 and p50 else None),
          "size_ratio": (reference_gzip / entry["gzip_bytes"]
                         if reference_gzip and entry["gzip_bytes"] else None),
          "params": variant.get("params"),
          "nonzero_params": variant.get("nonzero_params"),
      })
  mask = pareto_mask([(r["top1"], r["gzip_bytes"]) for r in rows],
                     ("maximize", "minimize"))
  for row, optimal in zip(rows, mask):
    row["pareto"] = bool(optimal)
  return rows


def _cell(value, spec):
  return "-" if value is None else format(value, spec)


def format_comparison(rows):
  """Formats `comparison_rows` as an aligned text table."""
  header = ("variant", "mode", "bytes", "gzip", "top1", "agree", "p50 ms",
            "speedup", "gzip ratio")
  body = [(r["variant"], r["mode"], _cell(r["bytes"], "d"),
           _cell(r["gzip_bytes"], "d"), _cell(r["top1"], ".4f"),
           _cell(r["agreement"], ".4f"), _cell(r["p50_ms"], ".4f"),
           _cell(r["speedup"], ".2f"), _cell(r["size_ratio"], ".2f"))
          for r in rows]
  widths = [max(len(str(row[i])) for row in [header] + body)
            for i in range(len(header))]
  lines = ["  ".join(str(c).rjust(w) if i > 1 else str(c).ljust(w)
                     for i, (c, w) in enumerate(zip(row, widths)))
           for row in [header] + body]
  return "\n".join(lines)
