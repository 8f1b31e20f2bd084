"""Saving and loading Keras models, with clear errors and atomic writes.

Models of both Kerases are saved by their own Keras, and a saved file is
loaded into the Keras that wrote it, as its `metadata.json` (or HDF5
attributes) records: a `keras_version` of 3 or more loads into Keras 3
(`import keras`), anything else into tf_keras.

Loading is safe by default (`safe_mode=True`), for files from elsewhere:
a file that would run Python code on loading is refused with a `ModelError`
naming the opt-ins (`--allow_unsafe_load` on the command line,
`safe_mode=False` here):
* a `.keras` file's config.json is checked first (`untrusted.check_config`):
  a Lambda layer, a Python lambda, or an object from a module outside Keras
  and tf_compress (which tf_keras would import: CVE-2025-1550's class) is
  refused before Keras reads it; then Keras loads in its own safe mode;
* a full-model `.h5` file (Keras' legacy HDF5 format, which can hold Lambda
  bytecode) is refused outright, and so is a `.keras` file that is not a
  zip archive (tf_keras would read it as HDF5); `.weights.h5` files are
  weights, loaded by `load_weights`, and not affected;
* a tf_keras SavedModel directory whose Keras metadata names a Lambda layer
  is refused before it is read (tf_keras would otherwise rebuild the layer
  from its traced graph in safe mode, and from its bytecode without).

`load_tfmot_model` also loads models saved in the middle of compression,
with tfmot's pruning, clustering or quantization-aware (QAT) wrappers. Save
QAT models as `.h5` (and load them with `safe_mode=False`): tfmot 0.8.1's
`QuantizeLayer` builds its range variables twice when restored from the
`.keras` format, which then refuses to load.
"""

import json
import os
import re
import zipfile
import zlib

import keras as keras3
# tf_keras exports no safe-mode scope; its legacy loaders only honour this.
from tf_keras.src.saving.serialization_lib import SafeModeScope

from tf_compress import io_utils
from tf_compress._keras import is_keras3_object
from tf_compress._keras import keras
from tf_compress.errors import ModelError
from tf_compress.models.graph import check_any_model
from tf_compress.models.graph import clone_with_weights
from tf_compress.models.graph import is_graph_model
from tf_compress.models import untrusted

__all__ = ["load_model", "load_tfmot_model", "save_model",
           "check_model_fits", "saved_by_keras3"]

_LAMBDA_LAYER = re.compile(r"\bLambda`? layer")
# What reading a damaged zip archive can raise besides BadZipFile.
_ZIP_ERRORS = (zipfile.BadZipFile, OSError, ValueError, EOFError,
               RuntimeError, NotImplementedError, zlib.error)


def _read_metadata(read, path):
  """`keras_version` from a `metadata.json` read by `read()`, or None."""
  try:
    meta = json.loads(read())
  except (OSError, ValueError) as exc:
    raise ModelError(f"could not read the metadata.json of '{path}': "
                     f"{exc}") from None
  if not isinstance(meta, dict):
    return None
  return str(meta.get("keras_version", "")) or None


def _saved_version(path):
  """Returns the Keras version recorded in a saved file, or None."""
  if os.path.isdir(path):
    # Keras 3 also saves a .keras archive unzipped, as a directory.
    meta = os.path.join(path, "metadata.json")
    if (os.path.isfile(meta) and
        os.path.isfile(os.path.join(path, "config.json"))):
      with open(meta, "rb") as handle:
        return _read_metadata(handle.read, path)
    return None
  if zipfile.is_zipfile(path):
    try:
      with zipfile.ZipFile(path) as archive:
        if "metadata.json" in archive.namelist():
          return _read_metadata(lambda: archive.read("metadata.json"), path)
        if "config.json" not in archive.namelist():
          raise ModelError(f"'{path}' is a zip file but not a saved Keras "
                           "model (no config.json inside)")
    except _ZIP_ERRORS as exc:
      if isinstance(exc, ModelError):
        raise
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


def _is_keras3_version(version):
  major = (version or "").split(".")[0]
  return major.isdigit() and int(major) >= 3


def saved_by_keras3(path):
  """True when the saved file at `path` records Keras 3 (or later).

  Raises:
    ModelError: a zip file that is not a saved Keras model, or an unreadable
      `.keras`/`.h5` file.
  """
  path = os.fspath(path)
  return os.path.exists(path) and _is_keras3_version(_saved_version(path))


def _unsafe_error(exc):
  """Keras' safe-mode refusal in `exc` or what caused it, or None."""
  for _ in range(10):  # Keras may re-raise; a short walk down the chain.
    if exc is None:
      return None
    if isinstance(exc, ValueError) and "safe_mode" in str(exc):
      return exc
    exc = exc.__cause__ or exc.__context__
  return None


def _refusal(path, exc):
  text = " ".join(str(exc).split())
  if _LAMBDA_LAYER.search(text):
    return untrusted.refused(path, "a Lambda layer")
  if "lambda" in text.lower():
    return untrusted.refused(path, "a Python lambda")
  return ModelError(
      f"refusing to load '{path}': Keras' safe mode refuses part of it "
      f"({text[:300]}); {untrusted.OPT_IN}")


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _h5_refusal(path, what="a full-model .h5 file"):
  return ModelError(
      f"refusing to load '{path}': it is {what}, Keras' legacy HDF5 format, "
      "which can hold Python bytecode (a Lambda layer) that runs on "
      "loading, so safe mode refuses the format; save the model as .keras, "
      f"or {untrusted.OPT_IN}")


def _refuse_h5(path):
  """Refuses a full-model HDF5 file (safe mode)."""
  if os.path.isfile(path) and path.endswith((".h5", ".hdf5")):
    raise _h5_refusal(path)


def _read_config(path):
  """The config.json text of a .keras archive or directory, or None."""
  try:
    if os.path.isdir(path):
      config = os.path.join(path, "config.json")
      if not os.path.isfile(config):
        return None  # a SavedModel directory
      with open(config, "rb") as handle:
        return handle.read()
    if not zipfile.is_zipfile(path):
      with open(path, "rb") as handle:
        if handle.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE:
          # tf_keras reads any file that is no zip as HDF5.
          raise _h5_refusal(path, "an HDF5 file under a .keras name")
      raise ModelError(f"could not load the model '{path}': it is not a "
                       ".keras archive (a zip file); give a .keras file "
                       "written by Keras")
    with zipfile.ZipFile(path) as archive:
      if "config.json" not in archive.namelist():
        raise ModelError(f"'{path}' is a zip file but not a saved Keras "
                         "model (no config.json inside)")
      return archive.read("config.json")
  except _ZIP_ERRORS as exc:
    if isinstance(exc, ModelError):
      raise
    raise ModelError(f"could not read '{path}' as a .keras file: "
                     f"{exc}") from None


def _check_untrusted(path, custom_objects):
  """Refuses, in safe mode, a file whose loading would run its code."""
  _refuse_h5(path)
  config = _read_config(path)
  if config is not None:
    untrusted.check_config(path, config, custom_objects)
  elif os.path.isdir(path):
    _check_saved_model_lambdas(path)


def _check_saved_model_lambdas(path):
  """Refuses a tf_keras SavedModel directory that holds a Lambda layer."""
  meta = os.path.join(path, "keras_metadata.pb")
  if not os.path.isfile(meta):
    return
  with open(meta, "rb") as handle:
    # Each layer's metadata is a JSON string inside the protocol buffer.
    if re.search(rb'"class_name": ?"Lambda"', handle.read()):
      raise untrusted.refused(path, "a Lambda layer")


def load_model(path, custom_objects=None, *, safe_mode=True):
  """Loads a Keras 3 or tf_keras model, into the Keras that saved it.

  Args:
    path: a `.keras` or `.h5` file, a SavedModel directory (tf_keras), or a
      `.keras` archive saved unzipped as a directory (Keras 3).
    custom_objects: optional mapping passed to Keras' `load_model`.
    safe_mode: refuse files whose loading would run Python code: Lambda
      layers, objects from modules outside Keras and tf_compress, and
      full-model `.h5` files (see the module docstring). Pass False only
      for a file you trust (the command line's `--allow_unsafe_load`).

  Returns:
    The loaded model, compiled state included when it was saved: a Keras 3
    model when the file records Keras 3 or later, else a tf_keras model.

  Raises:
    ModelError: the path is missing or corrupt, or, with `safe_mode`, the
      file is a full-model `.h5` or holds a Lambda layer or another object
      that would run code; the message names the opt-in.

  Example:
    >>> model = tf_compress.load_model("model.keras")
    >>> trusted = tf_compress.load_model("lambda.keras", safe_mode=False)
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise ModelError(f"model file not found: '{path}'")
  if os.path.isfile(path) and not path.endswith((".keras", ".h5", ".hdf5")):
    raise ModelError(f"cannot load '{path}': expected a .keras or .h5 file "
                     "or a SavedModel directory")
  if safe_mode:
    _check_untrusted(path, custom_objects)
  version = _saved_version(path)
  keras3_file = _is_keras3_version(version)
  try:
    if keras3_file:
      model = keras3.saving.load_model(path, custom_objects=custom_objects,
                                       safe_mode=safe_mode)
    else:
      with SafeModeScope(bool(safe_mode)):
        model = keras.models.load_model(path, custom_objects=custom_objects,
                                        safe_mode=safe_mode)
  except Exception as exc:  # pylint: disable=broad-except
    unsafe = _unsafe_error(exc) if safe_mode else None
    if unsafe is not None:
      raise _refusal(path, unsafe) from None
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    saved_by = f" (saved by Keras {version})" if keras3_file else ""
    raise ModelError(f"could not load the model '{path}'{saved_by}: "
                     f"{type(exc).__name__}: {first[:300]}") from None
  expected = keras3.Model if keras3_file else keras.Model
  if not isinstance(model, expected):
    raise ModelError(f"'{path}' did not load as a Keras model "
                     f"(got {type(model).__name__})")
  return model


def load_tfmot_model(path, custom_objects=None, *, safe_mode=True):
  """Loads a saved model, with or without tfmot training wrappers.

  tfmot's pruning, clustering and quantization-aware (QAT) wrappers are
  deserialized within tfmot's scopes (tfmot is imported only here). A file
  saved by Keras 3 holds no tfmot wrapper: it is loaded by `load_model`,
  without importing tfmot.

  Args:
    path: a `.keras` or `.h5` file or a SavedModel directory; QAT models
      load only from `.h5` (see the module docstring).
    custom_objects: optional mapping passed to Keras' `load_model`.
    safe_mode: as for `load_model`.

  Returns:
    The model (compiled when saved compiled): tf_keras, or Keras 3 for a
    file saved by Keras 3.

  Raises:
    ModelError: the file is missing or corrupt, is refused by `safe_mode`
      (as for `load_model`), or is a `.keras` QAT file.
  """
  source = os.fspath(path)
  if safe_mode:
    _refuse_h5(source)  # before h5py reads it for its version
  if os.path.exists(source) and _is_keras3_version(_saved_version(source)):
    return load_model(path, custom_objects, safe_mode=safe_mode)
  # pylint: disable-next=g-import-not-at-top
  from tf_compress._tfmot import tfmot
  try:
    with tfmot.sparsity.keras.prune_scope(), \
        tfmot.clustering.keras.cluster_scope(), \
        tfmot.quantization.keras.quantize_scope():
      return load_model(path, custom_objects=custom_objects,
                        safe_mode=safe_mode)
  except ModelError as exc:
    if str(path).endswith(".keras") and "variables" in str(exc):
      raise ModelError(
          f"cannot load the QAT model '{path}': tfmot 0.8.1's QuantizeLayer "
          "does not restore from the .keras format; save QAT models as .h5 "
          "(tf_compress.save_model(model, 'model.h5')) and load it with "
          "safe_mode=False") from None
    raise


def _keras3_uncompiled_copy(model):
  """A Keras 3 model rebuilt from its config, without compiling it.

  Keras 3's `clone_model` compiles the clone like the original, so the
  copy is made the way `.keras` loading makes a model, minus the compile
  config. The model is the caller's own, already in this process, so its
  Lambda layers are no risk: safe mode is off for the copy.
  """
  config = keras3.saving.serialize_keras_object(model)
  config["compile_config"] = None
  copy = keras3.saving.deserialize_keras_object(config, safe_mode=False)
  copy.set_weights(model.get_weights())
  return copy


def _without_optimizer(model, include_optimizer):
  """The model to save: a weight-identical uncompiled copy if asked."""
  if include_optimizer or getattr(model, "optimizer", None) is None:
    return model
  try:
    if is_keras3_object(model):
      return _keras3_uncompiled_copy(model)
    return clone_with_weights(model)
  except (ValueError, TypeError, NotImplementedError):
    # A subclassed model that cannot be rebuilt is saved as it is.
    return model


def save_model(model, path, include_optimizer=True):
  """Saves `model` to `path` atomically (temporary file, then rename).

  An interrupted save never leaves a truncated file under the final name.
  The model is saved by its own Keras (Keras 3 or tf_keras), so that
  `load_model` brings it back into the same one.

  Args:
    model: a Keras 3 or tf_keras model.
    path: destination ending in `.keras` or `.h5`.
    include_optimizer: also save the optimizer state (to resume training);
      False gives the deployable size (a subclassed model that cannot be
      rebuilt from its config is saved with its optimizer).

  Returns:
    The size of the written file in bytes.

  Raises:
    TypeError: for an object that is not a Keras model.
  """
  check_any_model(model)
  path = os.fspath(path)
  suffix = ".keras" if path.endswith(".keras") else ".h5"
  fd, tmp = io_utils.make_partial_file(path, suffix=suffix)
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


def _keras3_shapes(model, expected, source):
  """`(input shape without the batch, output shape)` of a Keras 3 model.

  A subclassed model (or a Sequential without an `Input`) records neither,
  so it is run symbolically on the dataset's shape; its input shape is then
  None.
  """
  if is_graph_model(model) and not (
      isinstance(model, keras3.Sequential) and not model.built):
    out = model.output_shape
    return tuple(model.input_shape[1:]), (
        list(out.values()) if isinstance(out, dict) else out)
  try:
    spec = model.compute_output_spec(keras3.KerasTensor((None,) + expected))
  except Exception as exc:  # pylint: disable=broad-except
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    raise ModelError(f"{source} cannot take inputs of shape {expected}, "
                     f"the dataset's samples: {type(exc).__name__}: "
                     f"{first[:300]}") from None
  if isinstance(spec, keras3.KerasTensor):
    return None, tuple(spec.shape)
  return None, [tuple(getattr(t, "shape", ())) for t in
                keras3.tree.flatten(spec)]


def check_model_fits(model, input_shape, num_classes, source="model"):
  """Raises ModelError unless `model` maps `input_shape` to `num_classes`.

  Args:
    model: a Keras 3 or tf_keras model; a subclassed Keras 3 model is run
      symbolically on `input_shape` to find its output shape.
    input_shape: the dataset's per-sample shape.
    num_classes: the dataset's number of classes.
    source: how to name the model in the message (e.g. its path).

  Raises:
    ModelError: the model's input or output shape does not fit.
    TypeError: for an object that is not a Keras model.
  """
  check_any_model(model)
  expected = tuple(int(d) for d in input_shape)
  if is_keras3_object(model):
    got_in, out = _keras3_shapes(model, expected, source)
  else:
    got_in = tuple(model.input_shape[1:]) if model.inputs else None
    out = model.output_shape
  if got_in is not None and any(
      g is not None and g != e for g, e in zip(got_in, expected)) or (
          got_in is not None and len(got_in) != len(expected)):
    raise ModelError(f"{source} expects inputs of shape {got_in}, but the "
                     f"dataset's samples have shape {expected}")
  if isinstance(out, list) or out[-1] != num_classes:
    raise ModelError(f"{source} outputs shape {out}, but the dataset has "
                     f"{num_classes} classes")
