"""Quantization benchmark on digits: one process, one table of ratios.

  python benchmarks/quantization.py [--seed=0]

Trains the baseline CNN, an 80%-pruned variant and a QAT variant with the
train command's library (`tf_compress.run`), exports each to float32 and
int8 TFLite, verifies every file on LiteRT, and prints:
  * int8 vs float32 TFLite file size (the limit is 4x);
  * top-1 drop of QAT int8 and of post-training int8 against float Keras;
  * int8 agreement with the Keras model;
  * gzip size of pruned + int8 against the baseline float32 file.

Targets (issue "QAT ... and verified TFLite export"): int8 file >= 3.5x
smaller; pruned + int8 (gzip) >= 10x smaller than baseline float32 (gzip);
QAT int8 top-1 <= 0.5 points below baseline float.
"""

import argparse
import tempfile

import tf_compress as tfc


def _tflite(variant, mode):
  return {e["mode"]: e for e in variant["tflite"]}[mode]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--finetune_epochs", type=int, default=10)
  args = parser.parse_args()
  report = tfc.run(tfc.TrainConfig(
      output_dir=tempfile.mkdtemp(prefix="bench_quant_"), epochs=20,
      finetune_epochs=args.finetune_epochs, prune_sparsity=0.8, qat=True,
      export=("float32", "int8"), benchmark_runs=0, seed=args.seed,
      deterministic=True, verbose=0))
  by_name = {v["name"]: v for v in report["variants"]}
  base, pruned, qat = by_name["baseline"], by_name["pruned"], by_name["qat"]
  base_f32, base_i8 = _tflite(base, "float32"), _tflite(base, "int8")
  qat_i8, pruned_i8 = _tflite(qat, "int8"), _tflite(pruned, "int8")
  rows = [
      ("int8 vs float32 TFLite file size (x smaller)",
       base_f32["bytes"] / base_i8["bytes"], ">= 3.5 (limit 4)"),
      ("post-training int8 top-1 drop vs float Keras (points)",
       100 * (base["top1"] - base_i8["tflite_top1"]), ""),
      ("QAT int8 top-1 drop vs baseline float Keras (points)",
       100 * (base["top1"] - qat_i8["tflite_top1"]), "<= 0.5"),
      ("QAT int8 minus post-training int8 top-1 (points)",
       100 * (qat_i8["tflite_top1"] - base_i8["tflite_top1"]), ">= -0.5"),
      ("post-training int8 agreement with Keras", base_i8["agreement"],
       ">= 0.98"),
      ("QAT int8 agreement with its Keras model", qat_i8["agreement"], ""),
      ("pruned 80% + int8 gzip vs baseline float32 gzip (x smaller)",
       base_f32["gzip_bytes"] / pruned_i8["gzip_bytes"], ">= 10"),
  ]
  print(f"digits, seed {args.seed}: float top-1 {base['top1']:.4f}, "
        f"PTQ int8 {base_i8['tflite_top1']:.4f}, QAT int8 "
        f"{qat_i8['tflite_top1']:.4f}, pruned int8 "
        f"{pruned_i8['tflite_top1']:.4f}")
  width = max(len(r[0]) for r in rows)
  print(f"{'measure'.ljust(width)}  {'value':>8}  target")
  for label, value, target in rows:
    print(f"{label.ljust(width)}  {value:8.3f}  {target}")


if __name__ == "__main__":
  main()
