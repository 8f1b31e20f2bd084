"""Printing of `model_summary` results as an aligned text table (larq-style).

Statistics live in `tf_compress.analysis.model_summary`; this module only
formats the dict it returns.
"""

__all__ = ["format_summary", "format_shape"]

_MAX_NAME = 48
_COLUMNS = (  # (heading, row key, right-aligned)
    ("Layer (type)", "layer", False),
    ("Output shape", "shape", False),
    ("Params", "params", True),
    ("Non-zero", "nonzero", True),
    ("Weights", "weights", False),
    ("Memory (B)", "memory", True),
    ("MACs", "macs", True),
)
_RATIO_NAMES = (("params", "params"), ("nonzero", "non-zero params"),
                ("memory_bytes", "memory"), ("macs", "MACs"))


def format_shape(shape):
  """`[None, 3]` -> `"(None, 3)"`; several outputs are joined by commas."""
  if shape is None:
    return "?"
  if shape and all(isinstance(s, list) for s in shape):
    return ", ".join(format_shape(s) for s in shape)
  inner = ", ".join("None" if d is None else str(d) for d in shape)
  return f"({inner},)" if len(shape) == 1 else f"({inner})"


def _count(value):
  return "?" if value is None else f"{value:,}"


def _shorten(text):
  if len(text) <= _MAX_NAME:
    return text
  return "..." + text[-(_MAX_NAME - 3):]


def _cells(row):
  return {
      "layer": f"{_shorten(row['name'])} ({row['type']})",
      "shape": format_shape(row["output_shape"]),
      "params": _count(row["params"]),
      "nonzero": _count(row["nonzero"]),
      "weights": "/".join(row["dtypes"]) or "-",
      "memory": _count(row["memory_bytes"]),
      "macs": _count(row["macs"]),
  }


def _line(cells, widths):
  parts = []
  for (_, key, right), width in zip(_COLUMNS, widths):
    text = cells[key]
    parts.append(text.rjust(width) if right else text.ljust(width))
  return "  ".join(parts).rstrip()


def _ratio(value):
  return "n/a" if value is None else f"{value:.2f}x"


def _percent(part, whole):
  return f"{100 * part / whole:.2f}%" if whole else "n/a"


def format_summary(summary):
  """Formats a `model_summary` result as a text table with totals.

  Args:
    summary: the dict returned by `tf_compress.analysis.model_summary`.

  Returns:
    The table, then lines for the parameters by bit width, non-zeros,
    memory against float32, MACs and, when the summary has a reference,
    the compression ratios (reference / model); no trailing newline.

  Example:
    >>> print(format_summary(model_summary(model)))
    Model: tiny (keras)
    Layer (type)  Output shape  Params  Non-zero  Weights  Memory (B)  MACs
    ...
  """
  totals = summary["totals"]
  body = [_cells(row) for row in summary["rows"]]
  total = {"layer": "Total", "shape": "", "params": _count(totals["params"]),
           "nonzero": _count(totals["nonzero"]), "weights": "",
           "memory": _count(totals["memory_bytes"]),
           "macs": _count(totals["macs"])}
  headings = {key: heading for heading, key, _ in _COLUMNS}
  widths = [max(len(cells[key]) for cells in [headings, total] + body)
            for _, key, _ in _COLUMNS]
  rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
  lines = [f"Model: {summary['name']} ({summary['source']})", rule,
           _line(headings, widths), rule]
  lines += [_line(cells, widths) for cells in body]
  lines += [rule, _line(total, widths), "=" * len(rule)]

  by_bits = ", ".join(f"{bits}-bit: {count:,}"
                      for bits, count in totals["params_by_bits"].items())
  lines.append(f"Params: {totals['params']:,}"
               + (f" ({by_bits})" if by_bits else ""))
  lines.append(f"Non-zero params: {totals['nonzero']:,} "
               f"({_percent(totals['nonzero'], totals['params'])})")
  lines.append(f"Memory: {totals['memory_bytes']:,} B (float32 equivalent "
               f"{totals['float32_bytes']:,} B, "
               f"{_ratio(totals['float32_ratio'])} smaller)")
  lines.append(f"MACs: {_count(totals['macs'])}")
  if summary.get("file_bytes") is not None:
    lines.append(f"File: {summary['file_bytes']:,} B")
  reference, ratios = summary.get("reference"), summary.get("ratios")
  if reference and ratios:
    parts = ", ".join(f"{label} {_ratio(ratios[key])}"
                      for key, label in _RATIO_NAMES)
    lines.append(f"Compression vs {reference['name']} "
                 f"({reference['source']}), reference / model: {parts}")
  return "\n".join(lines)
