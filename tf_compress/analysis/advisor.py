"""Which export to ship: the fastest and the smallest within a budget.

`advise(report, max_drop_pt)` reads a finished run's report.json: every
`.tflite` export with its top-1 accuracy, its difference from the
baseline's Keras model (and that difference's interval, from the run's
paired statistics), its gzip size and its measured LiteRT latency. It
picks, among the exports whose top-1 drop stays within the budget, the
fastest on this machine's CPU, the fastest on the GPU accelerator where
one was measured, and the smallest, and says why. It also says plainly
when int8 ran slower than float32 here, and whether the CPU's instruction
set explains it (no int8 dot-product extension: VNNI/AMX on x86,
dotprod/i8mm on ARM). A pure function; `cli.advise` writes the result.
"""

__all__ = ["advise", "candidates", "int8_findings"]


def _latency(export, backend):
  """(p50 ms, std ms) of an export on "cpu" (first thread count) or "gpu"."""
  latency = export.get("latency") or {}
  if backend == "cpu":
    rows = latency.get("cpu") or []
    row = rows[0] if rows else {}
  else:
    row = latency.get("gpu") or {}
    if row.get("available") is False:
      return None, None
  return row.get("p50_ms"), row.get("std_ms")


def candidates(report):
  """One row per export: accuracy, drop, size and latency.

  Returns:
    A list of dicts: `variant`, `mode`, `top1`, `drop_pt` (baseline Keras
    top-1 minus this top-1, in points), `drop_ci_pt` ([low, high] of the
    drop from the paired bootstrap, or None), `gzip_bytes`, `cpu_p50_ms`,
    `cpu_std_ms`, `gpu_p50_ms` (None where not measured), `path`.
  """
  variants = report.get("variants") or []
  baseline = next((v for v in variants if v.get("name") == "baseline"), None)
  reference = baseline.get("top1") if baseline else None
  rows = []
  for variant in variants:
    for export in variant.get("tflite") or []:
      top1 = export.get("tflite_top1")
      stat = (export.get("significance") or {}).get("top1")
      cpu_p50, cpu_std = _latency(export, "cpu")
      rows.append({
          "variant": variant["name"], "mode": export["mode"], "top1": top1,
          "drop_pt": (None if top1 is None or reference is None
                      else 100.0 * (reference - top1)),
          "drop_ci_pt": (None if not stat else
                         [-100.0 * stat["ci_high"], -100.0 * stat["ci_low"]]),
          "gzip_bytes": export.get("gzip_bytes"), "cpu_p50_ms": cpu_p50,
          "cpu_std_ms": cpu_std, "gpu_p50_ms": _latency(export, "gpu")[0],
          "path": export.get("path")})
  return rows


def _name(row):
  return f"{row['variant']} {row['mode']}"


def _cpu_words(cpu):
  if not cpu:
    return "this CPU's instruction set was not recorded"
  flags = ", ".join(cpu.get("flags") or []) or "none of the relevant ones"
  return f"{cpu.get('model') or 'this CPU'} (flags: {flags})"


def int8_findings(rows, cpu):
  """Sentences on int8 against float32 latency, per variant measured both.

  Args:
    rows: `candidates(report)`.
    cpu: report.json's `environment.cpu`, or None.

  Returns:
    A list of dicts: `variant`, `float32_ms`, `int8_ms`, `int8_slower`
    (None within timing noise: the p50s differ by less than the larger
    standard deviation), `text`.
  """
  by_key = {(r["variant"], r["mode"]): r for r in rows}
  findings = []
  for (variant, mode), row in by_key.items():
    if mode != "int8" or (variant, "float32") not in by_key:
      continue
    floating = by_key[(variant, "float32")]
    f_ms, i_ms = floating["cpu_p50_ms"], row["cpu_p50_ms"]
    if f_ms is None or i_ms is None:
      continue
    noise = max(floating["cpu_std_ms"] or 0.0, row["cpu_std_ms"] or 0.0)
    if abs(i_ms - f_ms) < noise:
      slower, verdict = None, "int8 and float32 are within timing noise"
    elif i_ms > f_ms:
      slower = True
      if cpu and not cpu.get("vnni"):
        why = (f"{_cpu_words(cpu)} has no int8 dot-product instructions "
               "(no VNNI/AMX, no dotprod/i8mm), so XNNPACK's int8 kernels "
               "do more work per multiply than its float32 ones")
      elif cpu:
        why = (f"{_cpu_words(cpu)} has int8 dot-product instructions, so "
               "the cause is elsewhere (quantize/dequantize overhead on a "
               "small model, or ops left in float)")
      else:
        why = _cpu_words(cpu)
      verdict = f"int8 is slower than float32 here: {why}"
    else:
      slower, verdict = False, "int8 is faster than float32 here"
    findings.append({
        "variant": variant, "float32_ms": f_ms, "int8_ms": i_ms,
        "int8_slower": slower,
        "text": (f"{variant}: int8 p50 {i_ms:.4f} ms vs float32 "
                 f"{f_ms:.4f} ms; {verdict}.")})
  return findings


def _pick(rows, key):
  chosen = [r for r in rows if r[key] is not None]
  return min(chosen, key=lambda r: (r[key], -(r["top1"] or 0))) if chosen \
      else None


def advise(report, max_drop_pt=1.0):
  """The export to ship for speed and for size, within an accuracy budget.

  Args:
    report: report.json's dict of a finished run.
    max_drop_pt: the largest top-1 drop from the baseline's Keras model
      allowed, in percentage points (the measured drop, not its interval).

  Returns:
    Dict: `max_drop_pt`, `eligible` (the exports within budget, as
    `candidates` rows), `fastest_cpu`, `fastest_gpu`, `smallest` (each
    `{"variant", "mode", "reason"}`, or for the GPU `{"measured": False,
    "reason": ...}`; None when nothing is within budget), `int8` (see
    `int8_findings`), `cpu` (the recorded CPU) and `summary`, a list of
    sentences.

  Raises:
    ValueError: for a negative budget, or a report without exports.
  """
  if not max_drop_pt >= 0:
    raise ValueError(f"max_drop must be >= 0 points, got {max_drop_pt}")
  rows = candidates(report)
  if not rows:
    raise ValueError("the run has no .tflite exports to choose from; run it "
                     "with --export=float32,int8")
  cpu = (report.get("environment") or {}).get("cpu")
  eligible = [r for r in rows
              if r["drop_pt"] is not None and r["drop_pt"] <= max_drop_pt]
  out = {"max_drop_pt": float(max_drop_pt), "eligible": eligible,
         "int8": int8_findings(rows, cpu), "cpu": cpu}
  summary = []

  def choice(row, reason):
    return {"variant": row["variant"], "mode": row["mode"],
            "reason": reason}

  def drop_words(row):
    text = f"top-1 {100 * row['top1']:.2f}%, {row['drop_pt']:+.2f} pt drop"
    if row["drop_ci_pt"]:
      text += (f" (95% CI {row['drop_ci_pt'][0]:+.2f} to "
               f"{row['drop_ci_pt'][1]:+.2f})")
    return text

  fastest = _pick(eligible, "cpu_p50_ms")
  out["fastest_cpu"] = None if fastest is None else choice(
      fastest, f"{_name(fastest)}: the lowest CPU p50 "
      f"({fastest['cpu_p50_ms']:.4f} ms, 1st thread setting) of the "
      f"{len(eligible)} exports within {max_drop_pt:g} pt; "
      f"{drop_words(fastest)}.")
  gpu = _pick(eligible, "gpu_p50_ms")
  out["fastest_gpu"] = (
      {"measured": False, "reason": "GPU: not measured (no LiteRT GPU "
       "accelerator in this run; re-run with --use_gpu on a machine with "
       "one)."} if gpu is None else dict(choice(
           gpu, f"{_name(gpu)}: the lowest GPU p50 "
           f"({gpu['gpu_p50_ms']:.4f} ms); {drop_words(gpu)}."),
           measured=True))
  smallest = _pick(eligible, "gzip_bytes")
  out["smallest"] = None if smallest is None else choice(
      smallest, f"{_name(smallest)}: the smallest file "
      f"({smallest['gzip_bytes']:,} bytes gzipped) within "
      f"{max_drop_pt:g} pt; {drop_words(smallest)}.")
  if not eligible:
    summary.append(f"No export stays within {max_drop_pt:g} pt of the "
                   "baseline; raise --max_drop or compress less.")
  for key in ("fastest_cpu", "smallest"):
    if out[key]:
      summary.append(("Fastest on this CPU: " if key == "fastest_cpu"
                      else "Smallest: ") + out[key]["reason"])
  summary.append(out["fastest_gpu"]["reason"] if not gpu else
                 "Fastest on the GPU: " + out["fastest_gpu"]["reason"])
  summary.extend(f["text"] for f in out["int8"] if f["int8_slower"])
  if all(r["cpu_p50_ms"] is None for r in rows):
    summary.append("No CPU latency was measured (--benchmark_runs=0): the "
                   "speed choice is left open.")
  out["summary"] = summary
  return out
