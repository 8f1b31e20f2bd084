"""Text tables of benchmark reports (pure formatting; no measuring here).

    print(format_report(benchmark_model("model.tflite", use_gpu=True)))

    Model: model.tflite (377,780 bytes)
      input serving_default_input:0  float32[1,8,8,1]  random(seed=0) in [0, 1]
    backend      threads  init_ms  first_ms  runs  mean_ms  std_ms ...
    CPU/XNNPACK        1     1.52     0.210    50    0.101   0.004 ...
    GPU          unavailable: No adapters found
"""

import os

__all__ = ["COLUMNS", "backend_label", "format_report", "format_reports"]

# (header, result key, format) of the numeric columns, in order.
COLUMNS = (
    ("threads", "num_threads", "{:d}"),
    ("init_ms", "init_ms", "{:.2f}"),
    ("first_ms", "first_inference_ms", "{:.3f}"),
    ("runs", "count", "{:d}"),
    ("mean_ms", "mean_ms", "{:.3f}"),
    ("std_ms", "std_ms", "{:.3f}"),
    ("min_ms", "min_ms", "{:.3f}"),
    ("p50_ms", "p50_ms", "{:.3f}"),
    ("p90_ms", "p90_ms", "{:.3f}"),
    ("p99_ms", "p99_ms", "{:.3f}"),
    ("max_ms", "max_ms", "{:.3f}"),
    ("inf/s", "throughput_ips", "{:.0f}"),
    ("mem_MB", "peak_memory_delta_mb", "{:.1f}"),
)


def backend_label(result):
  """A short name for a result's backend, e.g. "CPU/XNNPACK" or "GPU".

  A GPU result that is not fully accelerated is labelled
  "GPU (part CPU)", so its numbers are not read as pure GPU numbers.
  """
  if result.get("backend") == "gpu":
    if result.get("available") and result.get("cpu_fallback"):
      return "GPU (part CPU)"
    return "GPU"
  delegate = result.get("delegate")
  if delegate == "xnnpack":
    label = "CPU/XNNPACK"
  elif delegate == "external":
    label = "CPU/" + os.path.basename(result.get("delegate_path") or "ext")
  else:
    label = "CPU/builtin"
  if result.get("delegate_partitions") == 0 and delegate != "none":
    label += " (not applied)"
  return label


def _cell(result, key, fmt):
  value = result.get(key)
  if value is None:
    return "-"
  return fmt.format(value)


def _describe_input(entry):
  shape = ",".join(str(d) for d in entry["shape"])
  text = f"  input {entry['name']}  {entry['dtype']}[{shape}]  "
  text += entry["source"]
  if entry.get("value_range"):
    low, high = entry["value_range"]
    text += f" in [{low:.4g}, {high:.4g}]"
  if entry.get("quantization"):
    scale, zero_point = entry["quantization"]
    text += f" (quantized: scale {scale:.4g}, zero point {zero_point})"
  return text


def format_report(report):
  """Formats one `benchmark_model` report as a text table.

  Args:
    report: the dict `benchmark_model` returns (or loaded from its JSON).

  Returns:
    The table as a string (no trailing newline): a model line, one line per
    input, a header and one row per result. Unavailable GPU results show
    their reason; stops on the time budget are flagged after the row.
  """
  lines = [f"Model: {report['model']} ({report['model_bytes']:,} bytes)"]
  lines.extend(_describe_input(entry) for entry in report.get("inputs", []))
  results = report.get("results", [])
  labels = [backend_label(r) for r in results]
  label_width = max([len("backend")] + [len(label) for label in labels])
  rows = [[_cell(r, key, fmt) for _, key, fmt in COLUMNS]
          if r.get("backend") != "gpu" or r.get("available") else None
          for r in results]
  widths = [max([len(header)] + [len(row[i]) for row in rows if row])
            for i, (header, _, _) in enumerate(COLUMNS)]
  lines.append("  ".join(["backend".ljust(label_width)] + [
      header.rjust(width) for (header, _, _), width in zip(COLUMNS, widths)]))
  for result, label, row in zip(results, labels, rows):
    if row is None:
      lines.append(f"{label.ljust(label_width)}  unavailable: "
                   f"{result.get('reason', 'no reason given')}")
      continue
    line = "  ".join([label.ljust(label_width)] + [
        cell.rjust(width) for cell, width in zip(row, widths)])
    if result.get("stopped_by") == "max_secs":
      line += "  (stopped by max_secs)"
    lines.append(line.rstrip())
  return "\n".join(lines)


def format_reports(reports):
  """Formats several reports, separated by blank lines."""
  return "\n\n".join(format_report(report) for report in reports)
