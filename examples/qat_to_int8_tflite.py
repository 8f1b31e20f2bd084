"""Quantization-aware training of the digits CNN, exported to an int8 file.

Trains the float CNN, exports it once with post-training int8 quantization
(calibrated on training inputs), then fine-tunes a quantization-aware copy
(ranges and BatchNorm frozen for the last epoch) and exports that to int8
without calibration data. Both files are verified on LiteRT on the test
split, and a table compares them with float.

  python examples/qat_to_int8_tflite.py --epochs=5 --qat_epochs=2
"""

import argparse
import os
import tempfile

import keras

import tf_compress as tfc
from tf_compress import export
from tf_compress import quantization


def _compile(model, learning_rate):
  model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True),
                metrics=["accuracy"])
  return model


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--epochs", type=int, default=5,
                      help="float training epochs")
  parser.add_argument("--qat_epochs", type=int, default=2,
                      help="quantization-aware fine-tuning epochs")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--output_dir", default=None,
                      help="where to write the .tflite files (default: a "
                      "temporary directory)")
  args = parser.parse_args()
  output_dir = args.output_dir or tempfile.mkdtemp(prefix="qat_")
  os.makedirs(output_dir, exist_ok=True)

  tfc.set_seed(args.seed)
  splits = tfc.load_dataset("digits", seed=args.seed)
  model = _compile(tfc.build_model("cnn", splits.input_shape,
                                   splits.num_classes, seed=args.seed), 1e-3)
  model.fit(splits.train(batch_size=32), epochs=args.epochs, verbose=0)
  float_top1 = model.evaluate(splits.test(), verbose=0)[1]

  ptq_path = os.path.join(output_dir, "cnn_ptq_int8.tflite")
  ptq_info = export.export_tflite(model, ptq_path, "int8",
                                  representative_data=splits.x_train)
  ptq = export.verify_tflite(ptq_path, splits.x_test, splits.y_test,
                             keras_model=model)

  # A tenth of the float learning rate: QAT fine-tunes, it does not retrain.
  qat = _compile(quantization.quantize_model(model), 1e-4)
  freeze = quantization.QATFreezeCallback(max(args.qat_epochs - 1, 1))
  qat.fit(splits.train(batch_size=32), epochs=args.qat_epochs, verbose=0,
          callbacks=[freeze])
  qat_path = os.path.join(output_dir, "cnn_qat_int8.tflite")
  qat_info = export.export_tflite(qat, qat_path, "int8")
  check = export.verify_tflite(qat_path, splits.x_test, splits.y_test,
                               keras_model=qat)

  print(f"float top1={float_top1:.4f}")
  print(f"{'model':9} {'bytes':>8} {'gzip':>8} {'top1':>7} {'agree':>7}")
  for name, info, result in (("ptq_int8", ptq_info, ptq),
                             ("qat_int8", qat_info, check)):
    print(f"{name:9} {info['bytes']:8d} {info['gzip_bytes']:8d} "
          f"{result['tflite_top1']:7.4f} {result['agreement']:7.4f}")
  kernels = ",".join(sorted(qat_info["kernel_dtypes"]))
  print(f"qat_int8 top1={check['tflite_top1']:.4f} kernels={kernels} "
        f"(post-training int8 top1={ptq['tflite_top1']:.4f}); files in "
        f"{output_dir}")


if __name__ == "__main__":
  main()
