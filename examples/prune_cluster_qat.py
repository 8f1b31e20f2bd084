"""The collaborative chain: prune → cluster → QAT → a verified int8 file.

Each step keeps what the one before gained: sparsity-preserving clustering
keeps the pruned zeros, and prune-and-cluster-preserving QAT (PCQAT) keeps
both the zeros and the clusters, through to the int8 TFLite file. The script
prints the files' sizes, the zeros and distinct int8 values found in the
file's kernels, and how well the file agrees with Keras on the test split.

  python examples/prune_cluster_qat.py --epochs=5 --fine_tune_epochs=1
"""

import argparse
import os
import tempfile

import numpy as np

import tf_compress as tfc
from tf_compress import export
from tf_compress import keras
from tf_compress import pruning
from tf_compress import quantization


def _compile(model, learning_rate):
  model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True),
                metrics=["accuracy"])
  return model


def _kernel_stats(path):
  """(zeros, most distinct values in one output channel) over the kernels."""
  info = export.inspect_tflite(path, per_tensor=True)
  interpreter, _ = export.load_interpreter(path)
  zeros, most = 0, 0
  for weight in info["weights"]:
    if weight["role"] != "kernel":
      continue
    zeros += weight["size"] - weight["nonzero"]
    values = interpreter.get_tensor(weight["index"])
    axis = (weight["quantization"] or {}).get("quantized_dimension")
    if axis is None:  # one scale for the whole tensor
      most = max(most, np.unique(values).size)
    else:
      most = max([most] + [np.unique(np.take(values, c, axis=axis)).size
                           for c in range(values.shape[axis])])
  return zeros, most


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--epochs", type=int, default=5,
                      help="float training epochs")
  parser.add_argument("--fine_tune_epochs", type=int, default=1,
                      help="fine-tuning epochs after each step")
  parser.add_argument("--sparsity", type=float, default=0.75)
  parser.add_argument("--clusters", type=int, default=8)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--output_dir", default=None,
                      help="where to write the .tflite files (default: a "
                      "temporary directory)")
  args = parser.parse_args()
  output_dir = args.output_dir or tempfile.mkdtemp(prefix="collab_")
  os.makedirs(output_dir, exist_ok=True)
  tune = args.fine_tune_epochs

  tfc.set_seed(args.seed)
  splits = tfc.load_dataset("digits", seed=args.seed)
  model = _compile(tfc.build_model("cnn", splits.input_shape,
                                   splits.num_classes, seed=args.seed,
                                   keras_version=2), 1e-3)
  model.fit(splits.train(), epochs=args.epochs, verbose=0)
  float_path = os.path.join(output_dir, "cnn_float32.tflite")
  float_info = export.export_tflite(model, float_path, "float32")

  # 1. Prune: reach the target in one epoch, then fine-tune.
  config = pruning.PruningConfig(target_sparsity=args.sparsity, frequency=5,
                                 end_epoch=1)
  steps = -(-splits.num_train // 32)
  pruned = _compile(pruning.prune_model(model, config, steps), 1e-3)
  pruned.fit(splits.train(), epochs=1 + tune, verbose=0,
             callbacks=[pruning.PruningCallback()])
  pruned = pruning.strip_pruning(pruned)
  pruned_zeros = sum(r["zeros"] for r in pruning.sparsity_table(pruned))

  # 2. Cluster, keeping the zeros.
  clustered = _compile(
      quantization.prune_then_cluster(pruned, args.clusters), 1e-4)
  clustered.fit(splits.train(), epochs=tune, verbose=0)
  clustered = quantization.strip_clustering(clustered)

  # 3. QAT, keeping the zeros and the clusters (PCQAT).
  qat = _compile(quantization.cqat_model(clustered, preserve_sparsity=True),
                 1e-4)
  qat.fit(splits.train(), epochs=tune, verbose=0)
  int8_path = os.path.join(output_dir, "cnn_pcqat_int8.tflite")
  int8_info = export.export_tflite(qat, int8_path, "int8")
  check = export.verify_tflite(int8_path, splits.x_test, splits.y_test,
                               keras_model=qat)

  zeros, most = _kernel_stats(int8_path)
  print(f"{'file':18} {'bytes':>8} {'gzip':>8}")
  for name, info in (("float32", float_info), ("pcqat int8", int8_info)):
    print(f"{name:18} {info['bytes']:8d} {info['gzip_bytes']:8d}")
  print(f"gzip: {float_info['gzip_bytes'] / int8_info['gzip_bytes']:.1f}x "
        "smaller than float32")
  # Counts, not positions: clustering may round a few more weights to 0.
  print(f"zeros kept={zeros / pruned_zeros:.4f} (int8 kernel zeros {zeros}, "
        f"pruned zeros {pruned_zeros})")
  print(f"max int8 values per channel={most} (clusters={args.clusters})")
  print(f"top1={check['tflite_top1']:.4f} keras={check['keras_top1']:.4f} "
        f"agreement={check['agreement']:.4f}")
  print(f"files in {output_dir}")


if __name__ == "__main__":
  main()
