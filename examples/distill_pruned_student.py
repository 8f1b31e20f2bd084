"""Distill a digits CNN into a pruned student, in one `fit`.

Train a teacher, prune a small student with `prune_model`, and train the
student inside a `Distiller` with `PruningCallback` (which finds the
student's wrappers inside the Distiller) and `DistillationScheduler`. The
same pruned student trained on labels alone is the comparison. The teacher
runs once over the training data (`cache_teacher_logits`), not every epoch.

  python examples/distill_pruned_student.py --epochs=30 --sparsity=0.8
"""

import argparse
import math

import tf_compress as tfc
from tf_compress import distillation
from tf_compress import keras
from tf_compress import pruning


def _loss():
  return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _student(splits, args, steps_per_epoch):
  student = tfc.build_model(args.student, splits.input_shape,
                            splits.num_classes, width=args.width,
                            seed=args.seed, keras_version=2)
  config = pruning.PruningConfig(
      target_sparsity=args.sparsity, schedule="polynomial",
      end_epoch=max(1, round(args.epochs / 2)))
  return pruning.prune_model(student, config, steps_per_epoch)


def _top1(model, splits):
  model.compile(metrics=["accuracy"], loss=_loss())
  return model.evaluate(splits.test(), verbose=0)[1]


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--epochs", type=int, default=30,
                      help="student epochs (distilled and scratch)")
  parser.add_argument("--teacher_epochs", type=int, default=10)
  parser.add_argument("--student", default="mlp", help="student model name")
  parser.add_argument("--width", type=float, default=0.25,
                      help="student width multiplier")
  parser.add_argument("--sparsity", type=float, default=0.8)
  parser.add_argument("--temperature", type=float, default=4.0)
  parser.add_argument("--alpha", type=float, default=0.5)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()

  tfc.set_seed(args.seed)
  splits = tfc.load_dataset("digits", seed=args.seed)
  batch_size = 32
  steps_per_epoch = math.ceil(splits.num_train / batch_size)

  teacher = tfc.build_model("cnn", splits.input_shape, splits.num_classes,
                            seed=args.seed, keras_version=2)
  teacher.compile(keras.optimizers.Adam(1e-3), _loss(), metrics=["accuracy"])
  teacher.fit(splits.train(batch_size), epochs=args.teacher_epochs,
              verbose=0)
  teacher_top1 = teacher.evaluate(splits.test(), verbose=0)[1]

  # The comparison: the same pruned student, trained on labels only.
  scratch = _student(splits, args, steps_per_epoch)
  scratch.compile(keras.optimizers.Adam(3e-3), _loss(), metrics=["accuracy"])
  scratch.fit(splits.train(batch_size), epochs=args.epochs, verbose=0,
              callbacks=[pruning.PruningCallback()])
  scratch_top1 = _top1(pruning.strip_pruning(scratch), splits)

  distiller = distillation.Distiller(
      teacher, _student(splits, args, steps_per_epoch), alpha=args.alpha,
      temperature=args.temperature)
  distiller.compile(keras.optimizers.Adam(3e-3), _loss(),
                    metrics=["accuracy"])
  # No augmentation here, so the teacher's logits can be computed once.
  train = distillation.cache_teacher_logits(
      teacher, splits.x_train, splits.y_train, batch_size=batch_size,
      seed=args.seed)
  history = distiller.fit(
      train, epochs=args.epochs, validation_data=splits.validation(),
      verbose=2, callbacks=[
          pruning.PruningCallback(),
          distillation.DistillationScheduler(
              epochs=args.epochs, end_temperature=max(
                  1.0, args.temperature / 2))])

  # What gets deployed is the student, without its pruning wrappers.
  student = pruning.strip_pruning(distiller.student)
  student_top1 = _top1(student, splits)
  print(pruning.format_sparsity_table(pruning.sparsity_table(student)))
  print(f"history sparsity={history.history['sparsity'][-1]:.4f} "
        f"temperature={history.history['temperature'][-1]:.2f}")
  print(f"teacher top1={teacher_top1:.4f}")
  print(f"scratch student top1={scratch_top1:.4f}")
  print(f"distilled student top1={student_top1:.4f} "
        f"sparsity={pruning.overall_sparsity(student):.4f}")


if __name__ == "__main__":
  main()
