"""Train a baseline CNN on the built-in digits data with plain Keras code.

tf_compress supplies the Keras binding (Keras 2, which tfmot needs), the data
pipeline, the model and the metrics; `fit` is ordinary Keras.

  python examples/train_baseline.py --epochs=10
"""

import argparse

import keras

import tf_compress as tfc


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--epochs", type=int, default=10)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()

  tfc.set_seed(args.seed)
  splits = tfc.load_dataset("digits", seed=args.seed)
  model = tfc.build_model("cnn", splits.input_shape, splits.num_classes,
                          seed=args.seed)
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True),
                metrics=["accuracy"])
  model.fit(splits.train(batch_size=32), epochs=args.epochs,
            validation_data=splits.validation(), verbose=2)

  scores = model.predict(splits.x_test, verbose=0)
  metrics = tfc.classification_metrics(scores, splits.y_test, top_k=3)
  stats = tfc.model_stats(model)
  print(f"test top1={metrics['top1']:.4f} top3={metrics['topk']:.4f} "
        f"balanced={metrics['balanced_accuracy']:.4f} "
        f"params={stats['params']} keras_bytes={stats['keras_bytes']}")


if __name__ == "__main__":
  main()
