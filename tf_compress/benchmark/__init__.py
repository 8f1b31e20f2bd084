"""LiteRT latency benchmarks, the `benchmark_model` way.

CPU runs on the LiteRT interpreter (XNNPACK or built-in kernels, a sweep of
thread counts, optionally an external delegate library), the GPU on LiteRT's
CompiledModel with its GPU accelerator; every result gives initialisation
time, first-inference and warm-up time, mean/std/min/p50/p90/p99/max latency,
throughput and the peak-memory increase.

    from tf_compress import benchmark

    report = benchmark.benchmark_model("model.tflite", num_threads=(1, 2),
                                       use_gpu=True)
    print(benchmark.format_report(report))

From the shell: `python -m tf_compress.benchmark model.tflite
--num_threads=1,2 --use_gpu --output_json=latency.json`.
"""

from tf_compress.benchmark.cpu import benchmark_cpu
from tf_compress.benchmark.cpu import load_external_delegate
from tf_compress.benchmark.format import format_report
from tf_compress.benchmark.format import format_reports
from tf_compress.benchmark.gpu import benchmark_gpu
from tf_compress.benchmark.harness import benchmark_model
from tf_compress.benchmark.harness import BenchmarkConfig
from tf_compress.benchmark.harness import make_inputs
from tf_compress.benchmark.timing import latency_stats
from tf_compress.benchmark.timing import time_invocations
from tf_compress.benchmark.timing import Timings

__all__ = [
    "benchmark_cpu", "benchmark_gpu", "benchmark_model", "BenchmarkConfig",
    "format_report", "format_reports", "latency_stats",
    "load_external_delegate", "make_inputs", "time_invocations", "Timings",
]
