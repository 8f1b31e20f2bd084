"""Tests for tf_compress.analysis.pareto on hand-made point sets."""

import itertools

import numpy as np
import pytest

from tf_compress.analysis import dominates
from tf_compress.analysis import hypervolume
from tf_compress.analysis import pareto_front
from tf_compress.analysis import pareto_mask

ACC_SIZE = ("maximize", "minimize")


def test_dominates_needs_strictly_better_somewhere():
  assert dominates([0.9, 100], [0.8, 100], ACC_SIZE)
  assert dominates([0.9, 90], [0.9, 100], ACC_SIZE)
  assert not dominates([0.9, 100], [0.9, 100], ACC_SIZE)
  assert not dominates([0.95, 200], [0.9, 100], ACC_SIZE)


def test_front_on_hand_made_set():
  # (accuracy, gzip bytes): baseline, pruned, int8, pruned+int8, a bad one,
  # a duplicate of int8 and a row with a missing size.
  points = [[0.96, 300_000], [0.955, 90_000], [0.962, 80_000],
            [0.95, 30_000], [0.90, 95_000], [0.962, 80_000],
            [0.99, None]]
  assert pareto_mask(points, ACC_SIZE) == [False, False, True, True, False,
                                           True, False]
  assert pareto_front(points, ACC_SIZE) == [2, 3, 5]


def test_front_minimizing_everything_matches_brute_force():
  rng = np.random.default_rng(0)
  points = rng.integers(0, 6, size=(40, 3)).astype(float)
  mask = pareto_mask(points, ["minimize"] * 3)
  for i, p in enumerate(points):
    dominated = any(np.all(q <= p) and np.any(q < p) for q in points)
    assert mask[i] == (not dominated)


def test_empty_and_bad_directions():
  assert pareto_mask([], ACC_SIZE) == []
  with pytest.raises(ValueError, match="direction"):
    pareto_mask([[1, 2]], ("max", "minimize"))
  with pytest.raises(ValueError, match="2 objectives but 1"):
    pareto_mask([[1, 2]], ("maximize",))


def test_hypervolume_two_objectives_by_hand():
  # Reference: accuracy 0, size 10. Points (acc, size): (0.5, 2), (0.8, 6).
  # Union of [0,0.5]x[2,10] and [0,0.8]x[6,10] = 0.5*8 + 0.3*4 = 5.2
  assert hypervolume([[0.5, 2], [0.8, 6]], ACC_SIZE, [0, 10]) == (
      pytest.approx(5.2))
  # A dominated point and one beyond the reference add nothing.
  assert hypervolume([[0.5, 2], [0.8, 6], [0.4, 7], [0.9, 11]], ACC_SIZE,
                     [0, 10]) == pytest.approx(5.2)
  assert hypervolume([], ACC_SIZE, [0, 10]) == 0.0


def test_hypervolume_three_objectives_matches_grid_count():
  rng = np.random.default_rng(1)
  points = rng.integers(0, 5, size=(8, 3)).astype(float)
  reference = [5.0, 5.0, 5.0]
  # Count unit cells [x, x+1) dominated by some point (integer grid).
  cells = sum(
      1 for cell in itertools.product(range(5), repeat=3)
      if any(np.all(p <= np.array(cell)) for p in points))
  assert hypervolume(points, ["minimize"] * 3, reference) == pytest.approx(
      cells)
