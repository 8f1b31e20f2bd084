"""Sparsity statistics of pruned models (pure: models in, dicts out).

For a model with pruning wrappers, the rows are the wrapped layers and the
zeros are those of `kernel * mask` (what the layer computes with). For a
plain (stripped) model, the rows are the layers whose tfmot-prunable
kernels hold exact zeros, i.e. the ones that were pruned: trained dense
kernels practically never hold an exact 0.0.
"""

import numpy as np

from tf_compress._keras import check_model, keras
from tf_compress._keras import is_keras3_object
from tf_compress.models.graph import iter_layers
from tf_compress.pruning.keras3_pruning import keras3_sparsity_rows
from tf_compress.pruning.wrappers import find_pruning_wrappers
from tf_compress.pruning.wrappers import prunable_weights

__all__ = ["sparsity_table", "overall_sparsity", "format_sparsity_table",
           "wrapper_rows"]


def _row(name, arrays):
  weights = int(sum(np.size(a) for a in arrays))
  zeros = int(sum(np.size(a) - np.count_nonzero(a) for a in arrays))
  return {"layer": name, "weights": weights, "zeros": zeros,
          "sparsity": zeros / weights if weights else 0.0}


def wrapper_rows(wrappers):
  """`sparsity_table` rows for `[(name, wrapper)]` (zeros of kernel * mask)."""
  rows = []
  for name, wrapper in wrappers:
    pairs = [v for w, m, _ in wrapper.pruning_vars for v in (w, m)]
    values = keras.backend.batch_get_value(pairs)
    rows.append(_row(name, [values[i] * values[i + 1]
                            for i in range(0, len(values), 2)]))
  return rows


def sparsity_table(model):
  """Per-layer sparsity of the pruned kernels of `model`.

  Args:
    model: a pruned model (with wrappers, nested ones included) or a
      stripped one.

  Returns:
    A list of dicts with `layer` (its name, `outer/inner` when nested),
    `weights` (prunable weights in the layer), `zeros` and `sparsity`, in
    model order.

  A Keras 3 model being pruned lists its pruned layers (see
  `keras3_pruning`).
  """
  if is_keras3_object(model):
    return keras3_sparsity_rows(model)
  check_model(model)
  wrappers = find_pruning_wrappers(model)
  if wrappers:
    return wrapper_rows(wrappers)
  rows = []
  for name, layer in iter_layers(model):
    weights = prunable_weights(layer)
    if not weights:
      continue
    row = _row(name, keras.backend.batch_get_value(weights))
    if row["zeros"]:
      rows.append(row)
  return rows


def overall_sparsity(model_or_rows):
  """Zeros over weights, over all pruned kernels.

  Args:
    model_or_rows: a model, or rows from `sparsity_table`.

  Returns:
    A float in [0, 1]; 0.0 when nothing is pruned.

  """
  rows = model_or_rows
  if not isinstance(model_or_rows, (list, tuple)):
    rows = sparsity_table(model_or_rows)
  weights = sum(r["weights"] for r in rows)
  return sum(r["zeros"] for r in rows) / weights if weights else 0.0


def format_sparsity_table(rows):
  """Formats `sparsity_table` rows as an aligned text table with a total.

  Args:
    rows: dicts with `layer`, `weights`, `zeros`, `sparsity`.

  Returns:
    The table as a string (no trailing newline).
  """
  total = {"layer": "total", "weights": sum(r["weights"] for r in rows),
           "zeros": sum(r["zeros"] for r in rows)}
  total["sparsity"] = (total["zeros"] / total["weights"]
                       if total["weights"] else 0.0)
  body = list(rows) + [total]
  width = max([len("layer")] + [len(str(r["layer"])) for r in body])
  header = f"{'layer':<{width}}  {'weights':>9}  {'zeros':>9}  sparsity"
  lines = [header, "-" * len(header)]
  for i, r in enumerate(body):
    if i == len(rows):
      lines.append("-" * len(header))
    lines.append(f"{str(r['layer']):<{width}}  {r['weights']:>9d}  "
                 f"{r['zeros']:>9d}  {r['sparsity']:8.4f}")
  return "\n".join(lines)
