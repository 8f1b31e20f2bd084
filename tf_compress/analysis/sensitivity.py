"""Per-layer sensitivity: perturb one layer at a time, measure the drop.

    result = analysis.sensitivity(model, splits, method="int8")
    result["rows"][0]   # the most sensitive layer:
    # {"layer": "fc1", "drop": 12.4, "ci_low": 9.8, "ci_high": 15.1,
    #  "p": 1e-09, "top1": 0.851, "significant": True}

Each row perturbs ONE layer and compares, sample by sample, the
perturbed model's top-1 on the validation split (`splits.x_val`,
`splits.y_val`) with the unperturbed one's (`compare_predictions`: a
paired bootstrap interval and McNemar's exact p-value). `drop` is in
percentage points, positive when the perturbation costs accuracy; its
interval is the bootstrap interval of the same drop.

Methods:

* `"int8"`: the model's TFLite file with only that layer's ops quantized
  to int8 and every other op float (`export.calibrate_int8(...).quantize(
  only=[layer])`), run on LiteRT, against the float32 file;
* `"prune:S"`: that layer's kernel magnitude-pruned to sparsity S (the
  smallest |w| set to 0, no fine-tuning), against the Keras model;
* `"cluster:K"`: that layer's kernel replaced by its 1-D k-means
  clustering with K centroids (quantile initialization, Lloyd iterations;
  the same centroids for every run), against the Keras model.

The prune and cluster methods change one kernel of the caller's model in
place and restore it, exactly, before the next layer (and on any error),
so the model is left as it was; they work for subclassed models too. The
layers analysed by default are those with a kernel (Dense, convolutions,
and for int8 those that own an op in the converted graph).
"""

import time

import numpy as np

from tf_compress import inference
from tf_compress.analysis.significance import compare_predictions
from tf_compress.errors import UserInputError
from tf_compress.export import layer_map

__all__ = ["METHODS", "parse_method", "sensitivity", "magnitude_prune",
           "kmeans_cluster", "kernel_layers"]

METHODS = ("int8", "prune", "cluster")
_KERNELS = ("kernel", "depthwise_kernel")
_LLOYD_STEPS = 30


def parse_method(method):
  """`"int8"`, `"prune:0.8"` or `"cluster:16"` -> (kind, parameter).

  Raises:
    UserInputError: any other text, a sparsity outside [0, 1) or a
      cluster count below 1.
  """
  text = str(method).strip().lower()
  kind, _, value = text.partition(":")
  if kind == "int8" and not value:
    return "int8", None
  try:
    if kind == "prune":
      sparsity = float(value)
      if 0 <= sparsity < 1:
        return "prune", sparsity
    elif kind == "cluster":
      count = int(value)
      if count >= 1 and str(count) == value.strip():
        return "cluster", count
  except ValueError:
    pass
  raise UserInputError(
      f"sensitivity method must be 'int8', 'prune:S' (S, the sparsity, in "
      f"[0, 1)) or 'cluster:K' (K >= 1 centroids), such as 'prune:0.8' or "
      f"'cluster:16'; got {method!r}.")


def magnitude_prune(values, sparsity):
  """`values` with the `round(sparsity * size)` smallest |values| set to 0.

  Ties at the threshold are broken by position (a stable order), so the
  count of zeros set is exact.
  """
  values = np.asarray(values)
  flat = values.reshape(-1).copy()
  count = int(round(float(sparsity) * flat.size))
  if count:
    order = np.argsort(np.abs(flat), kind="stable")
    flat[order[:count]] = 0
  return flat.reshape(values.shape)


def kmeans_cluster(values, num_clusters, steps=_LLOYD_STEPS):
  """`values` replaced by the nearest of `num_clusters` 1-D k-means centroids.

  The centroids start at the values' quantiles `(i + 0.5) / K` and take
  `steps` Lloyd iterations (a centroid left without values stays where it
  is). Deterministic: no random initialization.

  Returns:
    An array of `values`' shape and dtype holding at most `num_clusters`
    distinct values.
  """
  values = np.asarray(values)
  flat = values.reshape(-1).astype(np.float64)
  if flat.size == 0:
    return values.copy()
  k = int(num_clusters)
  centroids = np.unique(np.quantile(flat, (np.arange(k) + 0.5) / k))
  for _ in range(int(steps)):
    edges = (centroids[1:] + centroids[:-1]) / 2
    assignment = np.searchsorted(edges, flat)
    sums = np.bincount(assignment, weights=flat, minlength=centroids.size)
    counts = np.bincount(assignment, minlength=centroids.size)
    updated = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
    updated = np.sort(updated)
    if np.allclose(updated, centroids, rtol=0, atol=0):
      break
    centroids = updated
  edges = (centroids[1:] + centroids[:-1]) / 2
  clustered = centroids[np.searchsorted(edges, flat)]
  return clustered.reshape(values.shape).astype(values.dtype)


def _kernel(layer):
  for name in _KERNELS:
    variable = getattr(layer, name, None)
    if variable is not None and hasattr(variable, "assign"):
      return variable
  return None


def kernel_layers(model):
  """(path, layer, kernel variable) of every layer with a kernel, in order."""
  out = []
  for layer, path in layer_map.walk_layers(model):
    try:
      kernel = _kernel(layer)
    except (AttributeError, ValueError):  # an unbuilt layer
      kernel = None
    if kernel is not None:
      out.append((path, layer, kernel))
  return out


def _validation(splits):
  x = getattr(splits, "x_val", None)
  y = getattr(splits, "y_val", None)
  if x is None or y is None:
    raise UserInputError(
        "sensitivity needs a DatasetSplits (tf_compress.load_dataset) with a "
        f"validation split, got {type(splits).__name__}.")
  if len(x) == 0:
    raise UserInputError(
        "sensitivity is measured on the validation split, which is empty; "
        "load the dataset with validation_fraction > 0.")
  return np.asarray(x, np.float32), np.asarray(y).astype(np.int64)


def _selected(model, candidates, layers):
  """The candidate paths that `layers` (names or patterns) select."""
  if layers is None:
    return list(candidates)
  chosen = layer_map.match_layers(model, layers, "layers")
  picked = [p for p in candidates
            if any(p == c or p.startswith(c + "/") for c in chosen)]
  if not picked:
    raise UserInputError(
        f"layers {list(layers)!r} select no layer this method can perturb; "
        f"it can perturb: {', '.join(candidates) or 'none'}.")
  return picked


def _keras_predictions(model, x):
  scores = inference.predict_scores(model, x, 256)
  return np.argmax(scores.reshape(len(x), -1), axis=-1)


def _tflite_predictions(data, x):
  # Imported here: the export package is only needed by the int8 method.
  from tf_compress.export import litert  # pylint: disable=g-import-not-at-top
  interpreter, _ = litert.load_interpreter(data)
  outputs, _ = litert.run_interpreter(interpreter, x, batch_size=256)
  return np.argmax(outputs.reshape(len(x), -1), axis=-1)


def _row(layer, labels, reference, candidate, num_resamples, confidence,
         seed):
  stat = compare_predictions(labels, reference, candidate, metrics=("top1",),
                             num_resamples=num_resamples,
                             confidence=confidence, seed=seed)["top1"]
  # `+ 0.0`: no difference reads 0.0, not -0.0.
  return {"layer": layer, "drop": -100.0 * stat["difference"] + 0.0,
          "ci_low": -100.0 * stat["ci_high"] + 0.0,
          "ci_high": -100.0 * stat["ci_low"] + 0.0, "p": stat["p_value"],
          "top1": stat["candidate"], "significant": stat["significant"]}


def _perturbed_rows(model, kind, value, paths, x, y, reference, stats):
  kernels = {p: k for p, _, k in kernel_layers(model)}
  rows = []
  for path in paths:
    variable = kernels[path]
    original = np.array(variable.numpy())
    changed = (magnitude_prune(original, value) if kind == "prune"
               else kmeans_cluster(original, value))
    try:
      variable.assign(changed)
      candidate = _keras_predictions(model, x)
    finally:
      variable.assign(original)
    rows.append(_row(path, y, reference, candidate, *stats))
  return rows


def sensitivity(model, splits, method="int8", layers=None,
                num_resamples=1000, seed=0, confidence=0.95,
                representative_data=None, num_calibration_samples=200,
                calibrated=None, reference_predictions=None):
  """The drop of validation top-1 when one layer at a time is perturbed.

  Args:
    model: a Keras 3 or tf_keras classifier (logits or probabilities).
    splits: a `DatasetSplits`; its validation split is measured, its
      training inputs calibrate int8 unless `representative_data` is given.
    method: "int8", "prune:S" or "cluster:K" (see the module docstring).
    layers: Keras layer names or glob patterns to analyse; default: every
      layer with a kernel.
    num_resamples: paired bootstrap resamples of each drop's interval.
    seed: the bootstrap's seed.
    confidence: the intervals' level.
    representative_data: int8 calibration inputs; default `splits.x_train`.
    num_calibration_samples: at most this many calibrate int8.
    calibrated: an `export.Calibrated` of `model` to reuse (int8 only).
    reference_predictions: the unperturbed model's validation predictions
      (the float32 file's for int8), when already known.

  Returns:
    A JSON-safe dict: `method`, `metric` ("top1"), `split`
    ("validation"), `num_samples`, `reference` (what the drop is against:
    "float32 TFLite" or "Keras"), `reference_top1`, `num_resamples`,
    `seed`, `confidence`, `seconds`, and `rows`, one per layer sorted by
    drop, largest first: `layer`, `drop`, `ci_low`, `ci_high` (points),
    `p` (McNemar's exact test), `top1` (the perturbed model's) and
    `significant` (the interval excludes 0).

  Raises:
    UserInputError: a bad method, no validation split, or `layers` naming
      no layer of the model (or none that the method can perturb).
  """
  started = time.perf_counter()
  kind, value = parse_method(method)
  x, y = _validation(splits)
  stats = (int(num_resamples), float(confidence), int(seed))
  if kind == "int8":
    # pylint: disable-next=g-import-not-at-top
    from tf_compress.export import convert
    if calibrated is None:
      data = (representative_data if representative_data is not None
              else splits.x_train)
      calibrated = convert.calibrate_int8(model, data,
                                          num_calibration_samples)
    owned = set(calibrated.layer_paths())
    candidates = [p for p, _, _ in kernel_layers(calibrated.model)
                  if p in owned]
    paths = _selected(calibrated.model, candidates, layers)
    if reference_predictions is None:
      reference_predictions = _tflite_predictions(
          convert.convert_to_tflite(model, "float32"), x)
    rows = [_row(path, y, reference_predictions,
                 _tflite_predictions(calibrated.quantize(only=[path]), x),
                 *stats) for path in paths]
    reference = "float32 TFLite"
  else:
    paths = _selected(model, [p for p, _, _ in kernel_layers(model)], layers)
    if reference_predictions is None:
      reference_predictions = _keras_predictions(model, x)
    rows = _perturbed_rows(model, kind, value, paths, x, y,
                           reference_predictions, stats)
    reference = "Keras"
  order = sorted(range(len(rows)), key=lambda i: (-rows[i]["drop"], i))
  return {
      "method": str(method), "metric": "top1", "split": "validation",
      "num_samples": int(len(y)), "reference": reference,
      "reference_top1": float(np.mean(np.asarray(reference_predictions) == y)),
      "num_resamples": stats[0], "seed": stats[2], "confidence": stats[1],
      "seconds": round(time.perf_counter() - started, 3),
      "rows": [rows[i] for i in order],
  }
