"""Keras → TFLite conversion, mixed precision, and atomic export to a file.

The converter's modes (`EXPORT_MODES`):

* `float32`: no optimisation; weights and activations stay float32.
* `dynamic`: dynamic-range quantization (`Optimize.DEFAULT`, no calibration
  data): int8 kernels, float32 activations.
* `float16`: float16 weights (`supported_types=[tf.float16]`), dequantized to
  float32 at run time.
* `int8`: full-integer quantization (`TFLITE_BUILTINS_INT8`), calibrated on
  representative inputs; `int8_io=True` also makes the model's input and
  output int8.
* `int16x8`: int16 activations, int8 weights
  (`EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8`), calibrated.

Two more modes quantize the float32 file with ai-edge-quantizer
(`EDGE_QUANTIZER_MODES`, see `edge_quantizer`): `int4_weight_only` and
`int4_blockwise`.

Mixed precision: `mode="int8"` with `keep_float=[Keras layer names or glob
patterns]` keeps those layers' ops in float (float32, or float16 weights
with `keep_float_dtype="float16"`) and quantizes the rest, from one
calibration (`calibrate_int8`, `selective`; the layer-to-op map is
`layer_map`'s, so no TFLite name is ever asked for).

tfmot training wrappers are handled first: pruning wrappers are removed with
`strip_pruning`, clustering wrappers with `strip_clustering`. A
quantization-aware-trained (QAT) model is converted as it is; its fake-quant
ranges give the quantization parameters, so `int8` needs no representative
data for it, and every mode but `float32` gives an integer model.
"""

import contextlib
import os
import re
import tempfile

import numpy as np
from tf_compress._tfmot import tfmot

from tf_compress import io_utils
from tf_compress._keras import check_model, is_keras3_object, keras, tf
from tf_compress.errors import ModelError, UserInputError
from tf_compress.export import edge_quantizer
from tf_compress.export import flatbuffer
from tf_compress.export import frozen
from tf_compress.export import keras3_convert
from tf_compress.export import layer_map
from tf_compress.export import quiet
from tf_compress.export import selective
from tf_compress.export.edge_quantizer import EDGE_QUANTIZER_MODES

__all__ = ["EXPORT_MODES", "EDGE_QUANTIZER_MODES", "calibrate_int8",
           "convert_to_tflite", "export_tflite"]

EXPORT_MODES = ("float32", "dynamic", "float16", "int8", "int16x8")
_CALIBRATED_MODES = ("int8", "int16x8")

# tfmot wrapper classes, matched by name along the MRO (tfmot does not export
# the classes themselves).
_PRUNING_WRAPPERS = ("PruneLowMagnitude",)
_CLUSTERING_WRAPPERS = ("ClusterWeights",)
_QAT_LAYERS = ("QuantizeWrapper", "QuantizeLayer")


def _is_tfmot(layer, names):
  return any(base.__name__ in names and
             (base.__module__ or "").startswith("tensorflow_model_optimization")
             for base in type(layer).__mro__)


def _walk_layers(model):
  """Yields every layer, descending into nested models and wrappers."""
  for layer in getattr(model, "layers", []):
    yield layer
    if isinstance(layer, keras.Model):
      yield from _walk_layers(layer)
    inner = getattr(layer, "layer", None)
    if isinstance(inner, keras.layers.Layer):
      yield inner
      if isinstance(inner, keras.Model):
        yield from _walk_layers(inner)


def _strip_wrappers(model):
  """Returns `model` without pruning or clustering wrappers.

  `strip_clustering` refreshes each wrapper's cluster associations (assigning
  to its variables), so those variables are restored afterwards: the
  caller's model is left exactly as it was.
  """
  layers = list(_walk_layers(model))
  if any(_is_tfmot(layer, _PRUNING_WRAPPERS) for layer in layers):
    model = tfmot.sparsity.keras.strip_pruning(model)
  clustering = [layer for layer in layers
                if _is_tfmot(layer, _CLUSTERING_WRAPPERS)]
  if clustering:
    variables = [v for layer in clustering for v in layer.variables]
    saved = [v.numpy() for v in variables]
    try:
      model = tfmot.clustering.keras.strip_clustering(model)
    finally:
      for variable, value in zip(variables, saved):
        variable.assign(value)
  return model


def _is_qat(model):
  if is_keras3_object(model):
    return keras3_convert.is_keras3_qat(model)
  return any(_is_tfmot(layer, _QAT_LAYERS) for layer in _walk_layers(model))


def _shape_matches(expected, got):
  return len(expected) == len(got) and all(
      e is None or e == g for e, g in zip(expected, got))


def _calibration_samples(model, data, limit):
  """Up to `limit` float32 input samples from an array or a tf.data dataset."""
  inputs = model.inputs or []  # None for subclassed models never called.
  if len(inputs) > 1:
    raise UserInputError(
        f"model '{model.name}' has {len(inputs)} inputs; calibrated export "
        "supports single-input models only.")
  expected = tuple(inputs[0].shape[1:]) if inputs else None
  if isinstance(data, tf.data.Dataset):
    samples, count = [], 0
    for element in data:
      if isinstance(element, (tuple, list)):
        element = element[0]
      if isinstance(element, dict):
        raise UserInputError(
            "representative_data yields dicts; give a dataset of input "
            "tensors or (inputs, labels) pairs.")
      array = np.asarray(element, dtype=np.float32)
      if expected is not None and array.ndim == len(expected):
        array = array[None]
      samples.append(array)
      count += len(array)
      if count >= limit:
        break
    if not samples:
      raise UserInputError(
          "representative_data is an empty dataset; give some training "
          "inputs.")
    shapes = {a.shape[1:] for a in samples}
    if len(shapes) != 1:
      raise UserInputError(
          "representative_data yields inputs of several shapes "
          f"{sorted(shapes)}; the model expects {expected}.")
    array = np.concatenate(samples)
  else:
    try:
      array = np.asarray(data, dtype=np.float32)
    except (TypeError, ValueError) as e:
      raise UserInputError(
          "representative_data must be a numpy array of inputs or a "
          f"tf.data.Dataset, got {type(data).__name__}.") from e
  if expected is not None and not _shape_matches(expected, array.shape[1:]):
    raise UserInputError(
        f"representative_data has per-sample shape {tuple(array.shape[1:])} "
        f"but model '{model.name}' expects {expected}; give training inputs.")
  if array.ndim == 0 or len(array) == 0:
    raise UserInputError(
        "representative_data holds no samples; give some training inputs.")
  return array[:limit]


def _configure(converter, mode, samples, int8_io, qat):
  if mode == "float32":
    return
  converter.optimizations = [tf.lite.Optimize.DEFAULT]
  if mode == "float16":
    converter.target_spec.supported_types = [tf.float16]
  elif mode == "int8":
    if not qat:
      # For QAT models the converter demands calibration data once this is
      # set, although the fake-quant ranges already make them all-integer.
      converter.target_spec.supported_ops = [
          tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
      converter.inference_input_type = tf.int8
      converter.inference_output_type = tf.int8
  elif mode == "int16x8":
    ops_set = tf.lite.OpsSet
    converter.target_spec.supported_ops = [
        ops_set.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
  if mode in _CALIBRATED_MODES and not qat:
    def representative_dataset():
      for i in range(len(samples)):
        yield [samples[i:i + 1]]
    converter.representative_dataset = representative_dataset


_OP_PATTERNS = (
    re.compile(r"'(tf\.[A-Za-z0-9_]+)' op"),
    re.compile(r"\b(?:Custom|Flex) ops: ([A-Za-z0-9_, ]+)"),
)


def _conversion_error(model, mode, error):
  """A one-line ModelError naming the ops and layers the converter refused."""
  text = str(error)
  ops, locations, messages = [], [], []
  for data in getattr(error, "errors", None) or []:
    name = getattr(getattr(data, "operator", None), "name", "")
    if name:
      ops.append(name)
    if getattr(data, "error_message", ""):
      messages.append(data.error_message.splitlines()[0])
    location = getattr(data, "location", None)
    for call in getattr(location, "call", []) or []:
      if call.name:
        locations.append(call.name.split("@")[0])
  for pattern in _OP_PATTERNS:
    for match in pattern.finditer(text):
      for name in match.group(1).split(","):
        name = name.strip()
        if name:
          ops.append(name if "." in name else "tf." + name)
  ops = list(dict.fromkeys(ops))
  layer_names = {layer.name: layer for layer in _walk_layers(model)}
  layers = []
  for location in locations:
    for part in location.split("/"):
      if part in layer_names and part != model.name:
        layers.append(part)
  layers = list(dict.fromkeys(layers))
  described = ", ".join(
      f"'{name}' ({type(layer_names[name]).__name__})" for name in layers)
  summary = (messages[0] if messages else
             next((line.strip() for line in text.splitlines()
                   if "error:" in line), text.splitlines()[0] if text else ""))
  summary = summary.strip()
  if not ops:
    return ModelError(
        f"TFLite cannot convert model '{model.name}' (mode={mode}): "
        f"{summary}")
  return ModelError(
      f"TFLite cannot convert model '{model.name}' (mode={mode}): "
      f"op {', '.join(ops)}{' in layer ' + described if described else ''} "
      f"is not a TFLite builtin op ({summary}). Replace that layer with "
      "supported ops, or export a model without it.")


def _check_calibration_count(num_calibration_samples):
  if (isinstance(num_calibration_samples, bool) or
      not isinstance(num_calibration_samples, (int, np.integer)) or
      num_calibration_samples < 1):
    raise UserInputError(
        "num_calibration_samples must be a positive integer, got "
        f"{num_calibration_samples!r}.")


def _check_keep_float(model, mode, keep_float, keep_float_dtype, qat):
  if isinstance(keep_float, str):
    raise UserInputError(
        f"keep_float must be a list of Keras layer names or patterns, got "
        f"the string {keep_float!r}; write keep_float=[{keep_float!r}].")
  if mode != "int8":
    raise UserInputError(
        f"keep_float needs mode='int8' (the other layers are quantized to "
        f"int8), got mode={mode!r}; drop keep_float or export in int8 mode.")
  if qat:
    raise UserInputError(
        f"model '{model.name}' is quantization-aware trained: its fake-quant "
        "ranges quantize every layer, so keep_float cannot apply; export a "
        "float model with keep_float, or the QAT model without it.")
  if keep_float_dtype not in selective.KEEP_DTYPES:
    raise UserInputError(
        f"keep_float_dtype must be one of {', '.join(selective.KEEP_DTYPES)}"
        f", got {keep_float_dtype!r}.")


def _convert(model, mode, samples, int8_io, qat, verbose, tagged=False):
  """The converter's output.

  With `tagged`: `(calibrated bytes, layer tokens, converted model)`, the
  model calibrated only, inside `layer_map.tagged_layers` (the converted
  model is `model` without tfmot wrappers).
  """
  keras3 = is_keras3_object(model)
  if keras3:
    keras3_convert.keras3_input_shapes(model)  # subclassed: a clear error
  with quiet.quiet_converter(verbose), tempfile.TemporaryDirectory(
      prefix="tf_compress_export_") as workdir:
    try:
      source = model if keras3 else _strip_wrappers(model)
      tags = (layer_map.tagged_layers(source) if tagged
              else contextlib.nullcontext({}))
      with tags as tokens:
        fast = frozen.frozen_source(source, keras3)
        if fast is not None:
          converter = fast.converter
        elif keras3:
          converter = keras3_convert.keras3_converter(source, workdir)
        else:
          converter = tf.lite.TFLiteConverter.from_keras_model(source)
        _configure(converter, mode, samples, int8_io, qat)
        if tagged:
          # The quantization debugger's split: calibrate now, quantize later.
          converter.experimental_mlir_quantizer = True
          # pylint: disable-next=protected-access
          converter._experimental_calibrate_only = True
        data = converter.convert()
        if fast is not None:
          data = frozen.add_signature(data, fast.input_key, fast.output_key)
      return (data, tokens, source) if tagged else data
    except Exception as e:  # pylint: disable=broad-except
      # ConverterError, and errors from stripping or tracing the model.
      raise _conversion_error(model, mode, e) from e


def calibrate_int8(model, representative_data, num_calibration_samples=200,
                   verbose=False):
  """Calibrates `model` for int8 once, to quantize with layers kept float.

  Args:
    model: a tf_keras or Keras 3 model, not quantization-aware trained (see
      `convert_to_tflite`). It is left as it was.
    representative_data: training inputs, as for `mode="int8"`.
    num_calibration_samples: at most this many samples calibrate it.
    verbose: show the converter's own log output.

  Returns:
    A `selective.Calibrated`: `.quantize(keep=[...])` gives the int8 file
    with those Keras layers in float, `.quantize(only=[...])` the float
    file with only those layers in int8.

  Raises:
    UserInputError, ModelError: as for `convert_to_tflite`, and for a QAT
      model.
  """
  if not is_keras3_object(model):
    check_model(model)
  _check_calibration_count(num_calibration_samples)
  if _is_qat(model):
    raise UserInputError(
        f"model '{model.name}' is quantization-aware trained; its int8 "
        "ranges come from training, not calibration. Calibrate the float "
        "model instead.")
  if representative_data is None:
    raise UserInputError(
        "int8 calibration needs representative data; pass "
        "representative_data (e.g. a few hundred training inputs).")
  samples = _calibration_samples(model, representative_data,
                                 int(num_calibration_samples))
  data, tokens, source = _convert(model, "int8", samples, False, False,
                                  verbose, tagged=True)
  return selective.Calibrated(model=source, data=data, tokens=tokens,
                              ops=layer_map.op_layers(data, tokens))


def convert_to_tflite(model, mode, representative_data=None, int8_io=False,
                      num_calibration_samples=200, verbose=False,
                      keep_float=None, keep_float_dtype="float32"):
  """Converts a tf_keras or Keras 3 model into a TFLite flatbuffer.

  Args:
    model: a tf_keras model (tfmot pruning and clustering wrappers are
      stripped first, QAT models are converted as they are), or a Keras 3
      Sequential/Functional model (TensorFlow backend; converted through a
      SavedModel, see `keras3_convert`; a model pruned by the native engine
      needs no stripping). It is not modified.
    mode: one of `EXPORT_MODES` or `EDGE_QUANTIZER_MODES`
      ("int4_weight_only", "int4_blockwise", see `edge_quantizer`).
    representative_data: training inputs for calibration (`int8` and
      `int16x8`): a numpy array of samples, or a tf.data dataset of inputs or
      (inputs, labels) pairs, batched or not.
    int8_io: with `mode="int8"`, make the model's input and output int8 too
      (the caller then quantizes inputs and dequantizes outputs).
    num_calibration_samples: at most this many samples calibrate the model.
    verbose: show the converter's own log output (hidden by default).
    keep_float: with `mode="int8"`, Keras layer names or glob patterns
      (`["fc1", "conv*"]`, matched against layer names and, for nested
      models, `outer/inner` paths) whose ops stay float while the rest is
      quantized to int8 (mixed precision; see `selective`). None or []
      quantizes everything.
    keep_float_dtype: "float32", or "float16" to store the kept layers'
      weights in float16 (they still compute in float32).

  Returns:
    The TFLite model as bytes.

  Raises:
    TypeError: for anything but a tf_keras or Keras 3 model.
    UserInputError: for an unknown mode, calibrated modes without
      representative data, `int8_io` outside the `int8` mode, representative
      data of the wrong shape, or `keep_float` outside the `int8` mode, for
      a QAT model, or naming a layer the model does not have (the message
      names each unknown name).
    ModelError: if the converter fails; the message names the op and the
      layer it could not convert.
  """
  keras3 = is_keras3_object(model)
  if not keras3:
    check_model(model)
  if mode not in EXPORT_MODES + EDGE_QUANTIZER_MODES:
    raise UserInputError(
        f"unknown TFLite export mode {mode!r}; choose one of "
        f"{', '.join(EXPORT_MODES + EDGE_QUANTIZER_MODES)}.")
  if int8_io and mode != "int8":
    raise UserInputError(
        f"int8_io=True needs mode='int8', got mode={mode!r}; drop int8_io or "
        "export in int8 mode.")
  _check_calibration_count(num_calibration_samples)
  qat = _is_qat(model)
  if keep_float is not None and (keep_float or isinstance(keep_float, str)):
    _check_keep_float(model, mode, keep_float, keep_float_dtype, qat)
    # Unknown names fail before the (slow) calibration.
    layer_map.match_layers(model, keep_float)
    calibrated = calibrate_int8(model, representative_data,
                                num_calibration_samples, verbose)
    return calibrated.quantize(keep=keep_float, keep_dtype=keep_float_dtype,
                               int8_io=int8_io, verbose=verbose)
  if qat and mode == "int16x8":
    raise UserInputError(
        f"model '{model.name}' is quantization-aware trained (int8 fake "
        "quantization), which TFLite cannot export as int16x8; use "
        "mode='int8'.")
  if mode in EDGE_QUANTIZER_MODES:
    if qat:
      raise UserInputError(
          f"model '{model.name}' is quantization-aware trained for int8; "
          f"{mode} quantizes a float model. Export it with mode='int8'.")
    return edge_quantizer.quantize_float_model(
        _convert(model, "float32", None, False, False, verbose), mode,
        model_name=model.name, verbose=verbose)
  samples = None
  if mode in _CALIBRATED_MODES and not qat:
    if representative_data is None:
      raise UserInputError(
          f"{mode} export needs representative data to calibrate activation "
          "ranges; pass representative_data (e.g. a few hundred training "
          "inputs), or use mode='dynamic' which needs none.")
    samples = _calibration_samples(model, representative_data,
                                   int(num_calibration_samples))
  return _convert(model, mode, samples, int8_io, qat, verbose)


def export_tflite(model, path, mode, **kwargs):
  """Converts `model` and writes the TFLite file atomically.

  The model is converted completely before the file is touched; the bytes
  then go to a temporary file in the same directory, are fsync'ed and renamed
  over `path`. A failure leaves any previous file intact and no temporary
  file behind.

  Args:
    model: a tf_keras model (see `convert_to_tflite`).
    path: the .tflite file to write; its directory must exist.
    mode: one of `EXPORT_MODES` or `EDGE_QUANTIZER_MODES`.
    **kwargs: passed to `convert_to_tflite` (representative_data, int8_io,
      num_calibration_samples, verbose, keep_float, keep_float_dtype).

  Returns:
    `inspect_tflite`'s dict for the written file, plus `path` and `mode`.

  Raises:
    TypeError, UserInputError, ModelError: as for `convert_to_tflite`, and
      UserInputError if `path` cannot be written.
    OSError: if writing fails part-way.
  """
  if not is_keras3_object(model):
    check_model(model)
  io_utils.check_writable_file(path, "TFLite output file")
  data = convert_to_tflite(model, mode, **kwargs)
  io_utils.atomic_write_bytes(path, data)
  result = flatbuffer.inspect_tflite(data)
  result["path"] = os.fspath(path)
  result["mode"] = mode
  return result
