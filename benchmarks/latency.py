"""LiteRT latency on the CPU (XNNPACK): one process, runs interleaved.

  python benchmarks/latency.py [--rounds=40] [--runs_per_round=20] [--seed=0]

Two architectures, each exported four ways:
  * `digits CNN`: the demo CNN on digits' 8x8x1 input
    (`build_model("cnn", (8, 8, 1), 10,
                  keras_version=2)`, about 94k parameters);
  * `wide CNN`: the same builder on 32x32x3 input at width 2.0 (conv 64 ->
    pool -> conv 128 -> pool -> dense 256; about 1.7M parameters, 18M MACs);
  * variants: float32, full-integer int8 (float input and output, as
    exported by default), dynamic-range int8 weights, and the float32 model
    after `tf_compress.pruning.slice_model(model, 0.5)` (half the channels).

The models are untrained (latency does not depend on the weights' values;
int8 calibration uses 100 random inputs in [0, 1)). Every (model, variant,
thread count) gets its own interpreter, set up once with the same seeded
inputs; then, in each of `--rounds` rounds, each interpreter runs
`--runs_per_round` timed invocations, in a shuffled order, so that machine
noise hits all of them alike. The table gives p50 latencies and the ratios
float32/int8, float32/dynamic and dense/sliced (higher = the compressed
model is faster), at 1 and 2 threads.

Targets (issue "LiteRT benchmarking"), on the wide CNN at 1 thread: int8 at
least 2x faster than float32; 50%-sliced at least 1.7x faster than dense.
"""

import argparse
import importlib.metadata
import platform
import random

import numpy as np

import tf_compress as tfc
from tf_compress import pruning
from tf_compress.benchmark import cpu
from tf_compress.benchmark import make_inputs
from tf_compress.benchmark import timing as stats
from tf_compress.export import convert_to_tflite

VARIANTS = ("float32", "int8", "dynamic", "sliced50")
THREADS = (1, 2)


def _architectures(seed):
  return {
      "digits CNN 8x8x1": tfc.build_model("cnn", (8, 8, 1), 10, seed=seed,
                                          keras_version=2),
      "wide CNN 32x32x3": tfc.build_model("cnn", (32, 32, 3), 10, width=2.0,
                                          seed=seed, keras_version=2),
  }


def _export(model, seed):
  """The four TFLite variants of `model`, as bytes."""
  rng = np.random.default_rng(seed)
  calibration = rng.uniform(0, 1, (100,) + tuple(model.input_shape[1:]))
  calibration = calibration.astype(np.float32)
  sliced = pruning.slice_model(model, 0.5).model
  return {
      "float32": convert_to_tflite(model, "float32"),
      "int8": convert_to_tflite(model, "int8",
                                representative_data=calibration),
      "dynamic": convert_to_tflite(model, "dynamic"),
      "sliced50": convert_to_tflite(sliced, "float32"),
  }


def _interpreter(data, threads, seed):
  interpreter = cpu.make_interpreter(data, "model", num_threads=threads)
  arrays, _ = make_inputs(interpreter.get_input_details(), seed=seed)
  cpu.set_inputs(interpreter, arrays)
  return interpreter


def _cpu_name():
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def measure_interleaved(invokes, rounds, runs_per_round, warmup_runs=10,
                        seed=0):
  """Times every callable in rounds, in a shuffled order each round.

  Args:
    invokes: a dict from key to a callable with no arguments.
    rounds: number of rounds.
    runs_per_round: timed calls of each callable per round.
    warmup_runs: untimed calls of each callable before the first round.
    seed: seed of the shuffling.

  Returns:
    A dict from key to `stats.latency_stats` over all its timed calls.
  """
  shuffle = random.Random(seed)
  latencies = {key: [] for key in invokes}
  for invoke in invokes.values():
    for _ in range(warmup_runs):
      invoke()
  for _ in range(rounds):
    order = list(invokes)
    shuffle.shuffle(order)
    for key in order:
      timings = stats.time_invocations(invokes[key], warmup_runs=0,
                                       num_runs=runs_per_round)
      latencies[key].extend(timings.run_s)
  return {key: stats.latency_stats(values)
          for key, values in latencies.items()}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=40)
  parser.add_argument("--runs_per_round", type=int, default=20)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()

  interpreters = {}
  for arch, model in _architectures(args.seed).items():
    for variant, data in _export(model, args.seed).items():
      for threads in THREADS:
        interpreters[(arch, variant, threads)] = _interpreter(
            data, threads, args.seed)
  results = measure_interleaved(
      {key: it.invoke for key, it in interpreters.items()}, args.rounds,
      args.runs_per_round, seed=args.seed)

  def p50(arch, variant, threads):
    return results[(arch, variant, threads)]["p50_ms"]

  header = (f"{'model':18} {'thr':>3} {'f32 p50':>9} {'int8 p50':>9} "
            f"{'f32/int8':>8} {'dyn p50':>9} {'f32/dyn':>8} "
            f"{'slice p50':>9} {'dense/sl':>8}")
  print(f"ai-edge-litert {importlib.metadata.version('ai-edge-litert')}, "
        f"{_cpu_name()}, XNNPACK, batch 1; p50 in ms over "
        f"{args.rounds} x {args.runs_per_round} interleaved runs each")
  print(header)
  ratios = {}
  for arch in _architectures(args.seed):
    for threads in THREADS:
      base = p50(arch, "float32", threads)
      row = {v: p50(arch, v, threads) for v in VARIANTS}
      ratios[(arch, threads)] = {v: base / row[v] for v in VARIANTS}
      r = ratios[(arch, threads)]
      print(f"{arch:18} {threads:3d} {base:9.3f} {row['int8']:9.3f} "
            f"{r['int8']:7.2f}x {row['dynamic']:9.3f} {r['dynamic']:7.2f}x "
            f"{row['sliced50']:9.3f} {r['sliced50']:7.2f}x")
  wide = ratios[("wide CNN 32x32x3", 1)]
  for label, value, target in (
      ("wide CNN, 1 thread: int8 vs float32 p50 speed-up", wide["int8"], 2.0),
      ("wide CNN, 1 thread: 50%-sliced vs dense p50 speed-up",
       wide["sliced50"], 1.7)):
    verdict = "met" if value >= target else "NOT met"
    print(f"{label}: {value:.2f}x (target >= {target}x: {verdict})")


if __name__ == "__main__":
  main()
