"""Quantization benchmark on digits: one process, one table of ratios.

  python benchmarks/quantization.py [--seed=0] [--prune_block=4x1]
      [--dataset=digits|digits32] [--epochs=20] [--finetune_epochs=10]

Trains the baseline CNN, an 80%-pruned variant and a QAT variant with the
train command's library (`tf_compress.run`), exports each to float32 and
int8 TFLite, verifies every file on LiteRT, and prints:
  * int8 vs float32 TFLite file size (the limit is 4x);
  * top-1 drop of QAT int8 and of post-training int8 against float Keras;
  * int8 agreement with the Keras model;
  * gzip size of pruned + int8 against the baseline float32 file, for
    unstructured pruning and for block pruning of the Dense kernels
    (`--prune_block`; the convolutions stay unstructured), side by side.

Every top-1 difference is paired: both models (Keras or LiteRT) predict
the same test samples (the runs' predictions.npz), and the row shows the
difference's paired bootstrap 95% interval (points, in the row's sign) and
McNemar's exact p; a claim sentence per comparison follows the table.

The unstructured variant comes from a second run with the same seed and
determinism on, so both pruned variants start from the same baseline (the
script checks that the two baselines agree).

Targets (issue "QAT ... and verified TFLite export"): int8 file >= 3.5x
smaller; pruned + int8 (gzip) >= 10x smaller than baseline float32 (gzip);
QAT int8 top-1 <= 0.5 points below baseline float.

Block sizes measured (80% sparsity, 10 fine-tuning epochs, int8 TFLite;
gzip ratio against the baseline float32 file, then top-1 of the pruned int8
file; digits' test split has 359 images, so one image is 0.28 point):

  block   seed 0          seed 1          seed 2          baseline float
  1x1     9.68x  0.9721   9.68x  0.9861   9.70x  0.9916   0.9694 0.9861 0.9944
  2x1     10.01x 0.9749   9.998x 0.9805   10.03x 0.9916
  4x1     11.14x 0.9749   11.13x 0.9805   11.14x 0.9861
  4x1 MAX 11.38x 0.9694   11.46x 0.9777   11.36x 0.9861
  8x1     12.04x 0.9749   12.05x 0.9749
  1x4     9.37x  0.9777

4x1 (AVG), the default, is the smallest block that clears 10x on every seed
(2x1 misses it on seed 1), for about one test image of top-1 on average
against unstructured pruning; 8x1 costs more. 1x4 (4 outputs of one input)
lies across rows of TFLite's (outputs, inputs) kernel, so its zeros are not
contiguous and the file gzips worse than unstructured.
"""

import argparse
import os
import re
import tempfile

import numpy as np

import tf_compress as tfc
from tf_compress import pipeline
from tf_compress.analysis import compare_predictions
from tf_compress.analysis.significance_format import claim_sentence
from tf_compress.analysis.significance_format import difference_cell


def _tflite(variant, mode):
  return {e["mode"]: e for e in variant["tflite"]}[mode]


def _block(value):
  if not re.fullmatch(r"[1-9]\d*x[1-9]\d*", value):
    raise argparse.ArgumentTypeError(
        f"--prune_block must be HxW such as 4x1, got {value!r}")
  return value


def paired_top1(labels, reference, candidate, seed=0):
  """`compare_predictions`' top-1 entry: candidate minus reference."""
  return compare_predictions(labels, reference, candidate, metrics=("top1",),
                             seed=seed)["top1"]


def paired_cell(stat, drop=False):
  """The paired cell; with `drop`, of `reference - candidate` instead."""
  if drop:
    # 0.0 - x: a negated exact zero prints +0.0, not -0.0.
    stat = dict(stat, difference=0.0 - stat["difference"],
                ci_low=0.0 - stat["ci_high"],
                ci_high=0.0 - stat["ci_low"])
  return f"{difference_cell(stat)}, McNemar p {stat['p_value']:.2g}"


def _run(args, prune_block, qat):
  """`(report, predictions)`: the run and its predictions.npz."""
  out = tempfile.mkdtemp(prefix="bench_quant_")
  report = tfc.run(tfc.TrainConfig(
      output_dir=out, dataset=args.dataset, epochs=args.epochs,
      finetune_epochs=args.finetune_epochs, prune_sparsity=0.8,
      prune_block=None if prune_block == "1x1" else prune_block, qat=qat,
      export=("float32", "int8"), benchmark_runs=0, seed=args.seed,
      deterministic=True, verbose=0))
  return report, pipeline.load_predictions(
      os.path.join(out, "predictions.npz"))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--finetune_epochs", type=int, default=10)
  parser.add_argument("--dataset", default="digits",
                      help="digits (8x8x1) or digits32 (32x32x3), or any "
                      "name tf_compress.load_dataset accepts")
  parser.add_argument("--epochs", type=int, default=20,
                      help="baseline training epochs")
  parser.add_argument(
      "--prune_block", type=_block, default="4x1",
      help="block HxW of the Dense kernels in the block-pruned variant "
      "(1x1: unstructured, compared with itself)")
  args = parser.parse_args()
  report, (labels, predictions) = _run(args, args.prune_block, qat=True)
  by_name = {v["name"]: v for v in report["variants"]}
  base, pruned, qat = by_name["baseline"], by_name["pruned"], by_name["qat"]
  if args.prune_block == "1x1":
    unstructured = pruned
    flat_predictions = predictions["pruned"]
  else:
    other_report, (other_labels, other_predictions) = _run(args, "1x1",
                                                           qat=False)
    other = {v["name"]: v for v in other_report["variants"]}
    unstructured = other["pruned"]
    if not np.array_equal(other_labels, labels):
      raise RuntimeError("the two runs tested different samples; the "
                         "paired statistics need the same test split")
    flat_predictions = other_predictions["pruned"]
    if (other["baseline"]["top1"] != base["top1"] or
        _tflite(other["baseline"], "float32")["gzip_bytes"] !=
        _tflite(base, "float32")["gzip_bytes"]):
      print("warning: the two runs trained different baselines; the "
            "unstructured and block figures are not from the same model")
  base_f32, base_i8 = _tflite(base, "float32"), _tflite(base, "int8")
  qat_i8, pruned_i8 = _tflite(qat, "int8"), _tflite(pruned, "int8")
  flat_i8 = _tflite(unstructured, "int8")
  block = args.prune_block
  float_keras = predictions["baseline"]["keras"]
  # Each paired comparison: (label, reference's name, reference's and
  # candidate's test predictions).
  comparisons = {
      "ptq": ("post-training int8", "the baseline's float Keras model",
              float_keras, predictions["baseline"]["int8"]),
      "qat": ("QAT int8", "the baseline's float Keras model", float_keras,
              predictions["qat"]["int8"]),
      "qat_ptq": ("QAT int8", "post-training int8",
                  predictions["baseline"]["int8"],
                  predictions["qat"]["int8"]),
      "flat": ("pruned (unstructured) int8",
               "the baseline's float Keras model", float_keras,
               flat_predictions["int8"]),
      "block": (f"pruned (blocks {block}) int8",
                "the baseline's float Keras model", float_keras,
                predictions["pruned"]["int8"]),
  }
  paired = {key: paired_top1(labels, ref, cand, seed=args.seed)
            for key, (_, _, ref, cand) in comparisons.items()}
  rows = [
      ("int8 vs float32 TFLite file size (x smaller)",
       base_f32["bytes"] / base_i8["bytes"], ">= 3.5 (limit 4)"),
      ("post-training int8 top-1 drop vs float Keras (points)",
       100 * (base["top1"] - base_i8["tflite_top1"]), "",
       paired_cell(paired["ptq"], drop=True)),
      ("QAT int8 top-1 drop vs baseline float Keras (points)",
       100 * (base["top1"] - qat_i8["tflite_top1"]), "<= 0.5",
       paired_cell(paired["qat"], drop=True)),
      ("QAT int8 minus post-training int8 top-1 (points)",
       100 * (qat_i8["tflite_top1"] - base_i8["tflite_top1"]), ">= -0.5",
       paired_cell(paired["qat_ptq"])),
      ("post-training int8 agreement with Keras", base_i8["agreement"],
       ">= 0.98"),
      ("QAT int8 agreement with its Keras model", qat_i8["agreement"], ""),
      ("pruned 80% (unstructured) + int8 gzip vs baseline float32 gzip (x)",
       base_f32["gzip_bytes"] / flat_i8["gzip_bytes"], ""),
      (f"pruned 80% (Dense blocks {block}) + int8 gzip vs baseline float32 "
       "gzip (x)", base_f32["gzip_bytes"] / pruned_i8["gzip_bytes"], ">= 10"),
      ("pruned (unstructured) int8 top-1 drop vs baseline float (points)",
       100 * (base["top1"] - flat_i8["tflite_top1"]), "",
       paired_cell(paired["flat"], drop=True)),
      (f"pruned (blocks {block}) int8 top-1 drop vs baseline float (points)",
       100 * (base["top1"] - pruned_i8["tflite_top1"]), "",
       paired_cell(paired["block"], drop=True)),
  ]
  print(f"{args.dataset}, seed {args.seed}: float top-1 {base['top1']:.4f}, "
        f"PTQ int8 {base_i8['tflite_top1']:.4f}, QAT int8 "
        f"{qat_i8['tflite_top1']:.4f}, pruned int8 unstructured "
        f"{flat_i8['tflite_top1']:.4f} / blocks {block} "
        f"{pruned_i8['tflite_top1']:.4f}")
  print(f"gzip bytes: baseline float32 {base_f32['gzip_bytes']}, pruned "
        f"int8 unstructured {flat_i8['gzip_bytes']}, blocks {block} "
        f"{pruned_i8['gzip_bytes']}")
  width = max(len(r[0]) for r in rows)
  target_width = max(len(r[2]) for r in rows)
  print(f"{'measure'.ljust(width)}  {'value':>8}  "
        f"{'target'.ljust(target_width)}  paired 95% CI (pt), McNemar p "
        f"({labels.size} test samples)")
  for label, value, target, *cell in rows:
    print(f"{label.ljust(width)}  {value:8.3f}  "
          f"{target.ljust(target_width)}  {cell[0] if cell else ''}".rstrip())
  for key, (label, reference, _, _) in comparisons.items():
    print(claim_sentence(label, paired[key], reference))


if __name__ == "__main__":
  main()
