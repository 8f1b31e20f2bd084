"""Latency statistics, the warm-up/timed-run loop and the report table.

Everything here is pure (hand-made latencies, a fake clock), so no model is
built or run.
"""

import json

import numpy as np
import pytest

from tf_compress import benchmark
from tf_compress.benchmark import format as format_lib
from tf_compress.benchmark import timing
from tf_compress.errors import UserInputError

HAND_MADE = {
    "five": [0.001, 0.002, 0.003, 0.004, 0.010],
    "one": [0.0025],
    "ties": [0.002, 0.002, 0.002, 0.002],
    "skewed": [0.001] * 98 + [0.05, 0.2],
    "unsorted": [0.009, 0.001, 0.005, 0.003, 0.007, 0.002],
}


@pytest.mark.parametrize("latencies", list(HAND_MADE.values()),
                         ids=list(HAND_MADE))
def test_latency_stats_equal_numpy(latencies):
  result = benchmark.latency_stats(latencies)
  ms = np.asarray(latencies) * 1e3
  assert result["count"] == len(latencies)
  assert result["mean_ms"] == pytest.approx(ms.mean())
  assert result["std_ms"] == pytest.approx(ms.std())
  assert result["min_ms"] == pytest.approx(ms.min())
  assert result["max_ms"] == pytest.approx(ms.max())
  for q in (50, 90, 99):
    assert result[f"p{q}_ms"] == pytest.approx(np.percentile(ms, q))
  assert result["throughput_ips"] == pytest.approx(
      len(latencies) / sum(latencies))
  ordered = [result[k] for k in ("min_ms", "p50_ms", "p90_ms", "p99_ms",
                                 "max_ms")]
  assert ordered == sorted(ordered)


def test_latency_stats_hand_computed_values():
  result = benchmark.latency_stats([0.001, 0.002, 0.003, 0.004, 0.010])
  assert result["mean_ms"] == pytest.approx(4.0)
  assert result["p50_ms"] == pytest.approx(3.0)
  # Linear interpolation between 4 ms (rank 3) and 10 ms (rank 4).
  assert result["p90_ms"] == pytest.approx(4.0 + 0.6 * 6.0)
  assert result["p99_ms"] == pytest.approx(4.0 + 0.96 * 6.0)
  assert result["std_ms"] == pytest.approx(np.sqrt((9 + 4 + 1 + 0 + 36) / 5))
  assert result["throughput_ips"] == pytest.approx(5 / 0.020)


def test_latency_stats_percentiles_ordered_on_random_data():
  rng = np.random.default_rng(0)
  for _ in range(20):
    latencies = rng.lognormal(-7, 1, size=rng.integers(1, 300))
    r = benchmark.latency_stats(latencies)
    assert (r["min_ms"] <= r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] <=
            r["max_ms"])
    assert r["min_ms"] <= r["mean_ms"] <= r["max_ms"]


def test_latency_stats_all_zero_has_no_throughput():
  assert benchmark.latency_stats([0.0, 0.0])["throughput_ips"] is None


@pytest.mark.parametrize("bad", [[], [[0.1, 0.2]], [0.1, -0.1], [np.nan],
                                 [np.inf], ["fast"]],
                         ids=["empty", "2d", "negative", "nan", "inf",
                              "text"])
def test_latency_stats_rejects_bad_input(bad):
  with pytest.raises(UserInputError, match="latencies"):
    benchmark.latency_stats(bad)


class FakeClock:
  """A clock that moves `step` seconds per invocation of `invoke`."""

  def __init__(self, step):
    self.now = 0.0
    self.step = step
    self.calls = 0

  def __call__(self):
    return self.now

  def invoke(self):
    self.calls += 1
    self.now += self.step


def test_time_invocations_runs_exactly_num_runs():
  clock = FakeClock(0.002)
  timings = benchmark.time_invocations(clock.invoke, warmup_runs=3,
                                       num_runs=17, clock=clock)
  assert clock.calls == 20
  assert len(timings.warmup_s) == 3 and len(timings.run_s) == 17
  assert timings.stopped_by == "num_runs"
  assert timings.run_s == pytest.approx([0.002] * 17)
  assert timings.first_s == pytest.approx(0.002)


def test_time_invocations_max_secs_stops_early():
  clock = FakeClock(0.1)
  timings = benchmark.time_invocations(clock.invoke, warmup_runs=2,
                                       num_runs=1000, max_secs=0.35,
                                       clock=clock)
  # 0.1 + 0.1 + 0.1 + 0.1 >= 0.35 after the 4th timed run; warm-up is free.
  assert len(timings.run_s) == 4
  assert clock.calls == 6
  assert timings.stopped_by == "max_secs"


def test_time_invocations_time_only_and_count_reached_first():
  clock = FakeClock(0.25)
  timings = benchmark.time_invocations(clock.invoke, warmup_runs=0,
                                       num_runs=None, max_secs=1.0,
                                       clock=clock)
  assert len(timings.run_s) == 4 and timings.stopped_by == "max_secs"
  assert timings.first_s == pytest.approx(0.25)  # no warm-up: first timed
  clock = FakeClock(0.25)
  timings = benchmark.time_invocations(clock.invoke, warmup_runs=0,
                                       num_runs=4, max_secs=1.0, clock=clock)
  # Both limits reached on the same run: the count was honoured.
  assert len(timings.run_s) == 4 and timings.stopped_by == "num_runs"


def test_time_invocations_slow_first_run_still_counts_once():
  clock = FakeClock(5.0)
  timings = benchmark.time_invocations(clock.invoke, warmup_runs=0,
                                       num_runs=10, max_secs=0.5,
                                       clock=clock)
  assert len(timings.run_s) == 1 and timings.stopped_by == "max_secs"


@pytest.mark.parametrize("kwargs,match", [
    ({"warmup_runs": -1}, "warmup_runs"),
    ({"warmup_runs": 1.5}, "warmup_runs"),
    ({"num_runs": 0}, "num_runs"),
    ({"num_runs": True}, "num_runs"),
    ({"max_secs": 0}, "max_secs"),
    ({"max_secs": float("nan")}, "max_secs"),
    ({"num_runs": None, "max_secs": None}, "never stop"),
], ids=["neg_warmup", "float_warmup", "zero_runs", "bool_runs", "zero_secs",
        "nan_secs", "no_limit"])
def test_time_invocations_rejects_bad_counts(kwargs, match):
  args = {"warmup_runs": 1, "num_runs": 5, "max_secs": None}
  args.update(kwargs)
  clock = FakeClock(0.001)
  with pytest.raises(UserInputError, match=match):
    timing.time_invocations(clock.invoke, clock=clock, **args)
  assert clock.calls == 0


def _cpu_result(threads, p50, stopped_by="num_runs"):
  result = {"backend": "cpu", "delegate": "xnnpack", "delegate_path": None,
            "num_threads": threads, "delegate_partitions": 1, "model_ops": 6,
            "init_ms": 1.5, "first_inference_ms": 0.2, "warmup_runs": 1,
            "warmup_mean_ms": 0.2, "stopped_by": stopped_by,
            "peak_memory_delta_mb": 4.5, "memory_method": "VmHWM"}
  result.update(benchmark.latency_stats([p50 / 1e3] * 3))
  return result


REPORT = {
    "model": "m.tflite", "model_bytes": 377780,
    "inputs": [{"name": "serving_default_input:0", "dtype": "int8",
                "shape": [1, 8, 8, 1], "quantization": [0.0039, -128],
                "source": "random(seed=0)", "value_range": [0.0, 1.0]}],
    "config": {}, "results": [
        _cpu_result(1, 0.25),
        _cpu_result(2, 0.125, stopped_by="max_secs"),
        {"backend": "gpu", "available": False,
         "reason": "Failed to initialize WebGPU environment: INTERNAL: No "
                   "adapters found"},
    ]}


def test_format_report_rows_and_unavailable_gpu():
  text = benchmark.format_report(REPORT)
  lines = text.splitlines()
  assert lines[0] == "Model: m.tflite (377,780 bytes)"
  assert "int8[1,8,8,1]" in lines[1] and "zero point -128" in lines[1]
  header = lines[2].split()
  assert header[:3] == ["backend", "threads", "init_ms"]
  assert header[-3:] == ["max_ms", "inf/s", "mem_MB"]
  row1, row2, gpu_row = lines[3], lines[4], lines[5]
  cells = row1.split()
  assert cells[0] == "CPU/XNNPACK" and cells[1] == "1"
  assert cells[header.index("p50_ms")] == "0.250"
  assert cells[header.index("inf/s")] == "4000"
  assert cells[header.index("runs")] == "3"
  assert row2.split()[header.index("p50_ms")] == "0.125"
  assert row2.endswith("(stopped by max_secs)")
  assert gpu_row.startswith("GPU")
  assert gpu_row.endswith("unavailable: Failed to initialize WebGPU "
                          "environment: INTERNAL: No adapters found")
  assert len(lines) == 6
  # The report is JSON-safe: what the table shows is what the JSON holds.
  assert json.loads(json.dumps(REPORT)) == REPORT


@pytest.mark.parametrize("result,label", [
    ({"backend": "gpu", "available": True, "cpu_fallback": True},
     "GPU (part CPU)"),
    ({"backend": "gpu", "available": True, "cpu_fallback": False}, "GPU"),
    ({"backend": "cpu", "delegate": "none", "delegate_partitions": 0},
     "CPU/builtin"),
    ({"backend": "cpu", "delegate": "xnnpack", "delegate_partitions": 0},
     "CPU/XNNPACK (not applied)"),
    ({"backend": "cpu", "delegate": "external",
      "delegate_path": "/opt/libedgetpu.so", "delegate_partitions": 2},
     "CPU/libedgetpu.so"),
], ids=["gpu_fallback", "gpu_full", "builtin", "xnnpack_unused", "external"])
def test_backend_label(result, label):
  assert format_lib.backend_label(result) == label


def test_format_reports_separates_models():
  text = benchmark.format_reports([REPORT, REPORT])
  assert text.count("Model: m.tflite") == 2
  assert "\n\nModel: m.tflite" in text
