"""Pruning masks for Keras 3 kernels: pure functions on host arrays.

A kernel (or several) and a sparsity in, a 0/1 mask of the same shape out,
with `round(sparsity * size)` zeros (of blocks, for block masks); weights
tied with the smallest kept magnitude are kept too. Masks are computed
between training steps on the host with numpy (any Keras backend hands its
variables over with `keras.ops.convert_to_numpy`; numpy's O(n) partition is
about 40x faster on CPU than TensorFlow's `top_k`); inside the train step
they are applied with `keras.ops` (see `keras3_pruning`).
"""

import numpy as np

__all__ = ["magnitude_mask", "block_mask", "m_by_n_mask", "global_masks",
           "input_axis", "sparsity_of"]


def _keep_top(scores, num_zeros):
  """0/1 mask over a flat score vector: the `num_zeros` smallest are 0."""
  size = scores.size
  num_zeros = max(0, min(size, int(num_zeros)))
  if num_zeros == 0:
    return np.ones(size, np.float32)
  if num_zeros == size:
    return np.zeros(size, np.float32)
  threshold = np.partition(scores, num_zeros)[num_zeros]
  return (scores >= threshold).astype(np.float32)


def magnitude_mask(kernel, sparsity):
  """Mask zeroing the `sparsity` share of smallest-magnitude weights."""
  kernel = np.asarray(kernel)
  flat = np.abs(kernel).reshape(-1)
  return _keep_top(flat, round(float(sparsity) * flat.size)).reshape(
      kernel.shape)


def block_mask(kernel, sparsity, block, pooling="AVG"):
  """Mask of whole (height, width) blocks of a 2-D kernel.

  Blocks are ranked by their mean (AVG) or max (MAX) magnitude; blocks cut
  by the kernel's edges are ranked on the weights they hold.
  """
  magnitude = np.abs(np.asarray(kernel, np.float32))
  rows, cols = magnitude.shape
  bh, bw = block
  pad = ((0, (-rows) % bh), (0, (-cols) % bw))
  padded = np.pad(magnitude, pad)
  counts = np.pad(np.ones_like(magnitude), pad)
  nr, nc = padded.shape[0] // bh, padded.shape[1] // bw
  blocks = padded.reshape(nr, bh, nc, bw)
  if pooling == "MAX":
    scores = blocks.max(axis=(1, 3))
  else:
    scores = blocks.sum(axis=(1, 3)) / counts.reshape(nr, bh, nc, bw).sum(
        axis=(1, 3))
  keep = _keep_top(scores.reshape(-1), round(float(sparsity) * nr * nc))
  full = np.repeat(np.repeat(keep.reshape(nr, nc), bh, axis=0), bw, axis=1)
  return full[:rows, :cols]


def input_axis(kernel_rank, kind):
  """The input-channel axis of a kernel (the M:N grouping axis).

  Dense: axis 0 of (inputs, units); convolutions: axis -2 of (..., inputs,
  filters); Embedding: axis 1 (the embedding dimension).
  """
  if kind == "embedding":
    return 1
  return 0 if kernel_rank == 2 else kernel_rank - 2


def m_by_n_mask(kernel, m, n, axis):
  """M zeros in every N consecutive weights along `axis`.

  Returns:
    The mask, or None when the axis length is not a multiple of N.
  """
  kernel = np.asarray(kernel)
  axis = axis % kernel.ndim
  if kernel.shape[axis] % n:
    return None
  moved = np.moveaxis(np.abs(kernel), axis, -1)
  groups = moved.reshape(-1, n)
  # Rank within each group (stable): the M smallest of N are zeroed.
  ranks = np.argsort(np.argsort(groups, axis=-1, kind="stable"), axis=-1)
  keep = (ranks >= m).astype(np.float32).reshape(moved.shape)
  return np.moveaxis(keep, -1, axis)


def global_masks(kernels, sparsity):
  """One magnitude threshold over all `kernels`: masks reaching `sparsity`
  of all their weights together (layers may differ)."""
  kernels = [np.asarray(k) for k in kernels]
  joined = np.concatenate([np.abs(k).reshape(-1) for k in kernels])
  mask = _keep_top(joined, round(float(sparsity) * joined.size))
  out, start = [], 0
  for kernel in kernels:
    out.append(mask[start:start + kernel.size].reshape(kernel.shape))
    start += kernel.size
  return out


def sparsity_of(mask):
  """Share of zeros in a mask (a Python float)."""
  mask = np.asarray(mask)
  return float((mask == 0).sum() / max(1, mask.size))
