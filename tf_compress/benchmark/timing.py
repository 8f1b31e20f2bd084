"""Latency statistics, and the warm-up/timed-run loop that produces them.

The loop follows TFLite's `benchmark_model`: a number of warm-up runs, then
timed runs until `num_runs` have run or `max_secs` have passed, whichever
comes first. `latency_stats` is a pure function of the timed latencies.

Like the rest of this package, it imports only numpy, the standard library,
`ai_edge_litert` and light tf_compress modules, so that the child processes
that run benchmarks (see `harness`) start without TensorFlow.
"""

import dataclasses
import math
import numbers
import time
from typing import Optional, Tuple

import numpy as np

from tf_compress.errors import UserInputError

__all__ = ["PERCENTILES", "latency_stats", "Timings", "check_run_counts",
           "time_invocations", "timing_fields"]

PERCENTILES = (50, 90, 99)


def latency_stats(latencies_s):
  """Summarises per-invocation latencies, as `benchmark_model` reports them.

  Percentiles are numpy's (linear interpolation), so
  `min <= p50 <= p90 <= p99 <= max`. The standard deviation is the
  population one (ddof=0), as in `benchmark_model`.

  Args:
    latencies_s: a non-empty 1-D sequence of latencies in seconds.

  Returns:
    A dict: `count`; `mean_ms`, `std_ms`, `min_ms`, `p50_ms`, `p90_ms`,
    `p99_ms`, `max_ms` (milliseconds); `throughput_ips`, inferences per
    second over the summed latencies (None if they sum to zero).

  Raises:
    UserInputError: if `latencies_s` is empty, not 1-D, or holds negative,
      NaN or infinite values.
  """
  try:
    seconds = np.asarray(latencies_s, dtype=np.float64)
  except (TypeError, ValueError) as e:
    raise UserInputError(
        f"latencies must be numbers in seconds, got {latencies_s!r}.") from e
  if seconds.ndim != 1 or seconds.size == 0:
    raise UserInputError(
        "latencies must be a non-empty 1-D sequence of seconds, got shape "
        f"{seconds.shape}.")
  if not np.all(np.isfinite(seconds)) or np.any(seconds < 0):
    raise UserInputError(
        "latencies must be finite and non-negative, got min "
        f"{np.nanmin(seconds) if not np.all(np.isnan(seconds)) else 'nan'}.")
  ms = seconds * 1e3
  p50, p90, p99 = np.percentile(ms, PERCENTILES)
  total = float(seconds.sum())
  return {
      "count": int(ms.size),
      "mean_ms": float(ms.mean()),
      "std_ms": float(ms.std()),
      "min_ms": float(ms.min()),
      "p50_ms": float(p50),
      "p90_ms": float(p90),
      "p99_ms": float(p99),
      "max_ms": float(ms.max()),
      "throughput_ips": ms.size / total if total > 0 else None,
  }


@dataclasses.dataclass(frozen=True)
class Timings:
  """What `time_invocations` measured.

  Attributes:
    warmup_s: latency of each warm-up run, in seconds.
    run_s: latency of each timed run, in seconds.
    stopped_by: "num_runs" when the run count was reached, "max_secs" when
      the time budget ran out first.
  """
  warmup_s: Tuple[float, ...]
  run_s: Tuple[float, ...]
  stopped_by: str

  @property
  def first_s(self):
    """The latency of the very first invocation (warm-up or timed)."""
    return (self.warmup_s or self.run_s)[0]


def check_run_counts(warmup_runs, num_runs, max_secs):
  """Validates the loop's arguments; see `time_invocations`.

  Raises:
    UserInputError: naming the argument and the value received.
  """
  if (isinstance(warmup_runs, bool) or
      not isinstance(warmup_runs, numbers.Integral) or warmup_runs < 0):
    raise UserInputError(
        f"warmup_runs must be an integer >= 0, got {warmup_runs!r}.")
  if num_runs is not None and (
      isinstance(num_runs, bool) or
      not isinstance(num_runs, numbers.Integral) or num_runs < 1):
    raise UserInputError(
        f"num_runs must be an integer >= 1 (or None to run until max_secs), "
        f"got {num_runs!r}.")
  if max_secs is not None and (
      isinstance(max_secs, bool) or not isinstance(max_secs, numbers.Real) or
      not math.isfinite(max_secs) or max_secs <= 0):
    raise UserInputError(
        f"max_secs must be a number > 0 (or None for no time limit), got "
        f"{max_secs!r}.")
  if num_runs is None and max_secs is None:
    raise UserInputError(
        "num_runs and max_secs are both None, so the timed runs would never "
        "stop; give a run count, a time budget, or both.")


def time_invocations(invoke, warmup_runs=1, num_runs=50,
                     max_secs: Optional[float] = None,
                     clock=time.perf_counter):
  """Calls `invoke()` for warm-up, then times each of the timed runs.

  The timed runs stop after exactly `num_runs` calls, or as soon as the
  timed calls together have taken `max_secs` (checked after each call, so at
  least one timed call runs), whichever comes first. Warm-up time does not
  count against `max_secs`.

  Args:
    invoke: a callable with no arguments (e.g. `interpreter.invoke`).
    warmup_runs: untimed calls first (their latencies are still returned).
    num_runs: timed calls; None to run until `max_secs`.
    max_secs: time budget of the timed calls, in seconds; None for none.
    clock: a monotonic clock in seconds.

  Returns:
    A `Timings`.

  Raises:
    UserInputError: for invalid counts, or when both limits are None.
  """
  check_run_counts(warmup_runs, num_runs, max_secs)
  warmup = []
  for _ in range(int(warmup_runs)):
    start = clock()
    invoke()
    warmup.append(clock() - start)
  runs, elapsed, stopped_by = [], 0.0, "num_runs"
  while num_runs is None or len(runs) < num_runs:
    start = clock()
    invoke()
    latency = clock() - start
    runs.append(latency)
    elapsed += latency
    if max_secs is not None and elapsed >= max_secs:
      if num_runs is None or len(runs) < num_runs:
        stopped_by = "max_secs"
      break
  return Timings(tuple(warmup), tuple(runs), stopped_by)


def timing_fields(init_s, timings):
  """The timing fields of one backend's benchmark result (CPU or GPU).

  Args:
    init_s: seconds taken to load the model and prepare its inputs.
    timings: the `Timings` of its runs.

  Returns:
    A dict: `init_ms`, `first_inference_ms`, `warmup_runs`,
    `warmup_mean_ms` (None without warm-up runs), `stopped_by`, then the
    `latency_stats` of the timed runs.
  """
  fields = {
      "init_ms": init_s * 1e3,
      "first_inference_ms": timings.first_s * 1e3,
      "warmup_runs": len(timings.warmup_s),
      "warmup_mean_ms": (float(np.mean(timings.warmup_s)) * 1e3
                         if timings.warmup_s else None),
      "stopped_by": timings.stopped_by,
  }
  fields.update(latency_stats(timings.run_s))
  return fields
