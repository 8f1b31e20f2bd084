"""The report's "Which export to ship" section, from report.json's `advice`.

`python -m tf_compress.advise` writes `advice` (`analysis.advise`); a
report without it gets no such section.
"""

from tf_compress.analysis.report_tables import Table
from tf_compress.analysis.report_tables import fmt

__all__ = ["advice_lines", "advice_table"]


def advice_lines(report):
  """The advisor's sentences, or [] without advice."""
  return list((report.get("advice") or {}).get("summary") or [])


def advice_table(report):
  """The exports within the budget, the chosen ones marked; None without."""
  advice = report.get("advice")
  if not advice:
    return None
  chosen = {}
  for key, label in (("fastest_cpu", "fastest CPU"),
                     ("fastest_gpu", "fastest GPU"),
                     ("smallest", "smallest")):
    pick = advice.get(key) or {}
    if pick.get("variant"):
      chosen.setdefault((pick["variant"], pick["mode"]), []).append(label)
  header = ["variant", "format", "top-1", "drop (pt) [95% CI]", "gzip bytes",
            "CPU p50 ms", "GPU p50 ms", "chosen as"]
  rows, highlight = [], []
  for row in advice.get("eligible") or []:
    drop = "-" if row["drop_pt"] is None else f"{row['drop_pt']:+.2f}"
    if row.get("drop_ci_pt"):
      low, high = row["drop_ci_pt"]
      drop += f" [{low:+.2f}, {high:+.2f}]"
    picks = chosen.get((row["variant"], row["mode"]), [])
    rows.append([row["variant"], row["mode"], fmt(row["top1"], "pct"), drop,
                 fmt(row["gzip_bytes"], "int"), fmt(row["cpu_p50_ms"], "ms"),
                 fmt(row["gpu_p50_ms"], "ms"), ", ".join(picks) or ""])
    highlight.append(bool(picks))
  note = (f"The exports whose top-1 drop from the baseline's Keras model is "
          f"at most {advice.get('max_drop_pt', 0):g} pt, as measured on this "
          "machine; latency at the first --benchmark_threads setting.")
  return Table("Exports within the accuracy budget", header, rows, highlight,
               note)
