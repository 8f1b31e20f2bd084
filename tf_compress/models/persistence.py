"""Saving and loading Keras models, with clear errors and atomic writes.

`load_tfmot_model` also loads models saved in the middle of compression,
with tfmot's pruning, clustering or quantization-aware (QAT) wrappers. Save
QAT models as `.h5`: tfmot 0.8.1's `QuantizeLayer` builds its range
variables twice when restored from the `.keras` format, which then refuses
to load.
"""

import json
import os
import tempfile
import zipfile

from tf_compress._keras import check_model, keras
from tf_compress.errors import ModelError
from tf_compress.models.graph import clone_with_weights

__all__ = ["load_model", "load_tfmot_model", "save_model",
           "check_model_fits"]


def _keras3_file_error(path, version):
  return ModelError(
      f"'{path}' was saved by Keras {version} (Keras 3); tf_compress loads "
      "only Keras 2 (tf_keras) models. Rebuild the model with "
      "`from tf_compress import keras`, copy the weights with "
      "`set_weights(...)`, and save it again")


def _saved_version(path):
  """Returns the Keras version recorded in a saved file, or None."""
  if zipfile.is_zipfile(path):
    try:
      with zipfile.ZipFile(path) as archive:
        if "metadata.json" in archive.namelist():
          meta = json.loads(archive.read("metadata.json"))
          return str(meta.get("keras_version", "")) or None
        if "config.json" not in archive.namelist():
          raise ModelError(f"'{path}' is a zip file but not a saved Keras "
                           "model (no config.json inside)")
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
      raise ModelError(f"could not read '{path}' as a .keras file: "
                       f"{exc}") from None
    return None
  if path.endswith((".h5", ".hdf5")):
    import h5py  # pylint: disable=g-import-not-at-top
    try:
      with h5py.File(path, "r") as handle:
        version = handle.attrs.get("keras_version")
    except OSError as exc:
      raise ModelError(f"could not read '{path}' as an HDF5 Keras model: "
                       f"{exc}") from None
    if isinstance(version, bytes):
      version = version.decode()
    return str(version) if version is not None else None
  return None


def load_model(path, custom_objects=None):
  """Loads a tf_keras model from a `.keras`, `.h5` or SavedModel path.

  Args:
    path: the saved model.
    custom_objects: optional mapping passed to `keras.models.load_model`.

  Returns:
    The loaded model, compiled state included when it was saved.

  Raises:
    ModelError: the path is missing, corrupt, or holds a Keras 3 model.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise ModelError(f"model file not found: '{path}'")
  if os.path.isfile(path) and not path.endswith((".keras", ".h5", ".hdf5")):
    raise ModelError(f"cannot load '{path}': expected a .keras or .h5 file "
                     "or a SavedModel directory")
  version = _saved_version(path) if os.path.isfile(path) else None
  if version and version.split(".")[0] == "3":
    raise _keras3_file_error(path, version)
  try:
    model = keras.models.load_model(path, custom_objects=custom_objects)
  except Exception as exc:  # pylint: disable=broad-except
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    raise ModelError(f"could not load the model '{path}': "
                     f"{type(exc).__name__}: {first[:300]}") from None
  if not isinstance(model, keras.Model):
    raise ModelError(f"'{path}' did not load as a Keras model "
                     f"(got {type(model).__name__})")
  return model


def load_tfmot_model(path, custom_objects=None):
  """Loads a saved model, with or without tfmot training wrappers.

  tfmot's pruning, clustering and quantization-aware (QAT) wrappers are
  deserialized within tfmot's scopes (tfmot is imported only here).

  Args:
    path: a `.keras` or `.h5` file or a SavedModel directory; QAT models
      load only from `.h5` (see the module docstring).
    custom_objects: optional mapping passed to `keras.models.load_model`.

  Returns:
    The tf_keras model (compiled when saved compiled).

  Raises:
    ModelError: the file is missing, corrupt, a Keras 3 model, or a `.keras`
      QAT file.
  """
  # pylint: disable-next=g-import-not-at-top
  import tensorflow_model_optimization as tfmot
  try:
    with tfmot.sparsity.keras.prune_scope(), \
        tfmot.clustering.keras.cluster_scope(), \
        tfmot.quantization.keras.quantize_scope():
      return load_model(path, custom_objects=custom_objects)
  except ModelError as exc:
    if str(path).endswith(".keras") and "variables" in str(exc):
      raise ModelError(
          f"cannot load the QAT model '{path}': tfmot 0.8.1's QuantizeLayer "
          "does not restore from the .keras format; save QAT models as .h5 "
          "(tf_compress.save_model(model, 'model.h5'))") from None
    raise


def _without_optimizer(model, include_optimizer):
  """The model to save: a weight-identical uncompiled copy if asked."""
  if include_optimizer or model.optimizer is None:
    return model
  try:
    return clone_with_weights(model)
  except (ValueError, TypeError):  # subclassed models cannot be cloned
    return model


def save_model(model, path, include_optimizer=True):
  """Saves `model` to `path` atomically (temporary file, then rename).

  An interrupted save never leaves a truncated file under the final name.

  Args:
    model: a tf_keras model.
    path: destination ending in `.keras` or `.h5`.
    include_optimizer: also save the optimizer state (to resume training);
      False gives the deployable size.

  Returns:
    The size of the written file in bytes.
  """
  check_model(model)
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  suffix = ".keras" if path.endswith(".keras") else ".h5"
  fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
  os.close(fd)
  try:
    _without_optimizer(model, include_optimizer).save(tmp, overwrite=True)
    with open(tmp, "rb") as handle:
      os.fsync(handle.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  return os.path.getsize(path)


def check_model_fits(model, input_shape, num_classes, source="model"):
  """Raises ModelError unless `model` maps `input_shape` to `num_classes`.

  Args:
    model: a tf_keras model.
    input_shape: the dataset's per-sample shape.
    num_classes: the dataset's number of classes.
    source: how to name the model in the message (e.g. its path).
  """
  check_model(model)
  expected = tuple(int(d) for d in input_shape)
  got_in = tuple(model.input_shape[1:]) if model.inputs else None
  if got_in is not None and any(
      g is not None and g != e for g, e in zip(got_in, expected)) or (
          got_in is not None and len(got_in) != len(expected)):
    raise ModelError(f"{source} expects inputs of shape {got_in}, but the "
                     f"dataset's samples have shape {expected}")
  out = model.output_shape
  if isinstance(out, list) or out[-1] != num_classes:
    raise ModelError(f"{source} outputs shape {out}, but the dataset has "
                     f"{num_classes} classes")
