"""Prune a digits CNN to 80% sparsity with plain Keras code and one callback.

Train a baseline, wrap it with `prune_model` (the baseline is left as it
is), fine-tune with `PruningCallback` in an ordinary `fit`, then strip the
wrappers for export.

  python examples/prune_with_callback.py --epochs=4 --scope=global
"""

import argparse
import math

import keras

import tf_compress as tfc
from tf_compress import pruning


def _compile(model):
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True),
                metrics=["accuracy"])


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--epochs", type=int, default=3,
                      help="baseline epochs, and pruning epochs")
  parser.add_argument("--sparsity", type=float, default=0.8)
  parser.add_argument("--scope", choices=("layer", "global"),
                      default="layer")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()

  tfc.set_seed(args.seed)
  splits = tfc.load_dataset("digits", seed=args.seed)
  batch_size = 32
  steps_per_epoch = math.ceil(len(splits.x_train) / batch_size)

  model = tfc.build_model("cnn", splits.input_shape, splits.num_classes,
                          seed=args.seed)
  _compile(model)
  model.fit(splits.train(batch_size), epochs=args.epochs, verbose=0)
  _, baseline_accuracy = model.evaluate(splits.test(), verbose=0)

  # Reach the target after about two thirds of the pruning epochs, then
  # let the remaining ones recover accuracy with the masks fixed.
  config = pruning.PruningConfig(
      target_sparsity=args.sparsity, schedule="polynomial",
      end_epoch=max(1, round(args.epochs * 2 / 3)), scope=args.scope)
  pruned = pruning.prune_model(model, config, steps_per_epoch)
  _compile(pruned)
  history = pruned.fit(splits.train(batch_size), epochs=args.epochs,
                       validation_data=splits.validation(), verbose=2,
                       callbacks=[pruning.PruningCallback()])

  export = pruning.strip_pruning(pruned)
  _compile(export)
  _, accuracy = export.evaluate(splits.test(), verbose=0)
  print(pruning.format_sparsity_table(pruning.sparsity_table(export)))
  print(f"history sparsity={history.history['sparsity'][-1]:.4f}")
  print(f"final sparsity={pruning.overall_sparsity(export):.4f} "
        f"test accuracy={accuracy:.4f} baseline={baseline_accuracy:.4f}")


if __name__ == "__main__":
  main()
