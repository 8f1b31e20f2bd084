"""Global magnitude pruning: one threshold across all pruned layers.

tfmot prunes every layer to the same sparsity. With one threshold over the
weights of all layers instead, layers with many small (redundant) weights
lose more and layers whose weights all matter lose less, while the share of
zeros over all pruned kernels still meets the schedule's target.

The wrappers carry a `GlobalSparsity` schedule, which keeps tfmot from
updating their masks; `PruningCallback` calls `apply_global_masks` at the
schedule's update steps. Masks are computed in NumPy from the variables'
values and assigned in cross-replica context, which `MirroredVariable`s
mirror to every replica.
"""

import json

import numpy as np

from tf_compress._keras import keras
from tf_compress.pruning import schedules

__all__ = ["global_masks", "apply_global_masks", "global_groups"]


def global_masks(weights, sparsity):
  """Masks keeping the largest-magnitude weights over all arrays together.

  Exactly `max(1, round(total * (1 - sparsity)))` entries are kept (tfmot's
  per-layer rule, applied to the union), ties broken by position, so the
  result is deterministic.

  Args:
    weights: a list of NumPy arrays.
    sparsity: the target share of zeros over all of them, in [0, 1).

  Returns:
    `(masks, threshold)`: one float array of 0/1 per input, same shapes and
    dtypes, and the smallest kept magnitude.
  """
  flat = np.concatenate([np.abs(np.ravel(w)).astype(np.float64)
                         for w in weights])
  keep = int(max(1, round(flat.size * (1.0 - float(sparsity)))))
  # A stable sort on -|w| orders ties by position: same input, same mask.
  order = np.argsort(-flat, kind="stable")
  kept = np.zeros(flat.size, dtype=bool)
  kept[order[:keep]] = True
  threshold = float(flat[order[keep - 1]])
  masks, start = [], 0
  for w in weights:
    size = np.size(w)
    masks.append(kept[start:start + size].reshape(np.shape(w)).astype(
        np.asarray(w).dtype))
    start += size
  return masks, threshold


def apply_global_masks(wrappers, sparsity):
  """Sets the masks of `wrappers` from one threshold, and masks the kernels.

  Args:
    wrappers: tfmot `PruneLowMagnitude` layers (built).
    sparsity: the target share of zeros over all their prunable weights.

  Returns:
    The threshold used.
  """
  triples = [t for w in wrappers for t in w.pruning_vars]
  values = keras.backend.batch_get_value([w for w, _, _ in triples])
  masks, threshold = global_masks(values, sparsity)
  updates = []
  for (weight, mask, thresh), value, new_mask in zip(triples, values, masks):
    updates.append((mask, new_mask))
    updates.append((thresh, np.asarray(threshold, thresh.dtype.as_numpy_dtype)))
    updates.append((weight, value * new_mask))
  keras.backend.batch_set_value(updates)
  return threshold


def global_groups(wrappers):
  """Groups the wrappers that share one global schedule.

  Wrappers from one `prune_model` call share a schedule object; after
  loading they hold equal copies, so groups are keyed by the config.

  Args:
    wrappers: `[(name, wrapper)]` as found in a model.

  Returns:
    A list of `(schedule, [(name, wrapper)])`, one per distinct
    `GlobalSparsity` schedule; layer-scope wrappers are left out.
  """
  groups = {}
  for name, wrapper in wrappers:
    schedule = wrapper.pruning_schedule
    if isinstance(schedule, schedules.GlobalSparsity):
      key = json.dumps(schedule.get_config(), sort_keys=True)
      groups.setdefault(key, (schedule, []))[1].append((name, wrapper))
  return list(groups.values())
