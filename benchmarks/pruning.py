"""Pruning benchmark on digits: one process, one table of measured ratios.

  python benchmarks/pruning.py [--seed=0] [--timing_epochs=6]
      [--dataset=digits|digits32] [--epochs=20] [--finetune_epochs=10]

Rows:
  * `pruned` (80% sparsity) vs `baseline`: top-1 drop and the gzip size ratio
    of the stripped models (the .keras files without optimizer state, and
    the float32 TFLite files).
  * `sliced` (50%) vs `baseline`: MACs ratio, params ratio, top-1 drop.
  * training step time with `PruningCallback` over plain `model.fit`, same
    model, median epoch time after a warm-up epoch.

Every top-1 drop is paired: the baseline and the variant predict the same
test samples (the run's predictions.npz), and the row shows the drop's
paired bootstrap 95% interval (points, same sign as the drop) and McNemar's
exact p; a claim sentence per variant follows the table.

Targets (issue "Pruning"): pruned top-1 drop <= 1.0 point with gzip >= 3x
smaller; sliced top-1 drop <= 1.5 points with MACs >= 2x fewer; callback
overhead <= 1.15x.
"""

import argparse
import gzip
import os
import statistics
import tempfile
import time

import tf_compress as tfc
from tf_compress import keras
from tf_compress import pipeline
from tf_compress import pruning
from tf_compress.analysis import compare_predictions
from tf_compress.analysis.significance_format import claim_sentence
from tf_compress.analysis.significance_format import difference_cell
from tf_compress.export import convert_to_tflite


class _EpochTimer(keras.callbacks.Callback):

  def __init__(self):
    super().__init__()
    self.seconds = []

  def on_epoch_begin(self, epoch, logs=None):
    self._start = time.perf_counter()

  def on_epoch_end(self, epoch, logs=None):
    self.seconds.append(time.perf_counter() - self._start)


def _gzip_size(path):
  with open(path, "rb") as handle:
    return len(gzip.compress(handle.read(), 9))


def _median_epoch(model, splits, epochs, callbacks):
  timer = _EpochTimer()
  model.fit(splits.train(32), epochs=epochs + 1, verbose=0,
            callbacks=list(callbacks) + [timer])
  return statistics.median(timer.seconds[1:])  # drop the warm-up epoch


def paired_top1(labels, reference, candidate, seed=0):
  """`compare_predictions`' top-1 entry: candidate minus reference."""
  return compare_predictions(labels, reference, candidate, metrics=("top1",),
                             seed=seed)["top1"]


def drop_cell(stat):
  """The paired cell of `reference - candidate`, the sign of a drop."""
  # 0.0 - x: a negated exact zero prints +0.0, not -0.0.
  flipped = dict(stat, difference=0.0 - stat["difference"],
                 ci_low=0.0 - stat["ci_high"],
                 ci_high=0.0 - stat["ci_low"])
  return f"{difference_cell(flipped)}, McNemar p {stat['p_value']:.2g}"


def _compile(model):
  model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
      from_logits=True), metrics=["accuracy"])
  return model


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--timing_epochs", type=int, default=6)
  parser.add_argument("--dataset", default="digits",
                      help="digits (8x8x1) or digits32 (32x32x3), or any "
                      "name tf_compress.load_dataset accepts")
  parser.add_argument("--epochs", type=int, default=20,
                      help="baseline training epochs")
  parser.add_argument("--finetune_epochs", type=int, default=10)
  args = parser.parse_args()

  out = tempfile.mkdtemp(prefix="bench_pruning_")
  report = tfc.run(tfc.TrainConfig(
      output_dir=out, dataset=args.dataset, epochs=args.epochs,
      finetune_epochs=args.finetune_epochs, prune_sparsity=0.8,
      slice_ratio=0.5, seed=args.seed, deterministic=True, verbose=0))
  by_name = {v["name"]: v for v in report["variants"]}
  base, pruned, sliced = by_name["baseline"], by_name["pruned"], by_name[
      "sliced"]

  sizes = {}
  splits = tfc.load_dataset(args.dataset, seed=args.seed)
  labels, predictions = pipeline.load_predictions(
      os.path.join(out, "predictions.npz"))
  paired = {name: paired_top1(labels, predictions["baseline"]["keras"],
                              predictions[name]["keras"], seed=args.seed)
            for name in ("pruned", "sliced")}
  for name in ("baseline", "pruned"):
    model = tfc.load_model(os.path.join(out, f"{name}.keras"))
    tflite = os.path.join(out, f"{name}.tflite")
    with open(tflite, "wb") as handle:
      handle.write(convert_to_tflite(model, "float32"))
    sizes[name] = (_gzip_size(os.path.join(out, f"{name}.keras")),
                   _gzip_size(tflite))

  # Step time: the same model, plain fit vs pruning-wrapped fit + callback.
  model = tfc.build_model("cnn", splits.input_shape, splits.num_classes,
                          keras_version=2)
  plain = _median_epoch(_compile(model), splits, args.timing_epochs, [])
  wrapped = pruning.prune_model(model, pruning.PruningConfig(
      target_sparsity=0.8, schedule="polynomial", end_epoch=args.timing_epochs,
      frequency=10), steps_per_epoch=splits.num_train // 32 + 1)
  pruned_time = _median_epoch(_compile(wrapped), splits, args.timing_epochs,
                              [pruning.PruningCallback()])

  rows = [
      ("pruned 80%: top-1 drop (points)",
       100 * (base["top1"] - pruned["top1"]), "<= 1.0",
       drop_cell(paired["pruned"])),
      ("pruned 80%: gzip .keras size ratio (baseline/pruned)",
       sizes["baseline"][0] / sizes["pruned"][0], ">= 3"),
      ("pruned 80%: gzip float TFLite size ratio",
       sizes["baseline"][1] / sizes["pruned"][1], ">= 3"),
      ("pruned 80%: achieved sparsity", pruned["sparsity"]["overall"],
       "0.80"),
      ("sliced 50%: MACs ratio (baseline/sliced)",
       base["macs"] / sliced["macs"], ">= 2"),
      ("sliced 50%: params ratio", base["params"] / sliced["params"], ""),
      ("sliced 50%: top-1 drop (points)",
       100 * (base["top1"] - sliced["top1"]), "<= 1.5",
       drop_cell(paired["sliced"])),
      ("pruning callback step time / plain fit", pruned_time / plain,
       "<= 1.15"),
  ]
  print(f"{args.dataset}, seed {args.seed}: baseline top-1 "
        f"{base['top1']:.4f}, pruned {pruned['top1']:.4f}, sliced "
        f"{sliced['top1']:.4f} ({labels.size} test samples)")
  width = max(len(r[0]) for r in rows)
  print(f"{'measure'.ljust(width)}  {'value':>8}  {'target':<8}  "
        "paired 95% CI (pt), McNemar p")
  for label, value, target, *cell in rows:
    print(f"{label.ljust(width)}  {value:8.3f}  {target:<8}  "
          f"{cell[0] if cell else ''}".rstrip())
  for name, label in (("pruned", "pruned 80%"), ("sliced", "sliced 50%")):
    print(claim_sentence(label, paired[name], "the baseline"))


if __name__ == "__main__":
  main()
