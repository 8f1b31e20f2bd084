"""Verification of an exported TFLite model on LiteRT against its Keras source.

The held-out samples run through `ai_edge_litert`'s interpreter (quantizing
inputs and dequantizing outputs of integer models), and the predictions are
compared with the labels and with the Keras model's outputs. By default the
interpreter runs in a child process, so that a damaged file which crashes
LiteRT is reported as a `UserInputError` (see `litert.run_isolated`).
"""

import numpy as np

from tf_compress import inference
from tf_compress._keras import check_model
from tf_compress._keras import is_keras3_object
from tf_compress.errors import UserInputError
from tf_compress.export import litert

__all__ = ["verify_tflite"]


def _check_labels(y, n):
  y = np.asarray(y)
  if y.ndim != 1 or len(y) != n:
    raise UserInputError(
        f"y must be 1-D with one label per sample ({n}), got shape {y.shape}.")
  if not np.issubdtype(y.dtype, np.integer):
    if not np.all(np.equal(np.mod(y, 1), 0)):
      raise UserInputError(
          f"y must hold integer class labels, got dtype {y.dtype}.")
    y = y.astype(np.int64)
  return y


def _per_class_accuracy(predictions, labels, num_classes):
  """Recall of each class, None for a class without samples.

  The same figures as `tf_compress.analysis.per_class_accuracy` on the
  scores whose argmax is `predictions`.

  Raises:
    UserInputError: a label outside `[0, num_classes)`.
  """
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise UserInputError(
        f"labels must be in [0, {num_classes}) (the model's outputs), got "
        f"[{labels.min()}, {labels.max()}].")
  support = np.bincount(labels, minlength=num_classes)
  correct = np.bincount(labels[predictions == labels], minlength=num_classes)
  return [float(correct[c] / support[c]) if support[c] else None
          for c in range(num_classes)]


def verify_tflite(path_or_bytes, x, y=None, keras_model=None, batch_size=64,
                  num_threads=None, isolate=True, return_predictions=False):
  """Runs a TFLite model on LiteRT and compares it with labels and Keras.

  Args:
    path_or_bytes: a .tflite file path or the model's bytes (single input;
      the first output is read).
    x: float inputs, first axis the samples, as the Keras model takes them.
      For int8-input models they are quantized with the input's scale and
      zero point, `round(x / scale + zero_point)` clipped to int8.
    y: integer class labels for `tflite_top1`, or None.
    keras_model: the tf_keras or Keras 3 model the file was exported from, for
      `agreement` and `max_abs_diff`, or None.
    batch_size: samples per interpreter invocation (the input tensor is
      resized; models that refuse that run one sample at a time).
    num_threads: interpreter threads; None lets LiteRT choose.
    isolate: run LiteRT in a child process (`litert.run_isolated`), so that
      a damaged file that crashes LiteRT raises `UserInputError` instead of
      killing this process. False runs in this process (saves ~0.3 s; only
      for files just written by `export_tflite`).
    return_predictions: also return `predictions`, the file's (samples,)
      int64 argmax classes (for paired statistics against another model).

  Returns:
    A dict with `num_samples`; `tflite_top1` (accuracy against `y`, None
    without labels); `keras_top1` (None without labels or model);
    `agreement` (fraction of samples where TFLite and Keras predict the same
    class) and `max_abs_diff` / `mean_abs_diff` (between TFLite's dequantized
    outputs and Keras' outputs, both logits for the built-in models), None
    without `keras_model`; `input_dtype`, `output_dtype` and `batched`;
    `per_class_accuracy` with labels; `predictions` on request.

  Raises:
    TypeError: if `keras_model` is not a Keras model.
    UserInputError: if the file is missing, corrupt or truncated (including
      files that crash LiteRT, with `isolate`), or the inputs, labels or
      Keras model do not fit the TFLite model.
  """
  if keras_model is not None and not is_keras3_object(keras_model):
    check_model(keras_model, "keras_model")
  if (isinstance(batch_size, bool) or
      not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
    raise UserInputError(
        f"batch_size must be a positive integer, got {batch_size!r}.")
  interpreter, name = litert.load_interpreter(path_or_bytes,
                                              num_threads=num_threads)
  x = np.asarray(x, dtype=np.float32)
  if x.ndim < 1 or len(x) == 0:
    raise UserInputError(
        f"no samples to verify {name} on; give held-out inputs.")
  labels = _check_labels(y, len(x)) if y is not None else None
  if isolate:
    outputs, batched = litert.run_isolated(
        path_or_bytes, x, batch_size=int(batch_size), num_threads=num_threads)
  else:
    outputs, batched = litert.run_interpreter(interpreter, x,
                                              batch_size=int(batch_size))
  scores = outputs.reshape(len(x), -1)
  predictions = np.argmax(scores, axis=-1)
  result = {
      "num_samples": int(len(x)),
      "tflite_top1": (float(np.mean(predictions == labels))
                      if labels is not None else None),
      "keras_top1": None,
      "agreement": None,
      "max_abs_diff": None,
      "mean_abs_diff": None,
      "input_dtype": np.dtype(interpreter.get_input_details()[0]["dtype"]).name,
      "output_dtype": np.dtype(
          interpreter.get_output_details()[0]["dtype"]).name,
      "batched": bool(batched),
  }
  if labels is not None:
    # Per class, so that a report can say which classes the export cost.
    result["per_class_accuracy"] = _per_class_accuracy(
        predictions, labels, scores.shape[1])
  if keras_model is not None:
    reference = inference.predict_scores(keras_model, x, batch_size)
    if reference.shape != outputs.shape:
      raise UserInputError(
          f"keras_model outputs shape {reference.shape} but {name} outputs "
          f"{outputs.shape}; pass the model the file was exported from.")
    keras_predictions = np.argmax(reference.reshape(len(x), -1), axis=-1)
    diff = np.abs(outputs - reference)
    result.update(
        agreement=float(np.mean(predictions == keras_predictions)),
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()))
    if labels is not None:
      result["keras_top1"] = float(np.mean(keras_predictions == labels))
  if return_predictions:
    result["predictions"] = predictions.astype(np.int64)
  return result
