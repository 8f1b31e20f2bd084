"""Export the digits CNN as float32 and int8 TFLite, and benchmark both.

Trains the CNN briefly, writes the two .tflite files, benchmarks each on
LiteRT's CPU (XNNPACK) at the given thread counts, and on the GPU with
--use_gpu (reported as unavailable, with the reason, on a machine without
one). Prints a table per model and the int8/float32 p50 latency ratio.

  python examples/benchmark_tflite.py --epochs=2 --num_threads=1,2
"""

import argparse
import os
import tempfile

import keras

import tf_compress as tfc
from tf_compress import benchmark
from tf_compress import export


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--epochs", type=int, default=2,
                      help="training epochs; 0 benchmarks the untrained "
                      "model (latency does not depend on the weights)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--num_threads", default="1,2",
                      help="CPU thread counts, e.g. 1,2")
  parser.add_argument("--num_runs", type=int, default=200)
  parser.add_argument("--use_gpu", action="store_true")
  parser.add_argument("--output_dir", default=None,
                      help="where to write the .tflite files (default: a "
                      "temporary directory)")
  args = parser.parse_args()
  output_dir = args.output_dir or tempfile.mkdtemp(prefix="tflite_bench_")
  os.makedirs(output_dir, exist_ok=True)

  tfc.set_seed(args.seed)
  splits = tfc.load_dataset("digits", seed=args.seed)
  model = tfc.build_model("cnn", splits.input_shape, splits.num_classes,
                          seed=args.seed)
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True))
  if args.epochs > 0:
    model.fit(splits.train(batch_size=32), epochs=args.epochs, verbose=0)

  config = benchmark.BenchmarkConfig(
      num_threads=tuple(int(t) for t in args.num_threads.split(",")),
      num_runs=args.num_runs, warmup_runs=10, use_gpu=args.use_gpu,
      seed=args.seed)
  reports = {}
  for mode in ("float32", "int8"):
    path = os.path.join(output_dir, f"cnn_{mode}.tflite")
    export.export_tflite(
        model, path, mode,
        representative_data=splits.x_train if mode == "int8" else None)
    reports[mode] = benchmark.benchmark_model(path, config)
    print(benchmark.format_report(reports[mode]))
    print()

  for f32, int8 in zip(reports["float32"]["results"],
                       reports["int8"]["results"]):
    if f32["backend"] == "cpu":
      print(f"{f32['num_threads']} thread(s): int8 p50 "
            f"{int8['p50_ms']:.4f} ms vs float32 {f32['p50_ms']:.4f} ms "
            f"({f32['p50_ms'] / int8['p50_ms']:.2f}x)")
  size_ratio = reports["float32"]["model_bytes"] / reports["int8"][
      "model_bytes"]
  print(f"int8 file {size_ratio:.2f}x smaller; files in {output_dir}")


if __name__ == "__main__":
  main()
