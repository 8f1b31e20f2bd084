"""Mixed precision picked by measurement: the fewest layers kept in float.

    choice = quantization.auto_keep_float(model, splits, max_drop=0.5)
    choice["keep_float"]      # e.g. ["fc1"]
    export.export_tflite(model, "model.tflite", "int8",
                         keep_float=choice["keep_float"],
                         representative_data=splits.x_train)

The int8 sensitivity ranking (`analysis.sensitivity(method="int8")`: the
validation top-1 drop when each layer alone is quantized) orders the
layers; layers are then kept in float one by one, the most sensitive
first, until the int8 file's validation top-1 drop against the float32
file is at most `max_drop` points. Every file is measured on LiteRT from
one calibration of the model.
"""

import numpy as np

from tf_compress.analysis.sensitivity import sensitivity
from tf_compress.analysis.significance import compare_predictions
from tf_compress.errors import UserInputError
from tf_compress.export import convert
from tf_compress.export import flatbuffer
from tf_compress.export import litert

__all__ = ["auto_keep_float"]


def _predictions(data, x):
  interpreter, _ = litert.load_interpreter(data)
  outputs, _ = litert.run_interpreter(interpreter, x, batch_size=256)
  return np.argmax(outputs.reshape(len(x), -1), axis=-1)


def auto_keep_float(model, splits, max_drop=0.5, layers=None,
                    representative_data=None, num_calibration_samples=200,
                    keep_float_dtype="float32", num_resamples=1000, seed=0,
                    confidence=0.95):
  """The fewest layers to keep in float for an int8 drop within `max_drop`.

  Args:
    model: a Keras 3 or tf_keras classifier (not quantization-aware
      trained).
    splits: a `DatasetSplits`: the validation split is measured, the
      training inputs calibrate (unless `representative_data` is given).
    max_drop: the budget: the largest validation top-1 drop, in points, of
      the int8 file against the float32 file.
    layers: names or patterns of the candidate layers; default: every layer
      with a kernel that owns an op.
    representative_data: calibration inputs; default `splits.x_train`.
    num_calibration_samples: at most this many calibrate int8.
    keep_float_dtype: "float32" or "float16" for the kept layers' weights.
    num_resamples, seed, confidence: of the paired bootstrap intervals.

  Returns:
    A JSON-safe dict: `keep_float` (the chosen layers, most sensitive
    first; [] when plain int8 is within the budget), `met` (whether the
    budget was met; when not, every candidate is kept), `drop`, `ci_low`,
    `ci_high` (points) and `p` of the chosen file against the float32
    file, `float32_top1`, `top1` (the chosen file's), `int8_drop` (plain
    int8's drop), `bytes` and `gzip_bytes` of the chosen file,
    `max_drop`, `num_candidates`, `trials` (one per number of kept layers
    tried: `keep_float`, `drop`, `bytes`) and `ranking` (the sensitivity
    rows).

  Raises:
    UserInputError: a negative budget, or as for `analysis.sensitivity`.
  """
  if isinstance(max_drop, bool) or not isinstance(
      max_drop, (int, float, np.floating, np.integer)) or not max_drop >= 0:
    raise UserInputError(
        f"max_drop must be a number of points >= 0, such as 0.5, got "
        f"{max_drop!r}.")
  data = (representative_data if representative_data is not None
          else splits.x_train)
  calibrated = convert.calibrate_int8(model, data, num_calibration_samples)
  x = np.asarray(splits.x_val, np.float32)
  y = np.asarray(splits.y_val).astype(np.int64)
  reference = _predictions(convert.convert_to_tflite(model, "float32"), x)
  ranking = sensitivity(
      model, splits, "int8", layers=layers, num_resamples=num_resamples,
      seed=seed, confidence=confidence, calibrated=calibrated,
      reference_predictions=reference)["rows"]
  order = [row["layer"] for row in ranking]
  trials, chosen = [], None
  for count in range(len(order) + 1):
    keep = order[:count]
    tflite = calibrated.quantize(keep=keep, keep_dtype=keep_float_dtype)
    stat = compare_predictions(
        y, reference, _predictions(tflite, x), metrics=("top1",),
        num_resamples=num_resamples, confidence=confidence,
        seed=seed)["top1"]
    drop = -100.0 * stat["difference"] + 0.0  # never -0.0
    trials.append({"keep_float": keep, "drop": drop, "bytes": len(tflite)})
    chosen = (keep, tflite, stat)
    if drop <= max_drop:
      break
  keep, tflite, stat = chosen
  info = flatbuffer.inspect_tflite(tflite)
  return {
      "keep_float": list(keep), "met": trials[-1]["drop"] <= max_drop,
      "drop": trials[-1]["drop"], "ci_low": -100.0 * stat["ci_high"] + 0.0,
      "ci_high": -100.0 * stat["ci_low"] + 0.0, "p": stat["p_value"],
      "float32_top1": stat["reference"], "top1": stat["candidate"],
      "int8_drop": trials[0]["drop"], "bytes": info["bytes"],
      "gzip_bytes": info["gzip_bytes"], "max_drop": float(max_drop),
      "num_candidates": len(order), "trials": trials, "ranking": ranking,
  }
