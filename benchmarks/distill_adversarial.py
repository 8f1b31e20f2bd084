"""Distillation and adversarial-training benchmark on digits, over 3 seeds.

  python benchmarks/distill_adversarial.py [--seeds=0,1,2] [--timing_epochs=4]

One table of figures measured in this process:
  * the distilled student (width 0.25) against the same student trained from
    scratch: top-1 per seed and the mean;
  * clean and PGD-20 accuracy at epsilon 0.1 and 0.2 of the baseline and the
    adversarially fine-tuned model (PGD-3 training, epsilon 0.2 warmed up
    over 2 epochs, 10 fine-tuning epochs; inputs scaled to [0, 1]; RS-FGSM
    training reached 0.36-0.43 PGD-20 accuracy at 0.2 over the same seeds);
  * training step time over plain `fit` of the same model: the Distiller
    with a cached teacher (against the student-only step) and with the
    teacher run every step, FGSM training and PGD-k training.

Targets (issue "Distillation and adversarial training"): distilled >=
scratch (mean of 3 seeds); adversarial PGD-20@0.2 >= 0.40 with a clean drop
<= 1.5 points; FGSM <= 2.2x, PGD-k <= 1.1 (k+1), cached Distiller <= 1.3x.
"""

import argparse
import statistics
import tempfile
import time

import numpy as np

import tf_compress as tfc
from tf_compress import adversarial
from tf_compress import distillation
from tf_compress import keras
from tf_compress import pipeline
from tf_compress.pipeline import measures
from tf_compress.pipeline import methods
from tf_compress.pipeline import training


class _EpochTimer(keras.callbacks.Callback):

  def __init__(self):
    super().__init__()
    self.seconds = []

  def on_epoch_begin(self, epoch, logs=None):
    self._start = time.perf_counter()

  def on_epoch_end(self, epoch, logs=None):
    self.seconds.append(time.perf_counter() - self._start)


def _median_epoch(model, data, epochs):
  timer = _EpochTimer()
  model.fit(data, epochs=epochs + 1, verbose=0, callbacks=[timer])
  return statistics.median(timer.seconds[1:])  # drop the warm-up epoch


def _config(seed, **overrides):
  values = dict(output_dir=tempfile.mkdtemp(prefix="bench_da_"), epochs=20,
                finetune_epochs=10, seed=seed, deterministic=True, verbose=0,
                distill=True, distill_student="0.25", adv_attack="pgd",
                adv_steps=3, adv_epsilon=0.2, adv_warmup_epochs=2,
                benchmark_runs=0,
                export=())
  values.update(overrides)
  return tfc.TrainConfig(**values)


def _robust(model, splits, seed):
  return adversarial.robust_accuracy(
      model, splits.x_test, splits.y_test, epsilons=(0.1, 0.2), pgd_steps=20,
      attacks=("pgd",), seed=seed)


def accuracy_rows(seeds, temperature, alpha):
  """Per seed: baseline, distilled, scratch and adversarial figures."""
  rows = []
  for seed in seeds:
    config = _config(seed, distill_temperature=temperature,
                     distill_alpha=alpha)
    keras.backend.clear_session()
    tfc.set_seed(seed)
    tfc.enable_determinism()
    splits = tfc.load_dataset("digits", seed=seed)
    strategy = tfc.make_strategy("default")
    baseline = training.build_model_for(config, splits)
    training.compile_model(baseline, config)
    baseline.fit(splits.train(config.fit.batch_size, seed=seed),
                 epochs=config.fit.epochs, verbose=0)
    ctx = pipeline.BuildContext(
        config=config, splits=splits, strategy=strategy,
        compile_fn=lambda m, c=config: training.compile_model(m, c))
    row = {"seed": seed}
    for name, method in (("distilled", "distilled"),
                         ("scratch", "student_scratch"),
                         ("adversarial", "adversarial")):
      result = methods.method(method).build(baseline, ctx)
      if result.model.optimizer is None:
        training.compile_model(result.model, config)
      row[name] = measures.evaluate_model(result.model, splits)["top1"]
      if name == "adversarial":
        row["adversarial_robust"] = _robust(result.model, splits, seed)
    row["baseline"] = measures.evaluate_model(baseline, splits)["top1"]
    row["baseline_robust"] = _robust(baseline, splits, seed)
    rows.append(row)
    print(f"seed {seed}: {row}", flush=True)
  return rows


def step_ratios(epochs, pgd_steps):
  """Median epoch time of each training method over its plain `fit`."""
  config = _config(0)
  splits = tfc.load_dataset("digits", seed=0)
  train = splits.train(32, seed=0)
  low, high = splits.value_range

  def fresh(width=1.0):
    model = tfc.build_model("cnn", splits.input_shape, splits.num_classes,
                            width=width, seed=0)
    return training.compile_model(model, config)

  plain = _median_epoch(fresh(), train, epochs)
  timings = {}
  for attack, steps in (("fgsm", 1), ("pgd", pgd_steps)):
    model = adversarial.AdversarialModel(
        fresh(), attack=attack, epsilon=0.2, steps=steps, clip_min=low,
        clip_max=high)
    training.compile_model(model, config)
    timings[f"{attack}" + (f"-{steps}" if attack == "pgd" else "")] = (
        _median_epoch(model, train, epochs) / plain)

  teacher = fresh()
  teacher.fit(train, epochs=1, verbose=0)
  student_plain = _median_epoch(fresh(0.25), train, epochs)
  cached = distillation.cache_teacher_logits(
      teacher, splits.x_train, splits.y_train, batch_size=32, seed=0)
  for name, data in (("distiller cached", cached),
                     ("distiller uncached", train)):
    distiller = distillation.Distiller(teacher, fresh(0.25), alpha=0.1,
                                       temperature=4.0)
    training.compile_model(distiller, config)
    timings[name] = _median_epoch(distiller, data, epochs) / student_plain
  return timings, plain, student_plain


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--timing_epochs", type=int, default=4)
  parser.add_argument("--pgd_steps", type=int, default=5)
  parser.add_argument("--temperature", type=float,
                      default=tfc.pipeline.DistillConfig.temperature)
  parser.add_argument("--alpha", type=float,
                      default=tfc.pipeline.DistillConfig.alpha)
  parser.add_argument("--skip_accuracy", action="store_true")
  args = parser.parse_args()
  seeds = [int(s) for s in args.seeds.split(",")]

  print(f"{'figure':44s} {'measured':>10s}  target")
  if not args.skip_accuracy:
    rows = accuracy_rows(seeds, args.temperature, args.alpha)
    mean = lambda key: float(np.mean([r[key] for r in rows]))
    print(f"{'distilled top-1 (mean of %d seeds)' % len(rows):44s} "
          f"{mean('distilled'):10.4f}  >= scratch")
    print(f"{'scratch student top-1 (mean)':44s} {mean('scratch'):10.4f}")
    print(f"{'  per seed distilled - scratch':44s} " + " ".join(
        f"{r['distilled'] - r['scratch']:+.4f}" for r in rows))
    print(f"{'baseline clean top-1 (mean)':44s} {mean('baseline'):10.4f}")
    print(f"{'adversarial clean top-1 (mean)':44s} "
          f"{mean('adversarial'):10.4f}  drop <= 0.015")
    for eps in ("0.1", "0.2"):
      for who in ("baseline", "adversarial"):
        value = float(np.mean([r[f"{who}_robust"][f"pgd@{eps}"]
                               for r in rows]))
        target = "  >= 0.40" if who == "adversarial" and eps == "0.2" else ""
        print(f"{f'{who} PGD-20 @ {eps} (mean)':44s} {value:10.4f}{target}")
  timings, plain, student = step_ratios(args.timing_epochs, args.pgd_steps)
  print(f"{'plain fit epoch (cnn / student), s':44s} {plain:10.3f} / "
        f"{student:.3f}")
  targets = {"fgsm": "<= 2.2x",
             f"pgd-{args.pgd_steps}": f"<= {1.1 * (args.pgd_steps + 1):.1f}x",
             "distiller cached": "<= 1.3x", "distiller uncached": ""}
  for name, ratio in timings.items():
    print(f"{name + ' step time ratio':44s} {ratio:10.2f}  {targets[name]}")


if __name__ == "__main__":
  main()
