"""Mixed precision on digits32: float32, int8, auto_keep_float, int4.

  python benchmarks/mixed_precision.py [--dataset=digits32]
      [--models=cnn,mobilenet_v2] [--epochs=8] [--max_drop=0.5] [--seed=0]
      [--benchmark_runs=100] [--smoke]

For each model (the demo CNN, `tf_compress.build_model("cnn", ...)`, and
`keras.applications.MobileNetV2` at alpha 0.35, untrained weights, which
needs inputs of at least 32x32: digits32's own size), one process trains
the float Keras model on the training split and exports it four ways:
  * `float32`;
  * `int8`: full-integer post-training quantization;
  * `int8+auto`: int8 with `quantization.auto_keep_float(max_drop=...)`'s
    layers kept in float32 (chosen on the validation split, from the int8
    sensitivity ranking, so that the validation drop against the float32
    file is at most `--max_drop` points);
  * `int4_weight_only`: 4-bit kernels through ai-edge-quantizer
    (float activations; depthwise convolutions keep float32 weights).
int8 and int8+auto are calibrated on the same training inputs. Each file
is run on LiteRT over the test split: gzip size, top-1 and the paired
bootstrap 95% interval of its difference from the float32 file (the same
test samples, `analysis.compare_predictions`, with McNemar's exact p),
agreement with the Keras model, and the p50 latency of one invocation
(batch 1) on XNNPACK at 1 thread (`benchmark.benchmark_model`, each file
in its own child process).

Target (issue 17): `auto_keep_float` recovers at least half of int8's top-1
drop against float32 (recovered = (int8 drop - auto drop) / int8 drop, on
the test split) while keeping at least 80% of int8's size saving (kept =
(float32 gzip - auto gzip) / (float32 gzip - int8 gzip)). The check prints
both ratios and PASS or FAIL per model; when int8 loses nothing on the test
split there is nothing to recover and the check says so instead. Latency
depends on the CPU's instruction set (int8 is slower than float32 on x86
without VNNI), so the CPU model and its flags are printed too.

MobileNetV2 trains from scratch here only with a front end: a Resizing
layer to `--mobilenet_size` (64) and a Rescaling to [-1, 1], and its
BatchNormalization momentum at `--bn_momentum` (0.9). At 32x32 it stays at
chance for several epochs, and with keras.applications' momentum of 0.999
its inference-mode output stays at chance after 8 epochs.

Measured (`--models=mobilenet_v2 --epochs=8 --seed=0`; 2-core Intel Xeon,
flags avx2 fma avx512f avx512_vnni avx_vnni amx_int8 amx_tile; 1,252 s, of
which training 1,092 s and auto_keep_float 118 s over 53 layers):
  float32          1,460.5 KiB  top-1 0.8933  p50 0.240 ms
  int8               458.5 KiB        0.8933  +0.0 pt [-0.2, +0.2]  0.408 ms
  int8+auto          458.5 KiB        0.8933  (keeps no layer)      0.436 ms
  int4_weight_only   303.7 KiB        0.8770  -1.6 pt [-2.0, -1.2]  0.686 ms
int8 loses nothing on either model (the demo CNN: no significant drop, as
measured on an AMD EPYC), so auto_keep_float keeps no layer and the
target's recovered share is 0/0: there is no drop to recover. The case it
is for, one layer that int8 breaks, is tests/test_export_mixed_precision's
fragile CNN on digits32. int8 is slower than float32 at batch 1 here even
with VNNI and AMX (1.7x; why was not measured): measure on the target, as
`python -m tf_compress.advise` does, rather than assume int8 is faster.

`--smoke` runs the whole path in a few minutes: 1 epoch on 2,000 training
images, 500 validation and 1,000 test images, 10 timed runs; its figures
mean nothing.
"""

import argparse
import dataclasses
import tempfile
import time

import numpy as np

import tf_compress as tfc
from tf_compress import analysis
from tf_compress import export
from tf_compress import quantization
from tf_compress.analysis import compare_predictions
from tf_compress.analysis.significance_format import difference_cell
from tf_compress.benchmark import benchmark_model

MODELS = ("cnn", "mobilenet_v2")
EXPORTS = ("float32", "int8", "int8+auto", "int4_weight_only")
MOBILENET_MIN_SIZE = 32  # keras.applications' MobileNetV2 refuses smaller
# The from-scratch recipe: inputs resized to MOBILENET_SIZE, and a
# BatchNormalization momentum that lets the moving statistics follow.
MOBILENET_SIZE = 64
MOBILENET_BN_MOMENTUM = 0.9
SMOKE = {"epochs": 1, "train_samples": 2000, "val_samples": 500,
         "test_samples": 1000, "benchmark_runs": 10, "num_resamples": 200}


def _models(value):
  names = tuple(m.strip() for m in value.split(",") if m.strip())
  unknown = [m for m in names if m not in MODELS]
  if not names or unknown or len(set(names)) != len(names):
    raise argparse.ArgumentTypeError(
        f"--models takes a comma-separated list of {', '.join(MODELS)} "
        f"without repeats, got {value!r}")
  return names


def _positive(value):
  number = int(value)
  if number < 1:
    raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
  return number


def _budget(value):
  number = float(value)
  if not number >= 0:
    raise argparse.ArgumentTypeError(
        f"--max_drop is in points and must be >= 0, got {value}")
  return number


def build(name, splits, seed, input_size=None,
          bn_momentum=MOBILENET_BN_MOMENTUM):
  """The uncompiled Keras 3 model `name` for `splits` (logits out).

  MobileNetV2 gets a front end: inputs resized to `input_size` (default:
  the data's own size) and mapped from [0, 1] to [-1, 1], as
  keras.applications' MobileNetV2 expects; its BatchNormalization momentum
  is set to `bn_momentum` (keras.applications' 0.999 suits ImageNet's long
  runs: after a few epochs here its moving statistics are still near their
  initial values, and the model scores chance in inference mode).
  """
  import keras  # pylint: disable=g-import-not-at-top
  if name == "cnn":
    return tfc.build_model("cnn", splits.input_shape, splits.num_classes,
                           seed=seed)
  height, width = splits.input_shape[:2]
  if len(splits.input_shape) != 3 or min(height, width) < MOBILENET_MIN_SIZE:
    raise SystemExit(
        f"mobilenet_v2 needs images of at least {MOBILENET_MIN_SIZE}x"
        f"{MOBILENET_MIN_SIZE}, but {splits.name} gives "
        f"{splits.input_shape}; use --dataset=digits32 or --models=cnn")
  keras.utils.set_random_seed(seed)
  size = max(MOBILENET_MIN_SIZE, int(input_size or min(height, width)))
  inputs = keras.Input(tuple(splits.input_shape), name="image")
  x = inputs
  if (height, width) != (size, size):
    x = keras.layers.Resizing(size, size, name="resize")(x)
  x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_unit_range")(x)
  model = keras.applications.MobileNetV2(
      input_tensor=x, alpha=0.35, weights=None,
      classes=splits.num_classes, classifier_activation=None)
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      layer.momentum = bn_momentum
  return model


def train(model, splits, args):
  """Fits `model` (Adam, from logits) for `args.epochs` epochs."""
  import keras  # pylint: disable=g-import-not-at-top
  model.compile(optimizer=keras.optimizers.Adam(args.learning_rate),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True), metrics=["accuracy"])
  model.fit(splits.train(args.batch_size, seed=args.seed + 1),
            validation_data=splits.validation(args.batch_size),
            epochs=args.epochs, verbose=args.verbose, shuffle=False)
  return model


def subsample(splits, args):
  """`splits` with at most the requested number of samples per split."""
  rng = np.random.default_rng(args.seed)
  changes = {}
  for split, limit in (("train", args.train_samples),
                       ("val", args.val_samples),
                       ("test", args.test_samples)):
    x, y = getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}")
    if limit is not None and limit < len(y):
      keep = np.sort(rng.choice(len(y), limit, replace=False))
      changes.update({f"x_{split}": x[keep], f"y_{split}": y[keep]})
  return dataclasses.replace(splits, **changes) if changes else splits


def paired_top1(labels, reference, candidate, args):
  """`compare_predictions`' top-1 entry: candidate minus reference."""
  return compare_predictions(labels, reference, candidate, metrics=("top1",),
                             num_resamples=args.num_resamples,
                             seed=args.seed)["top1"]


def p50_ms(path, args):
  """p50 of one invocation at 1 thread, XNNPACK, in a child process."""
  report = benchmark_model(path, num_threads=(1,), warmup_runs=5,
                           num_runs=args.benchmark_runs)
  return report["results"][0]["p50_ms"]


def measure_model(name, splits, args, workdir):
  """Trains `name`, exports it four ways and measures every file.

  Returns:
    A dict: `name`, `params`, `keras_top1`, `choice` (auto_keep_float's
    result), `seconds` per stage and `rows`, one per export: `export`,
    `path`, `gzip_bytes`, `top1`, `stat` (paired top-1 against float32;
    None for float32 itself), `agreement` (with Keras) and `p50_ms`.
  """
  seconds = {}
  started = time.perf_counter()
  model = train(build(name, splits, args.seed, args.mobilenet_size,
                      args.bn_momentum), splits, args)
  seconds["train"] = time.perf_counter() - started
  scores = model.predict(splits.x_test, batch_size=256, verbose=0)
  keras_predictions = np.argmax(scores, axis=-1)
  rng = np.random.default_rng(args.seed)
  calibration = splits.x_train[np.sort(rng.choice(
      splits.num_train, min(args.calibration_samples, splits.num_train),
      replace=False))]
  started = time.perf_counter()
  choice = quantization.auto_keep_float(
      model, splits, max_drop=args.max_drop,
      representative_data=calibration,
      num_calibration_samples=len(calibration),
      num_resamples=args.num_resamples, seed=args.seed)
  seconds["auto_keep_float"] = time.perf_counter() - started
  settings = {
      "float32": ("float32", {}),
      "int8": ("int8", {"representative_data": calibration}),
      "int8+auto": ("int8", {"representative_data": calibration,
                             "keep_float": choice["keep_float"]}),
      "int4_weight_only": ("int4_weight_only", {}),
  }
  rows, reference = [], None
  started = time.perf_counter()
  for label in EXPORTS:
    mode, kwargs = settings[label]
    path = f"{workdir}/{name}_{label.replace('+', '_')}.tflite"
    info = export.export_tflite(
        model, path, mode, num_calibration_samples=len(calibration),
        **kwargs)
    check = export.verify_tflite(path, splits.x_test, splits.y_test,
                                 isolate=False, return_predictions=True)
    predictions = check["predictions"]
    if reference is None:
      reference = predictions
    rows.append({
        "export": label, "path": path, "gzip_bytes": info["gzip_bytes"],
        "kernel_dtypes": info.get("kernel_dtypes"),
        "top1": check["tflite_top1"],
        "stat": (None if label == "float32" else
                 paired_top1(splits.y_test, reference, predictions, args)),
        "agreement": float(np.mean(predictions == keras_predictions)),
        "p50_ms": p50_ms(path, args) if args.benchmark_runs else None})
  seconds["export+verify+latency"] = time.perf_counter() - started
  return {"name": name, "params": int(model.count_params()),
          "keras_top1": float(np.mean(keras_predictions == splits.y_test)),
          "choice": choice, "seconds": seconds, "rows": rows}


def target_check(result):
  """The issue's target as numbers: `(recovered, kept, verdict, note)`.

  `recovered` is the share of int8's test top-1 drop (against float32)
  that int8+auto wins back; `kept` the share of int8's gzip saving that
  int8+auto keeps. `recovered` is None when int8 did not drop.
  """
  by = {r["export"]: r for r in result["rows"]}
  f32, int8, auto = by["float32"], by["int8"], by["int8+auto"]
  int8_drop = 100.0 * (f32["top1"] - int8["top1"])
  auto_drop = 100.0 * (f32["top1"] - auto["top1"])
  saving = f32["gzip_bytes"] - int8["gzip_bytes"]
  kept = (f32["gzip_bytes"] - auto["gzip_bytes"]) / saving if saving else 0.0
  if int8_drop <= 0:
    return None, kept, "N/A", (
        f"int8 lost nothing on the test split ({int8_drop:+.2f} pt drop), "
        "so there is no drop to recover")
  recovered = (int8_drop - auto_drop) / int8_drop
  verdict = "PASS" if recovered >= 0.5 and kept >= 0.8 else "FAIL"
  note = (f"int8 drop {int8_drop:.2f} pt, int8+auto drop {auto_drop:.2f} pt"
          f" (test split)")
  if not result["choice"]["keep_float"]:
    note += ("; auto_keep_float kept no layer in float (plain int8 met "
             "the budget on the validation split)")
  if not int8["stat"]["significant"]:
    note += ("; int8's drop is not significant (its 95% interval holds 0), "
             "so the recovered share is mostly noise")
  return recovered, kept, verdict, note


def _kib(value):
  return f"{value / 1024:.1f}"


def print_model(result, args):
  """The model's table, its auto_keep_float choice and its target check."""
  choice = result["choice"]
  print(f"\n== {result['name']} ({result['params']:,} params): Keras float "
        f"top-1 {result['keras_top1']:.4f}; "
        + ", ".join(f"{k} {v:.0f} s" for k, v in result["seconds"].items()))
  print(f"auto_keep_float(max_drop={args.max_drop:g}) on "
        f"{choice['num_candidates']} candidate layers: "
        f"keeps {len(choice['keep_float'])} in float "
        f"{choice['keep_float']}; validation drop {choice['drop']:+.2f} pt "
        f"[{choice['ci_low']:+.2f}, {choice['ci_high']:+.2f}] (plain int8 "
        f"{choice['int8_drop']:+.2f} pt); budget "
        f"{'met' if choice['met'] else 'NOT met'}")
  f32 = result["rows"][0]
  header = (f"{'export':<17} {'gzip KiB':>9} {'x smaller':>9} "
            f"{'top-1':>7} {'vs float32, paired 95% CI':<28} "
            f"{'McNemar p':>9} {'agree':>6} {'p50 ms':>7}")
  print(header)
  for row in result["rows"]:
    stat = row["stat"]
    cell = difference_cell(stat) if stat else "(reference)"
    p_value = f"{stat['p_value']:.2g}" if stat else "-"
    p50 = f"{row['p50_ms']:.3f}" if row["p50_ms"] is not None else "-"
    print(f"{row['export']:<17} {_kib(row['gzip_bytes']):>9} "
          f"{f32['gzip_bytes'] / row['gzip_bytes']:>9.2f} "
          f"{row['top1']:>7.4f} {cell:<28} {p_value:>9} "
          f"{row['agreement']:>6.3f} {p50:>7}")
  recovered, kept, verdict, note = target_check(result)
  recovered_text = "n/a" if recovered is None else f"{recovered:.2f}"
  print(f"target: recovered share of int8's drop {recovered_text} (>= 0.5), "
        f"kept share of int8's size saving {kept:.2f} (>= 0.8): {verdict}")
  print(f"  {note}")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", default="digits32",
                      help="any name tf_compress.load_dataset accepts "
                      "(mobilenet_v2 needs images >= 32x32)")
  parser.add_argument("--models", type=_models, default=MODELS,
                      help=f"comma-separated: {', '.join(MODELS)}")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--epochs", type=_positive, default=8)
  parser.add_argument("--batch_size", type=_positive, default=64)
  parser.add_argument("--learning_rate", type=float, default=1e-3)
  parser.add_argument("--max_drop", type=_budget, default=0.5,
                      help="auto_keep_float's budget: validation top-1 drop "
                      "against the float32 file, in points")
  parser.add_argument("--mobilenet_size", type=_positive,
                      default=MOBILENET_SIZE,
                      help="mobilenet_v2's input side: a Resizing layer in "
                      "front of it scales the images up to it")
  parser.add_argument("--bn_momentum", type=float,
                      default=MOBILENET_BN_MOMENTUM,
                      help="mobilenet_v2's BatchNormalization momentum")
  parser.add_argument("--calibration_samples", type=_positive, default=200)
  parser.add_argument("--benchmark_runs", type=int, default=100,
                      help="timed runs per file at 1 thread; 0 skips latency")
  parser.add_argument("--num_resamples", type=_positive, default=2000)
  parser.add_argument("--train_samples", type=_positive, default=None)
  parser.add_argument("--val_samples", type=_positive, default=None)
  parser.add_argument("--test_samples", type=_positive, default=None)
  parser.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2))
  parser.add_argument("--smoke", action="store_true",
                      help="a quick check of the path: " + ", ".join(
                          f"{k}={v}" for k, v in SMOKE.items()))
  args = parser.parse_args()
  if args.smoke:
    for key, value in SMOKE.items():
      setattr(args, key, value)
  started = time.perf_counter()
  splits = subsample(tfc.load_dataset(args.dataset, seed=args.seed), args)
  cpu = analysis.cpu_info()
  print(f"{args.dataset}, seed {args.seed}: {splits.num_train} train, "
        f"{splits.num_val} validation, {splits.num_test} test samples "
        f"{tuple(splits.input_shape)}; {args.epochs} epochs"
        + (" (SMOKE: figures mean nothing)" if args.smoke else ""))
  print(f"CPU: {cpu['model']} ({cpu['machine']}); flags: "
        f"{', '.join(cpu['flags']) or 'none of interest'}; int8 dot product "
        f"(VNNI/dotprod): {'yes' if cpu['vnni'] else 'no'}")
  verdicts = {}
  with tempfile.TemporaryDirectory(prefix="bench_mixed_") as workdir:
    for name in args.models:
      result = measure_model(name, splits, args, workdir)
      print_model(result, args)
      verdicts[name] = target_check(result)[2]
  print("\ntarget per model: "
        + ", ".join(f"{k} {v}" for k, v in verdicts.items())
        + f"; total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
  main()
