"""Keras 3 engine vs tfmot on the same CNN and digits, in one process.

  python benchmarks/keras3_vs_tfmot.py [--seed=0] [--timing_epochs=5]
  python benchmarks/keras3_vs_tfmot.py --qat_seeds=0,1,2,3,4
  (any of them with [--dataset=digits|digits32] [--epochs=16]
  [--finetune_epochs=6] [--adversarial_epochs=10])

With `--qat_seeds`, only the QAT top-1 comparison runs, once per seed (a
fresh baseline each time), and the mean difference is printed with a 95%
t-interval across seeds: one seed's 359 test images cannot resolve 0.5 pt.

With `--adversarial_seeds`, only the adversarial-training comparison runs,
once per seed, with the same summary.

Every Keras 3 vs tfmot top-1 (or PGD-20 accuracy) difference is paired:
the two engines' models are different models on the same test samples, so
each difference (each seed's, with the seed options) is printed with its
paired bootstrap 95% interval and McNemar's exact p.

The tf_keras `cnn` baseline is trained once; a Keras 3 model of the same
architecture gets its weights, so both engines start from the same network.
Each engine then prunes it to 80% (polynomial schedule, 6 fine-tuning
epochs) and the test top-1 of the stripped models is compared. Step time:
median epoch time of the Keras 3 pruning `fit` (with `PruningCallback`) over
plain `fit` of the same Keras 3 model, after a warm-up epoch.

Also the gzip size of the pruned models' int8 files (each engine's export
path), and QAT: each engine makes the baseline quantization-aware, fine-tunes
it for 2 epochs and exports it to int8 without calibration data; the LiteRT
top-1 of the two files is compared, and the Keras 3 QAT `fit` is timed over
plain `fit` like pruning. Adversarial training: each engine's
`AdversarialModel` fine-tunes the baseline with PGD-3 at epsilon 0.2
(warmed up over 2 epochs, 10 epochs, ratio 0.5; inputs in [0, 1], as in
`benchmarks/distill_adversarial.py`), and the PGD-20 accuracy at 0.2 of the
two fine-tuned models is compared. Clustering: each engine clusters the
baseline to 16 values per kernel (linear initialisation), fine-tunes 2
epochs and strips it; top-1 and the float file's gzip size are compared.
PQAT: each engine's pruned model, quantization-aware with its zeros kept,
2 epochs, int8: LiteRT top-1, the kernels' sparsity in the int8 file and
its gzip size. Targets: top-1 (and PGD-20 accuracy)
within 0.5 pt of tfmot; pruning step time <= 1.15x; QAT step time <= 1.6x;
int8 gzip size within 5%. The CPU's instruction-set flags are printed with
the timings.
"""

import argparse
import statistics
import time

import keras
import numpy as np

import tf_compress as tfc
from tf_compress.analysis import compare_predictions
from tf_compress.analysis import cpu_info
from tf_compress.analysis import seed_summary
from tf_compress.analysis.environment import CPU_FLAGS
from tf_compress.analysis.significance_format import difference_cell
from tf_compress import adversarial
from tf_compress import export
from tf_compress import pruning
from tf_compress import quantization

EPOCHS, FINETUNE, QAT_EPOCHS = 16, 6, 2


def paired_top1(labels, reference, candidate, seed=0):
  """`compare_predictions`' top-1 entry: candidate minus reference."""
  return compare_predictions(labels, reference, candidate, metrics=("top1",),
                             seed=seed)["top1"]


def paired_cell(labels, tfmot, keras3, seed=0):
  """Keras 3 minus tfmot, paired: `+0.3 pt [-1.1, +1.7], McNemar p 0.75`."""
  stat = paired_top1(labels, tfmot, keras3, seed)
  return f"{difference_cell(stat)}, McNemar p {stat['p_value']:.2g}"


def t_interval(diffs):
  """`(mean, low, high)` of `seed_summary` (low, high None for 1 seed)."""
  summary = seed_summary(diffs)
  return summary["mean"], summary["ci_low"], summary["ci_high"]


def cpu_flags():
  """The CPU model and its int8-relevant instruction-set flags."""
  info = cpu_info()
  return info["model"] or "unknown", info["flags"]


def _timed_ratio(make_plain, make_other, x, y, epochs, extra, rounds=3):
  """Median epoch time of `make_other()` over plain, alternating rounds."""
  plain, other = make_plain(), make_other()
  plain_times, other_times = [], []
  for _ in range(rounds):
    for model, times, callbacks in ((plain, plain_times, []),
                                    (other, other_times, extra())):
      timer = _EpochTimer()
      model.fit(x, y, batch_size=32, epochs=epochs + 1, verbose=0,
                callbacks=callbacks + [timer])
      times.extend(timer.seconds[1:])  # drop each round's warm-up epoch
  return (statistics.median(plain_times), statistics.median(other_times),
          len(plain_times))


class _EpochTimer(keras.callbacks.Callback):

  def __init__(self):
    super().__init__()
    self.seconds = []

  def on_epoch_begin(self, epoch, logs=None):
    self._start = time.perf_counter()

  def on_epoch_end(self, epoch, logs=None):
    self.seconds.append(time.perf_counter() - self._start)


def keras3_cnn(input_shape, classes):
  """The registry's `cnn` (conv32, conv64, pool, dense128) in Keras 3.

  Without its Dropout; pooled as the registry pools any input size (a
  `pool0` down to at most 16x16, e.g. for digits32's 32x32), so that the
  baseline's weights fit.
  """
  height, width = input_shape[0], input_shape[1]
  inputs = keras.Input(input_shape)
  x = keras.layers.Conv2D(32, 3, padding="same", activation="relu",
                          name="conv1")(inputs)
  pools = 0
  while min(height, width) // (2**pools) > 16:
    pools += 1
  if pools:
    x = keras.layers.MaxPooling2D(2**pools, name="pool0")(x)
  valid = min(height, width) // (2**pools) >= 3
  x = keras.layers.Conv2D(64, 3, padding="valid" if valid else "same",
                          activation="relu", name="conv2")(x)
  if min(x.shape[1], x.shape[2]) >= 2:
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
  x = keras.layers.Flatten(name="flatten")(x)
  x = keras.layers.Dense(128, activation="relu", name="fc1")(x)
  outputs = keras.layers.Dense(classes, name="logits")(x)
  return keras.Model(inputs, outputs, name="cnn")


def _compile(model, module):
  model.compile(module.optimizers.Adam(1e-3),
                module.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"])
  return model


def _predict(model, splits):
  """The test split's argmax classes."""
  return np.asarray(model.predict(splits.x_test, verbose=0)).argmax(-1)


def _top1(model, splits):
  return float((_predict(model, splits) == splits.y_test).mean())


def _config(splits):
  return pruning.PruningConfig(target_sparsity=0.8, schedule="polynomial",
                               end_epoch=4, frequency=10)


def _trained_baseline(splits, seed, epochs=EPOCHS):
  tfc.set_seed(seed)
  baseline = _compile(tfc.build_model("cnn", splits.input_shape,
                                      splits.num_classes, seed=seed,
                                      keras_version=2),
                      tfc.keras)
  baseline.fit(splits.train(32, seed=seed), epochs=epochs, verbose=0)
  return baseline


def qat_top1(splits, baseline, seed):
  """LiteRT int8 top-1 of each engine's QAT model, from `baseline`.

  Both engines fine-tune for `QAT_EPOCHS` on the same tf.data pipeline.

  Returns:
    `{"tfmot" or "keras3": (LiteRT top-1, kernel dtypes, Keras top-1,
    LiteRT test predictions)}`.
  """
  tfc.set_seed(seed)
  tf_qat = _compile(quantization.quantize_model(baseline), tfc.keras)
  tf_qat.fit(splits.train(32, seed=seed + 2), epochs=QAT_EPOCHS, verbose=0)
  k3_float = keras3_cnn(splits.input_shape, splits.num_classes)
  k3_float.set_weights(baseline.get_weights())
  k3_qat = _compile(quantization.quantize_model(k3_float), keras)
  k3_qat.fit(splits.train(32, seed=seed + 2), epochs=QAT_EPOCHS, verbose=0)
  checks = {}
  for name, model in (("tfmot", tf_qat), ("keras3", k3_qat)):
    data = export.convert_to_tflite(model, "int8")
    check = export.verify_tflite(data, splits.x_test, splits.y_test,
                                 isolate=False, return_predictions=True)
    checks[name] = (check["tflite_top1"],
                    export.inspect_tflite(data)["kernel_dtypes"],
                    _top1(model, splits), check["predictions"])
  return checks


CLUSTERS = 16


def clustering_rows(splits, baseline, tf_stripped, k3_stripped, seed):
  """Clustering (16 clusters, float gzip) and PQAT (zeros in the int8 file).

  Each engine starts from the same weights: the float baseline for
  clustering (linear initialisation, so both start from the same
  centroids), and its own 80%-pruned model for PQAT; both fine-tune on the
  same tf.data pipeline.
  """
  rows = []
  results = {}
  for name, module, float_model in (
      ("tfmot", tfc.keras, baseline),
      ("keras3", keras, _keras3_copy(splits, baseline))):
    tfc.set_seed(seed)
    clustered = _compile(quantization.cluster_model(
        float_model, CLUSTERS, init="linear"), module)
    clustered.fit(splits.train(32, seed=seed + 3), epochs=QAT_EPOCHS,
                  verbose=0)
    stripped = quantization.strip_clustering(clustered)
    data = export.convert_to_tflite(stripped, "float32")
    unique = max(r["unique"] for r in
                 quantization.unique_values_per_layer(stripped))
    predicted = _predict(stripped, splits)
    results[name] = (float((predicted == splits.y_test).mean()),
                     export.inspect_tflite(data)["gzip_bytes"], unique,
                     predicted)
  (k3_top1, k3_gzip, k3_unique, k3_pred) = results["keras3"]
  (tf_top1, tf_gzip, tf_unique, tf_pred) = results["tfmot"]
  rows.append(("clustering (16) top-1, Keras 3 vs tfmot (pt)",
               f"{100 * (k3_top1 - tf_top1):+.2f}",
               f"Keras 3 {k3_top1:.4f} (<= {k3_unique} values per kernel), "
               f"tfmot {tf_top1:.4f} (<= {tf_unique})", "within 0.5",
               paired_cell(splits.y_test, tf_pred, k3_pred, seed)))
  rows.append(("clustering (16) float gzip size, Keras 3 vs tfmot",
               f"{100 * (k3_gzip / tf_gzip - 1):+.1f}%",
               f"Keras 3 {k3_gzip} B, tfmot {tf_gzip} B", "within 5%"))

  pqat = {}
  for name, module, pruned in (("tfmot", tfc.keras, tf_stripped),
                               ("keras3", keras, k3_stripped)):
    tfc.set_seed(seed)
    model = _compile(quantization.pqat_model(pruned), module)
    model.fit(splits.train(32, seed=seed + 4), epochs=QAT_EPOCHS, verbose=0)
    data = export.convert_to_tflite(model, "int8")
    info = export.inspect_tflite(data)
    check = export.verify_tflite(data, splits.x_test, splits.y_test,
                                 isolate=False, return_predictions=True)
    pqat[name] = (check["tflite_top1"], 1 - info["kernel_nonzero_fraction"],
                  info["gzip_bytes"], info["kernel_dtypes"],
                  check["predictions"])
  k3, tf = pqat["keras3"], pqat["tfmot"]
  rows.append(("PQAT int8 LiteRT top-1, Keras 3 vs tfmot (pt)",
               f"{100 * (k3[0] - tf[0]):+.2f}",
               f"Keras 3 {k3[0]:.4f}, tfmot {tf[0]:.4f}", "within 0.5",
               paired_cell(splits.y_test, tf[4], k3[4], seed)))
  rows.append(("PQAT int8 kernel sparsity in the file, Keras 3 vs tfmot",
               f"{k3[1]:.3f}/{tf[1]:.3f}",
               f"kernels {k3[3]} / {tf[3]}; gzip {k3[2]} vs {tf[2]} B "
               f"({100 * (k3[2] / tf[2] - 1):+.1f}%)", "within 5%"))
  return rows


def _keras3_copy(splits, baseline):
  # The registry's own Keras 3 cnn (with its Dropout, like the baseline).
  model = tfc.build_model("cnn", splits.input_shape, splits.num_classes)
  model.set_weights(baseline.get_weights())
  return model


def qat_seeds(seeds, dataset="digits", epochs=EPOCHS):
  """The QAT top-1 comparison over seeds, with a 95% t-interval.

  Each seed's difference is also printed with its paired interval over
  that seed's test samples.
  """
  diffs = []
  print(f"{'seed':>4}  {'Keras 3':>8}  {'tfmot':>8}  {'diff (pt)':>9}  "
        "paired 95% CI (pt), McNemar p")
  for seed in seeds:
    splits = tfc.load_dataset(dataset, seed=seed)
    checks = qat_top1(splits, _trained_baseline(splits, seed, epochs), seed)
    diff = 100 * (checks["keras3"][0] - checks["tfmot"][0])
    diffs.append(diff)
    print(f"{seed:>4}  {checks['keras3'][0]:>8.4f}  {checks['tfmot'][0]:>8.4f}"
          f"  {diff:>+9.2f}  " + paired_cell(
              splits.y_test, checks["tfmot"][3], checks["keras3"][3], seed),
          flush=True)
  mean, low, high = t_interval(diffs)
  if low is not None:
    print(f"mean {mean:+.2f} pt, 95% CI {low:+.2f} to "
          f"{high:+.2f} over {len(diffs)} seeds (target: within 0.5)")
  cpu, flags = cpu_flags()
  print(f"CPU: {cpu}; flags: {', '.join(flags)}")


# Adversarial training, as benchmarks/distill_adversarial.py trains it.
ADV_EPOCHS, ADV_WARMUP, ADV_EPSILON = 10, 2, 0.2
ADV_STEPS, ADV_EVAL_STEPS = 3, 20


def adversarial_accuracy(splits, baseline, seed, epochs=ADV_EPOCHS):
  """Clean and PGD-20 accuracy at 0.2 of each engine's AdversarialModel.

  Both fine-tune a copy of `baseline` on the same batches, from the same
  seed. The Keras 3 copy is the registry's `cnn` built in Keras 3 (with
  its Dropout, which `keras3_cnn` leaves out), given the weights. The
  pipeline is repeated and `fit` given the steps per epoch: each engine
  reads one iterator, in the same order (over a finite dataset, Keras 3
  and tf_keras create their per-epoch iterators differently, so the two
  would see their epochs in different shuffles).

  Returns:
    `{"tfmot": results, "keras3": results}`, `robust_accuracy`'s dicts,
    each with `predictions`: the argmax classes of the clean and of each
    adversarial test set (`{"clean" or result key: classes}`).
  """
  low, high = splits.value_range
  steps = int(np.ceil(splits.num_train / 32))
  copy = tfc.keras.models.clone_model(baseline)
  copy.set_weights(baseline.get_weights())
  k3 = tfc.build_model("cnn", splits.input_shape, splits.num_classes,
                       seed=seed, keras_version=3)
  k3.set_weights(baseline.get_weights())
  results = {}
  for name, base, module in (("tfmot", copy, tfc.keras),
                             ("keras3", k3, keras)):
    tfc.set_seed(seed)
    model = _compile(adversarial.AdversarialModel(
        base, attack="pgd", epsilon=ADV_EPSILON, steps=ADV_STEPS, ratio=0.5,
        clip_min=low, clip_max=high), module)
    model.fit(splits.train(32, seed=seed + 3).repeat(), epochs=epochs,
              steps_per_epoch=steps, verbose=0,
              callbacks=[adversarial.EpsilonWarmup(min(ADV_WARMUP, epochs))])
    settings = dict(attacks=("pgd",), epsilons=(ADV_EPSILON,),
                    pgd_steps=ADV_EVAL_STEPS, clip_min=low, clip_max=high,
                    seed=seed)
    # Crafted once, to score both the accuracy and each sample.
    examples = adversarial.craft_examples(
        model.base_model, splits.x_test, splits.y_test, **settings)
    results[name] = adversarial.robust_accuracy(
        model.base_model, splits.x_test, splits.y_test, examples=examples,
        **settings)
    results[name]["predictions"] = {
        key: _classes(model.base_model, x) for key, x in
        [("clean", splits.x_test)] + sorted(examples.items())}
  return results


def _classes(model, x, batch_size=256):
  """Argmax classes of `model(x, training=False)`, as robust_accuracy runs."""
  return np.concatenate([
      np.asarray(model(x[s:s + batch_size], training=False)).argmax(-1)
      for s in range(0, len(x), batch_size)])


def adversarial_row(splits, baseline, seed, epochs=ADV_EPOCHS):
  """The table row: PGD-20 accuracy, Keras 3 minus tfmot, in points."""
  results = adversarial_accuracy(splits, baseline, seed, epochs)
  key = adversarial.result_key("pgd", ADV_EPSILON)
  k3, ref = results["keras3"], results["tfmot"]
  return (f"adversarial PGD-{ADV_EVAL_STEPS} acc @{ADV_EPSILON:g}, Keras 3 "
          "vs tfmot (pt)", f"{100 * (k3[key] - ref[key]):+.2f}",
          f"Keras 3 {k3[key]:.4f} (clean {k3['clean']:.4f}), tfmot "
          f"{ref[key]:.4f} (clean {ref['clean']:.4f})", "within 0.5",
          paired_cell(splits.y_test, ref["predictions"][key],
                      k3["predictions"][key], seed))


def adversarial_seeds(seeds, dataset="digits", epochs=EPOCHS,
                      adversarial_epochs=ADV_EPOCHS):
  """The adversarial comparison over seeds, with a 95% t-interval.

  Each seed's difference is also printed with its paired interval over
  that seed's test samples (each model attacked by its own PGD-20).
  """
  key = adversarial.result_key("pgd", ADV_EPSILON)
  diffs = []
  print(f"{'seed':>4}  {'Keras 3':>8}  {'tfmot':>8}  {'diff (pt)':>9}  "
        "clean Keras 3 / tfmot  paired 95% CI (pt), McNemar p")
  for seed in seeds:
    splits = tfc.load_dataset(dataset, seed=seed)
    results = adversarial_accuracy(
        splits, _trained_baseline(splits, seed, epochs), seed,
        adversarial_epochs)
    k3, ref = results["keras3"], results["tfmot"]
    diffs.append(100 * (k3[key] - ref[key]))
    cell = paired_cell(splits.y_test, ref["predictions"][key],
                       k3["predictions"][key], seed)
    print(f"{seed:>4}  {k3[key]:>8.4f}  {ref[key]:>8.4f}  {diffs[-1]:>+9.2f}  "
          f"{k3['clean']:.4f} / {ref['clean']:.4f}       {cell}", flush=True)
  mean, low, high = t_interval(diffs)
  line = f"PGD-{ADV_EVAL_STEPS} @{ADV_EPSILON:g}: mean {mean:+.2f} pt"
  if low is not None:
    line += (f", 95% CI {low:+.2f} to {high:+.2f} over "
             f"{len(diffs)} seeds")
  print(line + " (target: within 0.5)")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--timing_epochs", type=int, default=5)
  parser.add_argument("--qat_seeds", default="",
                      help="comma-separated seeds: run only the QAT top-1 "
                      "comparison, once per seed")
  parser.add_argument("--adversarial_seeds", default="",
                      help="comma-separated seeds: run only the adversarial "
                      "training comparison, once per seed")
  parser.add_argument("--dataset", default="digits",
                      help="digits (8x8x1) or digits32 (32x32x3), or any "
                      "name tf_compress.load_dataset accepts")
  parser.add_argument("--epochs", type=int, default=EPOCHS,
                      help="epochs of the tf_keras baseline")
  parser.add_argument("--finetune_epochs", type=int, default=FINETUNE,
                      help="pruning fine-tuning epochs of each engine")
  parser.add_argument("--adversarial_epochs", type=int, default=ADV_EPOCHS,
                      help="adversarial fine-tuning epochs of each engine")
  args = parser.parse_args()
  if args.adversarial_seeds:
    tfc.enable_determinism()
    adversarial_seeds([int(s) for s in args.adversarial_seeds.split(",")],
                      args.dataset, args.epochs, args.adversarial_epochs)
    return
  if args.qat_seeds:
    tfc.enable_determinism()
    qat_seeds([int(s) for s in args.qat_seeds.split(",")], args.dataset,
              args.epochs)
    return
  tfc.set_seed(args.seed)
  tfc.enable_determinism()
  splits = tfc.load_dataset(args.dataset, seed=args.seed)
  steps = int(np.ceil(splits.num_train / 32))

  baseline = _trained_baseline(splits, args.seed, args.epochs)
  base_top1 = _top1(baseline, splits)

  rows = []
  # tfmot engine (tf_keras).
  tf_pruned = _compile(pruning.prune_model(baseline, _config(splits), steps),
                       tfc.keras)
  tf_pruned.fit(splits.train(32, seed=args.seed + 1),
                epochs=args.finetune_epochs, verbose=0,
                callbacks=[pruning.PruningCallback()])
  tf_predicted = _predict(pruning.strip_pruning(tf_pruned), splits)
  tf_top1 = float((tf_predicted == splits.y_test).mean())

  # Keras 3 engine, from the same weights.
  k3 = keras3_cnn(splits.input_shape, splits.num_classes)
  k3.set_weights(baseline.get_weights())
  assert abs(_top1(k3, splits) - base_top1) < 1e-9
  k3_pruned = _compile(pruning.prune_model(k3, _config(splits), steps), keras)
  x, y = splits.x_train, splits.y_train
  k3_pruned.fit(x, y, batch_size=32, epochs=args.finetune_epochs, verbose=0,
                callbacks=[pruning.PruningCallback()])
  k3_stripped = pruning.strip_pruning(k3_pruned)
  k3_predicted = _predict(k3_stripped, splits)
  k3_top1 = float((k3_predicted == splits.y_test).mean())
  sparsity = pruning.overall_sparsity(pruning.sparsity_table(k3_stripped))
  rows.append(("top-1 at 80% sparsity, Keras 3 vs tfmot (pt)",
               f"{100 * (k3_top1 - tf_top1):+.2f}",
               f"Keras 3 {k3_top1:.4f} (sparsity {sparsity:.3f}), tfmot "
               f"{tf_top1:.4f}, baseline {base_top1:.4f}", "within 0.5",
               paired_cell(splits.y_test, tf_predicted, k3_predicted,
                           args.seed)))

  # Pruned + int8 files, each engine's own export path.
  calibration = splits.x_train[:2000]
  tf_file = export.convert_to_tflite(pruning.strip_pruning(tf_pruned), "int8",
                                     representative_data=calibration,
                                     num_calibration_samples=2000)
  k3_file = export.convert_to_tflite(k3_stripped, "int8",
                                     representative_data=calibration,
                                     num_calibration_samples=2000)
  tf_gzip = export.inspect_tflite(tf_file)["gzip_bytes"]
  k3_gzip = export.inspect_tflite(k3_file)["gzip_bytes"]
  k3_check = export.verify_tflite(k3_file, splits.x_test, splits.y_test,
                                  isolate=False)
  rows.append(("pruned + int8 gzip size, Keras 3 vs tfmot",
               f"{100 * (k3_gzip / tf_gzip - 1):+.1f}%",
               f"Keras 3 {k3_gzip} B (LiteRT top-1 "
               f"{k3_check['tflite_top1']:.4f}), tfmot {tf_gzip} B",
               "within 5%"))

  # QAT: each engine, from the same float weights, 2 epochs, int8 export
  # from the fake-quant ranges (no calibration data).
  checks = qat_top1(splits, baseline, args.seed)
  rows.append(("QAT int8 LiteRT top-1, Keras 3 vs tfmot (pt)",
               f"{100 * (checks['keras3'][0] - checks['tfmot'][0]):+.2f}",
               f"Keras 3 {checks['keras3'][0]:.4f} (Keras QAT "
               f"{checks['keras3'][2]:.4f}, kernels {checks['keras3'][1]}), "
               f"tfmot {checks['tfmot'][0]:.4f} (kernels "
               f"{checks['tfmot'][1]})", "within 0.5",
               paired_cell(splits.y_test, checks["tfmot"][3],
                           checks["keras3"][3], args.seed)))

  # Clustering and PQAT, each engine from the same weights.
  rows.extend(clustering_rows(splits, baseline,
                              pruning.strip_pruning(tf_pruned), k3_stripped,
                              args.seed))

  # Adversarial training: each engine's AdversarialModel, same settings.
  rows.append(adversarial_row(splits, baseline, args.seed,
                              args.adversarial_epochs))

  # Step times on Keras 3 over plain fit, same model size, timed in
  # alternating rounds (the machine is noisy).
  def plain():
    return _compile(keras3_cnn(splits.input_shape, splits.num_classes), keras)

  rounds = 3
  def pruned():
    return _compile(pruning.prune_model(
        keras3_cnn(splits.input_shape, splits.num_classes),
        pruning.PruningConfig(target_sparsity=0.8, schedule="polynomial",
                              end_epoch=rounds * (args.timing_epochs + 1),
                              frequency=10), steps), keras)

  def qat():
    return _compile(quantization.quantize_model(
        keras3_cnn(splits.input_shape, splits.num_classes)), keras)

  for label, make, extra, target in (
      ("pruning", pruned, lambda: [pruning.PruningCallback()], "<= 1.15x"),
      ("QAT", qat, list, "<= 1.6x")):
    plain_s, other_s, count = _timed_ratio(plain, make, x, y,
                                           args.timing_epochs, extra, rounds)
    rows.append((f"{label} step time over plain fit (Keras 3)",
                 f"{other_s / plain_s:.2f}x",
                 f"{1000 * other_s / steps:.2f} ms vs "
                 f"{1000 * plain_s / steps:.2f} ms per step, median of "
                 f"{count} epochs each", target))

  cpu, flags = cpu_flags()
  print(f"CPU: {cpu}; flags: "
        f"{', '.join(flags) or 'none of ' + str(CPU_FLAGS)}")
  width = max(len(r[0]) for r in rows)
  # Rows of an accuracy difference end in its paired cell.
  cells = [r[4] if len(r) > 4 else "" for r in rows]
  cell_width = max(len(c) for c in cells)
  print(f"{'measure':<{width}}  {'value':>12}  target      "
        f"{'paired 95% CI (pt), McNemar p':<{cell_width}}  detail")
  for (name, value, detail, target, *_), cell in zip(rows, cells):
    print(f"{name:<{width}}  {value:>12}  {target:<10}  "
          f"{cell:<{cell_width}}  {detail}")


if __name__ == "__main__":
  main()
