"""Plots of run results, written as PNG with matplotlib's Agg backend."""

import io
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

from tf_compress.io_utils import atomic_write_bytes  # pylint: disable=g-import-not-at-top

__all__ = ["plot_training_curves"]


def plot_training_curves(history, path, title="training"):
  """Plots loss and accuracy per epoch, training and validation, to a PNG.

  Args:
    history: a `keras.callbacks.History.history`-style dict of lists.
    path: where to write the PNG (atomically).
    title: figure title.

  Returns:
    `path`.
  """
  panels = [("loss", "loss"), ("accuracy", "accuracy")]
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  for axis, (key, label) in zip(axes, panels):
    for prefix, style in (("", "-"), ("val_", "--")):
      values = history.get(prefix + key)
      if values:
        epochs = range(1, len(values) + 1)
        axis.plot(epochs, values, style, marker="o", markersize=3,
                  label=("validation " if prefix else "training ") + label)
    axis.set_xlabel("epoch")
    axis.set_ylabel(label)
    axis.grid(alpha=0.3)
    if axis.get_legend_handles_labels()[0]:
      axis.legend()
  fig.suptitle(title)
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100)
  plt.close(fig)
  atomic_write_bytes(os.fspath(path), buffer.getvalue())
  return path
