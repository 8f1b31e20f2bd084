"""Pareto dominance, fronts and hypervolume: pure functions of objective values.

Used by the results report (which variants and exports are worth keeping) and
by the tuner (the trade-off curve of a study). Each objective is either
maximized (accuracy) or minimized (size, latency).
"""

import numpy as np

__all__ = ["DIRECTIONS", "dominates", "pareto_mask", "pareto_front",
           "hypervolume"]

DIRECTIONS = ("maximize", "minimize")


def _as_minimization(points, directions):
  """Returns float points, negated where maximized, and a finite-row mask."""
  points = np.asarray(points, dtype=np.float64)
  if points.ndim == 1:
    points = points.reshape(-1, 1)
  if points.ndim != 2:
    raise ValueError(f"points must have shape (n, objectives), got "
                     f"{points.shape}")
  directions = tuple(directions)
  if len(directions) != points.shape[1]:
    raise ValueError(f"{points.shape[1]} objectives but {len(directions)} "
                     f"directions {directions}")
  for direction in directions:
    if direction not in DIRECTIONS:
      raise ValueError(f"a direction must be one of {DIRECTIONS}, got "
                       f"{direction!r}")
  signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
  finite = np.all(np.isfinite(points), axis=1)
  return points * signs, finite


def dominates(a, b, directions):
  """True when `a` is at least as good as `b` everywhere and better somewhere.

  Args:
    a: objective values of one point.
    b: objective values of the other.
    directions: `maximize` or `minimize` per objective.
  """
  both, _ = _as_minimization([a, b], directions)
  return bool(np.all(both[0] <= both[1]) and np.any(both[0] < both[1]))


def pareto_mask(points, directions):
  """Marks the points that no other point dominates.

  Points with a missing (NaN or None) value are never on the front. Equal
  points do not dominate each other, so duplicates are all kept.

  Args:
    points: (n, objectives) array-like of objective values.
    directions: `maximize` or `minimize` per objective.

  Returns:
    A list of n booleans.
  """
  raw = [[np.nan if v is None else v for v in row] for row in points]
  if not raw:
    return []
  values, finite = _as_minimization(raw, directions)
  mask = []
  for i in range(values.shape[0]):
    if not finite[i]:
      mask.append(False)
      continue
    others = values[finite]
    dominated = np.any(np.all(others <= values[i], axis=1) &
                       np.any(others < values[i], axis=1))
    mask.append(not bool(dominated))
  return mask


def pareto_front(points, directions):
  """Indices of the non-dominated points, in input order."""
  return [i for i, keep in enumerate(pareto_mask(points, directions)) if keep]


def _hv_minimization(points, reference):
  """Hypervolume of minimization points below `reference` (recursive slices)."""
  if points.shape[0] == 0:
    return 0.0
  if points.shape[1] == 1:
    return float(reference[0] - points[:, 0].min())
  order = np.argsort(points[:, -1], kind="stable")
  points = points[order]
  volume = 0.0
  for i in range(points.shape[0]):
    upper = points[i + 1, -1] if i + 1 < points.shape[0] else reference[-1]
    height = upper - points[i, -1]
    if height <= 0:
      continue
    volume += height * _hv_minimization(points[:i + 1, :-1], reference[:-1])
  return volume


def hypervolume(points, directions, reference):
  """Volume of objective space dominated by `points` and bounded by `reference`.

  Larger is better. Points that do not strictly beat the reference in every
  objective add nothing. Exact; meant for the few dozen points of a study.

  Args:
    points: (n, objectives) objective values.
    directions: `maximize` or `minimize` per objective.
    reference: the worst acceptable value of each objective, e.g. accuracy 0
      and the baseline's size.

  Returns:
    A float >= 0.
  """
  if len(points) == 0:
    return 0.0
  values, finite = _as_minimization(points, directions)
  ref, _ = _as_minimization([reference], directions)
  ref = ref[0]
  values = values[finite]
  values = values[np.all(values < ref, axis=1)]
  if values.shape[0] == 0:
    return 0.0
  keep = pareto_mask(values, ["minimize"] * values.shape[1])
  return float(_hv_minimization(values[np.array(keep)], ref))
