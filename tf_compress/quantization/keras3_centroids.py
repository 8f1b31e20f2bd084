"""Initial cluster centroids of a weight: pure numpy, as tfmot defines them.

Weights in, `num_clusters` centroids out (sorted), for the Keras 3
clustering engine (`keras3_clustering`). Each initialization means what
tfmot's `CentroidInitialization` member of the same name means:

* `linear`: evenly spaced from the smallest weight to the largest;
* `density`: evenly spaced in the weights' cumulative distribution (CDF),
  read on tfmot's grid of 30 points from `min - gap` to `max + gap`: the
  centroid for probability `p` is the first grid point whose CDF exceeds
  `p` (probabilities from 0.01 to 1; the last grid point when none does);
* `kmeans++`: k-means++ seeding (greedy: several candidates per centroid,
  sampled by squared distance, the one lowering the potential kept), with a
  fixed seed as tfmot's (seed 9), on all the weights, without Lloyd steps;
* `random`: uniform between the smallest and the largest weight.

With `preserve_sparsity` (tfmot's sparsity-aware initialization) one
centroid is exactly 0, and the other `num_clusters - 1` are shared between
the negative and the positive weights in proportion to their counts, each
side initialized on its own; so a clustered kernel with its zeros kept
still has at most `num_clusters` distinct values, 0 among them.
"""

import math

import numpy as np

__all__ = ["INITS", "initial_centroids", "nearest_centroid"]

INITS = ("kmeans++", "linear", "density", "random")
_SEED = 9  # tfmot's k-means++ seed
_GRID = 30  # tfmot's CDF grid


def _linear(values, count):
  return np.linspace(values.min(), values.max(), count)


def _density(values, count, preserve_sparsity):
  low, high = float(values.min()), float(values.max())
  # A gap each side, so that the CDF starts at 0 and ends at 1; kept
  # narrower than the interval's distance to 0 when preserving sparsity.
  gap = min(0.01, min(abs(low), abs(high)) / 2) if preserve_sparsity else 0.01
  grid = np.linspace(low - gap, high + gap, _GRID)
  ordered = np.sort(values)
  cdf = np.searchsorted(ordered, grid, side="right") / ordered.size
  wanted = np.linspace(0.01, 1.0, count)
  # tfmot interpolates between the grid point found and the one before it,
  # then solves its line for the found point's own CDF value: the point.
  found = np.minimum(np.searchsorted(cdf, wanted, side="right"), _GRID - 1)
  return grid[found]


def _kmeans_plus_plus(values, count, rng):
  points = values.astype(np.float64)
  tries = 2 + int(math.log(count))  # TensorFlow's num_retries_per_sample=-1
  centers = [points[rng.integers(points.size)]]
  distance = (points - centers[0]) ** 2
  for _ in range(1, count):
    total = distance.sum()
    if total <= 0:  # fewer distinct values than clusters
      centers.append(centers[-1])
      continue
    candidates = rng.choice(points.size, size=tries, p=distance / total)
    options = np.minimum(distance[None, :],
                         (points[None, :] - points[candidates, None]) ** 2)
    best = int(np.argmin(options.sum(axis=1)))
    centers.append(points[candidates[best]])
    distance = options[best]
  return np.array(centers)


def _random(values, count, rng):
  return rng.uniform(values.min(), values.max(), count)


def _interval(values, count, init, preserve_sparsity, rng):
  if count <= 0 or values.size == 0:
    return np.zeros((0,))
  if init == "linear":
    return _linear(values, count)
  if init == "density":
    return _density(values, count, preserve_sparsity)
  if init == "kmeans++":
    return _kmeans_plus_plus(values, count, rng)
  if init == "random":
    return _random(values, count, rng)
  raise ValueError(f"unknown centroid initialization {init!r}; choose one "
                   f"of {', '.join(INITS)}")


def initial_centroids(weights, num_clusters, init="kmeans++",
                      preserve_sparsity=False, seed=_SEED):
  """The initial centroids of one weight.

  Args:
    weights: the weight's values (any shape).
    num_clusters: how many centroids.
    init: one of `INITS`.
    preserve_sparsity: hold one centroid at exactly 0 (see the module
      docstring).
    seed: seed of `kmeans++` and `random`.

  Returns:
    A float32 array of `num_clusters` centroids, sorted; with
    `preserve_sparsity`, one of them is 0.

  Raises:
    ValueError: for an unknown `init`.
  """
  values = np.asarray(weights, np.float32).reshape(-1)
  rng = np.random.default_rng(seed)
  if not preserve_sparsity:
    centroids = _interval(values, num_clusters, init, False, rng)
  else:
    negative, positive = values[values < 0], values[values > 0]
    nonzero = negative.size + positive.size
    if nonzero == 0:
      centroids = np.zeros((num_clusters,))
    else:
      # np.round, like tf.math.round, rounds halves to even.
      count = int(np.round((num_clusters - 1) * negative.size / nonzero))
      centroids = np.concatenate([
          _interval(negative, count, init, True, rng), [0.0],
          _interval(positive, num_clusters - 1 - count, init, True, rng)])
  return np.sort(centroids.astype(np.float32))


def nearest_centroid(weights, centroids):
  """Index of the nearest centroid of each weight (ties: the lower index)."""
  weights = np.asarray(weights, np.float32)
  centroids = np.asarray(centroids, np.float32)
  return np.argmin(np.abs(weights[..., None] - centroids), axis=-1).astype(
      np.int32)
