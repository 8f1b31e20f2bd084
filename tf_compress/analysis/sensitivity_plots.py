"""The sensitivity plot: drop per layer, sorted, with its interval.

`analysis.sensitivity`'s result in, a PNG out (matplotlib Agg, written
atomically): one horizontal bar per layer, the most sensitive at the top,
with the paired bootstrap interval as an error bar and a line at 0.
"""

import io
import os

import matplotlib

matplotlib.use("Agg")
# pylint: disable=g-import-not-at-top,wrong-import-position
import matplotlib.pyplot as plt
import numpy as np

from tf_compress.io_utils import atomic_write_bytes
# pylint: enable=g-import-not-at-top,wrong-import-position

__all__ = ["plot_sensitivity"]


def plot_sensitivity(result, path, title=None):
  """Draws the drop of each layer as a sorted horizontal bar chart.

  Args:
    result: `analysis.sensitivity`'s dict (its `rows`, `method`,
      `reference`, `confidence`).
    path: the PNG to write.
    title: the title; default names the method and the reference.

  Returns:
    {"path": the PNG, "layers": the layer labels top to bottom, "drops":
    the bar lengths (points) top to bottom}, read back from the drawn bars.
  """
  rows = sorted(result.get("rows") or [], key=lambda r: -r["drop"])
  labels = [r["layer"] for r in rows]
  drops = np.array([r["drop"] for r in rows], dtype=float)
  low = np.array([r["ci_low"] for r in rows], dtype=float)
  high = np.array([r["ci_high"] for r in rows], dtype=float)
  height = 1.2 + 0.32 * max(len(rows), 1)
  fig, axis = plt.subplots(figsize=(7, height))
  positions = np.arange(len(rows))[::-1]  # the largest drop on top
  colors = ["#c53030" if r.get("significant") else "#718096" for r in rows]
  bars = axis.barh(positions, drops, color=colors, height=0.6)
  if rows:
    errors = np.vstack([np.maximum(drops - low, 0),
                        np.maximum(high - drops, 0)])
    axis.errorbar(drops, positions, xerr=errors, fmt="none",
                  ecolor="#1a202c", capsize=3, linewidth=1)
  axis.axvline(0, color="#1a202c", linewidth=0.8)
  axis.set_yticks(positions)
  axis.set_yticklabels(labels, fontsize=8)
  level = round(100 * float(result.get("confidence", 0.95)))
  axis.set_xlabel(f"top-1 drop (points), {level}% paired bootstrap "
                  "interval")
  axis.set_title(title or (f"per-layer sensitivity: {result.get('method')} "
                           f"vs {result.get('reference', 'reference')}"),
                 fontsize=10)
  if not rows:
    axis.text(0.5, 0.5, "no layer analysed", ha="center",
              transform=axis.transAxes)
  fig.tight_layout()
  drawn = {"path": os.fspath(path),
           "layers": [axis.get_yticklabels()[i].get_text()
                      for i in np.argsort(-positions)] if rows else [],
           "drops": [float(bar.get_width()) for bar in bars]}
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100)
  plt.close(fig)
  atomic_write_bytes(os.fspath(path), buffer.getvalue())
  return drawn
