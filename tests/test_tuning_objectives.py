"""Tuning objectives, directions and constraint violations."""

import pytest

from tf_compress.errors import UserInputError
from tf_compress.pipeline.tuning import objectives
from tf_compress.pipeline.tuning.objectives import Constraints


def test_directions():
  assert objectives.directions(["accuracy", "gzip_bytes", "p50_ms",
                                "robust_accuracy", "balanced_accuracy"]) == [
                                    "maximize", "minimize", "minimize",
                                    "maximize", "maximize"]


def test_check_objectives():
  assert objectives.check_objectives("accuracy, gzip_bytes") == (
      "accuracy", "gzip_bytes")
  with pytest.raises(UserInputError, match="--objectives: unknown objective "
                     "'size'; choose from accuracy"):
    objectives.check_objectives(["accuracy", "size"])
  with pytest.raises(UserInputError, match="--objectives is empty"):
    objectives.check_objectives([])
  with pytest.raises(UserInputError, match="--objectives has repeats"):
    objectives.check_objectives(["p50_ms", "p50_ms"])


def test_violations_are_signed_distances_to_the_limits():
  constraints = Constraints(max_accuracy_drop=0.01, max_size_bytes=10000,
                            max_latency_ms=0.5)
  values = {"accuracy": 0.95, "gzip_bytes": 12000, "p50_ms": 0.25}
  got = constraints.violations(values, baseline_accuracy=0.97)
  assert got["max_accuracy_drop"] == pytest.approx(0.01)
  assert got["max_size_bytes"] == 2000
  assert got["max_latency_ms"] == pytest.approx(-0.25)
  ok = constraints.violations({"accuracy": 0.965, "gzip_bytes": 9000,
                               "p50_ms": 0.5}, baseline_accuracy=0.97)
  assert all(v <= 0 for v in ok.values())
  assert constraints.active() == ["max_accuracy_drop", "max_size_bytes",
                                  "max_latency_ms"]


def test_missing_measures_violate():
  constraints = Constraints(max_accuracy_drop=0.01, max_latency_ms=1.0)
  got = constraints.violations({"accuracy": 0.9}, baseline_accuracy=None)
  assert got == {"max_accuracy_drop": 1.0, "max_latency_ms": 1e12}
  assert Constraints().violations({"accuracy": 0.1}) == {}


@pytest.mark.parametrize("kwargs,flag", [
    (dict(max_accuracy_drop=-0.1), "--max_accuracy_drop must be"),
    (dict(max_accuracy_drop=2.0), "--max_accuracy_drop is a fraction"),
    (dict(max_size_bytes=-1), "--max_size_bytes must be"),
    (dict(max_latency_ms=float("nan")), "--max_latency_ms must be"),
])
def test_bad_limits(kwargs, flag):
  with pytest.raises(UserInputError, match=flag):
    Constraints(**kwargs)


def test_what_must_be_measured():
  assert objectives.needs_latency(("accuracy",), Constraints(
      max_latency_ms=1.0))
  assert objectives.needs_latency(("p50_ms",), Constraints())
  assert not objectives.needs_latency(("accuracy", "gzip_bytes"),
                                      Constraints(max_size_bytes=5))
  assert objectives.needs_robustness(("robust_accuracy",))
  assert not objectives.needs_robustness(("accuracy",))
