"""Adversarial training on digits: PGD accuracy before and after.

Train a baseline, then the same model inside an `AdversarialModel` (PGD
examples crafted against the current weights for every batch, with the
attack's epsilon warmed up over the first epochs), and compare their
accuracy under FGSM and PGD. `--tflite` also exports the robust model and
measures it on LiteRT with examples crafted on the Keras model.

  python examples/adversarial_training.py --epochs=10 --epsilon=0.2
"""

import argparse
import os
import tempfile

import tf_compress as tfc
from tf_compress import adversarial
from tf_compress import export
from tf_compress import keras


def _compile(model):
  model.compile(optimizer=keras.optimizers.Adam(3e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True),
                metrics=["accuracy"])


def _report(name, results):
  print(f"{name}: " + " ".join(
      f"{key}={value:.4f}" for key, value in results.items()
      if not isinstance(value, bool)))


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--epochs", type=int, default=10)
  parser.add_argument("--model", default="mlp")
  parser.add_argument("--attack", choices=("pgd", "fgsm"), default="pgd")
  parser.add_argument("--epsilon", type=float, default=0.2)
  parser.add_argument("--steps", type=int, default=5,
                      help="PGD steps in training")
  parser.add_argument("--ratio", type=float, default=0.5,
                      help="weight of the adversarial loss")
  parser.add_argument("--warmup_epochs", type=int, default=2)
  parser.add_argument("--eval_steps", type=int, default=20,
                      help="PGD steps in evaluation")
  parser.add_argument("--tflite", action="store_true",
                      help="also measure the exported float TFLite model")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()

  tfc.set_seed(args.seed)
  splits = tfc.load_dataset("digits", seed=args.seed)
  clip_min, clip_max = splits.value_range
  epsilons = (args.epsilon / 2, args.epsilon)
  evaluate = dict(epsilons=epsilons, pgd_steps=args.eval_steps,
                  clip_min=clip_min, clip_max=clip_max)

  baseline = tfc.build_model(args.model, splits.input_shape,
                             splits.num_classes, seed=args.seed,
                             keras_version=2)
  _compile(baseline)
  baseline.fit(splits.train(32), epochs=args.epochs, verbose=0)
  _report("baseline", adversarial.robust_accuracy(
      baseline, splits.x_test, splits.y_test, **evaluate))

  robust = adversarial.AdversarialModel(
      tfc.build_model(args.model, splits.input_shape, splits.num_classes,
                      seed=args.seed, keras_version=2),
      attack=args.attack, epsilon=args.epsilon, steps=args.steps,
      ratio=args.ratio, clip_min=clip_min, clip_max=clip_max)
  _compile(robust)
  robust.fit(splits.train(32), epochs=args.epochs, verbose=2,
             validation_data=splits.validation(),
             callbacks=[adversarial.EpsilonWarmup(args.warmup_epochs)])
  # What gets saved or exported is the base model, not the harness.
  _report("adversarial", adversarial.robust_accuracy(
      robust.base_model, splits.x_test, splits.y_test, **evaluate))

  if args.tflite:
    with tempfile.TemporaryDirectory() as tmp:
      path = os.path.join(tmp, "robust.tflite")
      export.export_tflite(robust.base_model, path, "float32")
      _report("adversarial tflite", adversarial.robust_accuracy_tflite(
          path, robust.base_model, splits.x_test, splits.y_test, **evaluate))


if __name__ == "__main__":
  main()
