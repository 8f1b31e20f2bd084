"""Slice half the filters of a trained CNN, fine-tune it, and compare.

Trains the built-in digits CNN, removes the 50% lowest-L1 filters of conv1,
conv2 and fc1 (the logits stay whole), rebuilds the smaller model with sliced
weights, fine-tunes it, and prints parameters, MACs and accuracy before and
after.

  python examples/slice_filters.py --epochs=10 --finetune_epochs=5
"""

import argparse

import tf_compress as tfc
from tf_compress import keras
from tf_compress.pruning.slicing import slice_model


def _compile(model):
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True),
                metrics=["accuracy"])
  return model


def _accuracy(model, splits):
  return model.evaluate(splits.test(), verbose=0)[1]


def run(epochs=10, finetune_epochs=5, ratio=0.5, criterion="l1", seed=0):
  """Trains, slices and fine-tunes; returns the numbers to print."""
  tfc.set_seed(seed)
  splits = tfc.load_dataset("digits", seed=seed)
  model = _compile(tfc.build_model("cnn", splits.input_shape,
                                   splits.num_classes, seed=seed,
                                   keras_version=2))
  model.fit(splits.train(batch_size=32, seed=seed), epochs=epochs, verbose=0)
  result = slice_model(model, ratio, criterion=criterion)
  sliced = _compile(result.model)
  sliced_top1 = _accuracy(sliced, splits)
  sliced.fit(splits.train(batch_size=32, seed=seed + 1),
             epochs=finetune_epochs, verbose=0)
  return {"result": result, "top1_before": _accuracy(model, splits),
          "top1_sliced": sliced_top1,
          "top1_finetuned": _accuracy(sliced, splits)}


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--epochs", type=int, default=10)
  parser.add_argument("--finetune_epochs", type=int, default=5)
  parser.add_argument("--ratio", type=float, default=0.5)
  parser.add_argument("--criterion", default="l1",
                      choices=["l1", "l2", "bn_gamma"])
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()

  out = run(args.epochs, args.finetune_epochs, args.ratio, args.criterion,
            args.seed)
  result = out["result"]
  print(f"{'layer':<10} {'channels':>10} {'MACs before':>12} "
        f"{'MACs after':>11}")
  for row in result.per_layer:
    if row["macs_before"]:
      channels = f"{row['channels_before']}->{row['channels_after']}"
      print(f"{row['layer']:<10} {channels:>10} {row['macs_before']:>12} "
            f"{row['macs_after']:>11}")
  for skipped in result.skipped:
    print(f"left whole: {skipped['layer']} ({skipped['reason']})")
  print(f"params before={result.params_before} after={result.params_after} "
        f"({result.params_before / result.params_after:.2f}x)")
  print(f"macs before={result.macs_before} after={result.macs_after} "
        f"({result.macs_before / result.macs_after:.2f}x)")
  print(f"top1 before={out['top1_before']:.4f} "
        f"sliced={out['top1_sliced']:.4f} "
        f"finetuned={out['top1_finetuned']:.4f}")


if __name__ == "__main__":
  main()
