"""Train the digits CNN briefly, export it to TFLite and verify it on LiteRT.

Writes a float32 and a full-integer int8 model, checks both against the Keras
model on the test split, and prints a table of sizes and agreement.

  python examples/export_tflite.py --epochs=2 --output_dir=/tmp/tflite
"""

import argparse
import os
import tempfile

import keras

import tf_compress as tfc
from tf_compress import export


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--epochs", type=int, default=2)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--output_dir", default=None,
                      help="where to write the .tflite files (default: a "
                      "temporary directory)")
  args = parser.parse_args()
  output_dir = args.output_dir or tempfile.mkdtemp(prefix="tflite_")
  os.makedirs(output_dir, exist_ok=True)

  tfc.set_seed(args.seed)
  splits = tfc.load_dataset("digits", seed=args.seed)
  model = tfc.build_model("cnn", splits.input_shape, splits.num_classes,
                          seed=args.seed)
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True),
                metrics=["accuracy"])
  model.fit(splits.train(batch_size=32), epochs=args.epochs, verbose=0)

  rows = []
  for mode in ("float32", "int8"):
    path = os.path.join(output_dir, f"cnn_{mode}.tflite")
    info = export.export_tflite(
        model, path, mode,
        representative_data=splits.x_train if mode == "int8" else None)
    check = export.verify_tflite(path, splits.x_test, splits.y_test,
                                 keras_model=model)
    rows.append((mode, info, check))

  print(f"{'mode':8} {'bytes':>8} {'gzip':>8} {'kernels':>8} "
        f"{'top1':>6} {'keras':>6} {'agree':>6} {'max|diff|':>10}")
  for mode, info, check in rows:
    kernels = ",".join(sorted(info["kernel_dtypes"]))
    print(f"{mode:8} {info['bytes']:8d} {info['gzip_bytes']:8d} "
          f"{kernels:>8} {check['tflite_top1']:6.4f} "
          f"{check['keras_top1']:6.4f} {check['agreement']:6.4f} "
          f"{check['max_abs_diff']:10.2e}")
  ratio = rows[0][1]["bytes"] / rows[1][1]["bytes"]
  print(f"int8 vs float32: {ratio:.2f}x smaller; files in {output_dir}")


if __name__ == "__main__":
  main()
