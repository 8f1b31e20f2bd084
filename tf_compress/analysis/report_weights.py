"""Weight values for the report's histograms: Keras kernels and int8 kernels.

Reads what a run saved (`<variant>.keras`, `<variant>_int8.tflite`) and
returns plain numpy arrays; `report_plots.plot_weight_histograms` draws them.
"""

import os

import numpy as np

from tf_compress._keras import is_keras3_object
from tf_compress.analysis.keras3_weights import pruning_masks
from tf_compress.analysis.keras3_weights import weight_values
from tf_compress.errors import UserInputError
from tf_compress.models.graph import check_any_model

__all__ = ["keras_kernel_values", "tflite_int8_kernel_values",
           "weight_panels", "MAX_CENTROIDS"]

# A kernel set with at most this many distinct values (and several elements
# per value) is drawn as clustered: each distinct value is a centroid.
MAX_CENTROIDS = 256


def keras_kernel_values(model):
  """The kernels of `model` (weights named *kernel* of rank >= 2).

  Args:
    model: a tf_keras model (QAT wrappers and pruning wrappers included) or
      a Keras 3 model (a pruned kernel's values are `kernel * mask`).

  Returns:
    {weight name: 1-D float array}, in model order; a Keras 3 weight is
    named by its path (`model/fc1/kernel`), since its name is only
    `kernel`.
  """
  check_any_model(model)
  values = {}
  if is_keras3_object(model):
    for weight, value in weight_values(model, pruning_masks(model)):
      if len(weight.shape) >= 2 and "kernel" in weight.name:
        values.setdefault(weight.path, value.ravel())
    return values
  for weight in model.weights:
    name = weight.name
    if len(weight.shape) >= 2 and "kernel" in name.rsplit("/", 1)[-1]:
      values.setdefault(name, np.asarray(weight.numpy()).ravel())
  return values


def tflite_int8_kernel_values(path):
  """The stored int8 values of the kernels of a TFLite file.

  Kernels are found by the flatbuffer inspection (the weight operand of
  CONV_2D, FULLY_CONNECTED, ...); their values are read as stored, before
  dequantization, with LiteRT's interpreter (no delegates, so the constant
  buffers are not repacked).

  Args:
    path: a .tflite file.

  Returns:
    {tensor name: 1-D int8 array}; empty when no kernel is int8.

  Raises:
    UserInputError: the file is missing or not a valid TFLite model.
  """
  # Imported here: LiteRT is only needed when int8 files exist.
  from tf_compress import export  # pylint: disable=g-import-not-at-top
  info = export.inspect_tflite(path, per_tensor=True)
  kernels = [w for w in info.get("weights", [])
             if w["role"] == "kernel" and w["dtype"] == "int8"]
  if not kernels:
    return {}
  interpreter, _ = export.load_interpreter(path, default_delegates=False)
  interpreter.allocate_tensors()
  values = {}
  for weight in kernels:
    array = interpreter.get_tensor(weight["index"])
    values[weight["name"]] = np.asarray(array, dtype=np.int8).ravel()
  return values


def _concat(values):
  arrays = [v for v in values.values() if v.size]
  return np.concatenate(arrays) if arrays else None


def _centroids(values):
  """The distinct values of a clustered kernel set, or None."""
  if values is None or values.size == 0:
    return None
  distinct = np.unique(values)
  if distinct.size <= MAX_CENTROIDS and values.size >= 4 * distinct.size:
    return distinct.tolist()
  return None


def _load_kernels(name, path, models):
  """Keras kernels of variant `name`: in-memory model, else the saved file."""
  if models and name in models:
    return _concat(keras_kernel_values(models[name])), None
  if not path or not os.path.exists(path):
    return None, f"{os.path.basename(path or name)} not found"
  # Imported here: loading models needs TensorFlow, the other plots do not.
  # pylint: disable-next=g-import-not-at-top
  from tf_compress import models as models_lib
  try:
    return _concat(keras_kernel_values(models_lib.load_model(path))), None
  except (UserInputError, TypeError, ValueError, OSError) as exc:
    return None, f"could not load {os.path.basename(path)}: {exc}"


def weight_panels(report, run_dir, models=None):
  """One histogram panel per variant: baseline vs variant weights, int8 values.

  Args:
    report: report.json's dict.
    run_dir: the directory holding the run's `.keras` and `.tflite` files.
    models: optional {variant name: tf_keras model} used instead of loading
      the saved files (the runner passes the models it holds, which include
      QAT models that tfmot cannot reload from .keras).

  Returns:
    A list of dicts, one per variant: `name`, `before` (the baseline's
    kernel values, None for the baseline itself), `after` (this variant's
    kernel values or None), `int8` (int8 kernel values of its int8 export or
    None), `centroids` (the distinct values when the kernels are clustered,
    else None) and `notes` (why something is missing). Variants with
    nothing to draw are left out.
  """
  panels = []
  baseline = None
  for variant in report.get("variants", []):
    name = variant["name"]
    notes = []
    model_path = variant.get("model_path")
    after, why = _load_kernels(
        name, os.path.join(run_dir, model_path) if model_path else None,
        models)
    if why:
      notes.append(why)
    if name == "baseline":
      baseline = after
    int8 = None
    for export in variant.get("tflite", []):
      if export.get("mode") != "int8" or not export.get("path"):
        continue
      path = os.path.join(run_dir, export["path"])
      if not os.path.exists(path):
        notes.append(f"{export['path']} not found")
        continue
      try:
        int8 = _concat(tflite_int8_kernel_values(path))
      except UserInputError as exc:
        notes.append(str(exc))
    if after is None and int8 is None:
      continue
    panels.append({
        "name": name,
        "before": None if name == "baseline" else baseline,
        "after": after, "int8": int8, "centroids": _centroids(after),
        "notes": notes})
  return panels
