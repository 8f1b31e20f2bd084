"""Quantization-aware training (QAT) with tfmot, for a model or chosen layers.

`quantize_model` copies the caller's model, annotates the chosen layers with
tfmot's `quantize_annotate_layer` and applies a quantization scheme with
`quantize_apply`. The result trains like any Keras model; its fake-quant
ranges then give the TFLite converter its quantization parameters, so
`tf_compress.export.convert_to_tflite(qat, "int8")` needs no calibration
data.

Schemes (`SCHEMES`):

* `8bit`: tfmot's default 8-bit scheme, which matches TFLite's int8 kernels:
  per-channel symmetric int8 Conv2D/DepthwiseConv2D kernels, per-tensor
  symmetric int8 Dense kernels, per-tensor asymmetric int8 activations.
* `16x8`: tfmot 0.8.1 has no 16x8 QAT scheme that TFLite can export. The
  closest it offers, used here, is the experimental `DefaultNBitQuantizeScheme`
  with 8-bit weights (as in `8bit`) and 16-bit activations; tfmot simulates
  those activations *asymmetrically* (a zero point), while TFLite's int16x8
  kernels need symmetric int16 activations (zero point 0), so the converter's
  output of such a model fails to run. Train with it, then export with
  `strip_quantization(qat)` and `convert_to_tflite(float_model, "int16x8",
  representative_data=...)`: the weights have learnt to live with 8-bit
  quantization, and the int16 activation ranges are calibrated post-training.

A tfmot 0.8.1 defect is worked around: its layout transform
`LayerReLUQuantize` gives a Conv2D, DepthwiseConv2D or Dense layer that
feeds a separate `ReLU` layer a no-op quantize config, so its kernel was
never fake-quantized in training (and, in PQAT/CQAT, its zeros and clusters
were not preserved). Such layers keep their own config here, with a no-op
activation instead (how tfmot treats Conv2D → BatchNormalization): no
fake-quant op sits between the layer and its ReLU, and the kernel is
quantized.

Save QAT models as `.h5` and load them with `load_qat_model`: tfmot 0.8.1's
`QuantizeLayer` builds its range variables twice when restored from the
`.keras` format, which then refuses to load.
"""

import re

import importlib

from tf_compress._keras import check_model, is_keras3_object, keras
from tf_compress._tfmot import is_tfmot_instance
from tf_compress._tfmot import lazy
from tf_compress.errors import ModelError, UserInputError
from tf_compress.models.graph import check_graph_model
from tf_compress.models.graph import clone_with_weights
from tf_compress.models.graph import copy_layer
from tf_compress.models.persistence import load_tfmot_model
from tf_compress.models.persistence import saved_by_keras3
from tf_compress.quantization import keras3_qat

__all__ = ["SCHEMES", "quantize_model", "strip_quantization",
           "load_qat_model", "find_quantizers"]

# tfmot, looked up on first use (only tf_keras models need it). tfmot
# exports neither the annotate wrapper nor NoOpActivation.
tq = lazy("quantization.keras")
QuantizeAnnotate = lazy(
    "python.core.quantization.keras.quantize_annotate:QuantizeAnnotate")
_NoOpActivation = lazy(
    "python.core.quantization.keras.quantize_aware_activation:NoOpActivation")
SCHEMES = ("8bit", "16x8")
# tfmot wrappers, by class name along the MRO (not all are exported).
_TFMOT_WRAPPERS = {
    "QuantizeWrapper": "quantization-aware (QAT)",
    "QuantizeLayer": "quantization-aware (QAT)",
    "PruneLowMagnitude": "pruning",
    "ClusterWeights": "clustering",
}
_STRIP_ADVICE = {
    "quantization-aware (QAT)": "it is already quantization-aware: keep "
                                "training it, or start from the float model",
    "pruning": "strip them first with tf_compress.pruning.strip_pruning",
    "clustering": "strip them first with "
                  "tf_compress.quantization.strip_clustering",
}


def _tfmot_kind(layer):
  for base in type(layer).__mro__:
    if (base.__module__ or "").startswith("tensorflow_model_optimization"):
      kind = _TFMOT_WRAPPERS.get(base.__name__)
      if kind:
        return kind
  return None


def check_plain_model(model, what):
  """Checks that tfmot can wrap `model`: built, graph, flat, unwrapped.

  Args:
    model: the caller's model.
    what: the public function's name, for messages.

  Raises:
    TypeError: for a Keras 3 model.
    ModelError: the model is subclassed, not built, holds a sub-model, or
      already holds tfmot wrappers.
  """
  check_graph_model(model, what, "whose layers tfmot cannot reach: build it "
                    "with the Functional API")
  if not model.built or not model.inputs:
    raise ModelError(
        f"model {model.name!r} is not built: give it an Input (or call "
        f"build(input_shape)) before {what}")
  for layer in model.layers:
    if isinstance(layer, keras.Model):
      raise ModelError(
          f"model {model.name!r} holds the sub-model {layer.name!r}, and "
          f"tfmot cannot wrap layers inside a nested model: call {what} on "
          "the inner model, or rebuild the model flat")
    kind = _tfmot_kind(layer)
    if kind:
      raise ModelError(
          f"model {model.name!r} has {kind} wrappers (layer {layer.name!r}); "
          f"{_STRIP_ADVICE[kind]} before {what}")


def _copy_layer(layer):
  if is_tfmot_instance(layer, QuantizeAnnotate):
    # The user's own annotation (a QuantizeConfig for a custom layer) stays.
    return QuantizeAnnotate(_copy_layer(layer.layer),
                            quantize_config=layer.quantize_config,
                            name=layer.name)
  return copy_layer(layer)


def copy_model(model, what):
  """A copy of `model` sharing no layer or variable with it.

  Keras' default clone rebuilds layers from their serialized config, which
  needs every custom class to be registered; this uses the classes
  themselves (see `tf_compress.models.copy_layer`), and keeps the user's
  own `QuantizeAnnotate` wrappers.

  Raises:
    ModelError: the model cannot be copied; the message names `what`.
  """
  return clone_with_weights(model, _copy_layer, what)


def _names(field, value):
  if value is None:
    return ()
  if isinstance(value, str):
    value = (value,)
  try:
    items = tuple(value)
  except TypeError:
    raise UserInputError(
        f"`{field}` must be None, a string or a list of strings, got "
        f"{value!r}") from None
  if not items or not all(isinstance(i, str) and i for i in items):
    raise UserInputError(
        f"`{field}` must be None or a non-empty list of non-empty strings, "
        f"got {value!r}")
  return items


def layer_filter(layers, layer_types):
  """A predicate choosing layers by name pattern and by class name.

  Args:
    layers: None, or regular expressions that must match a layer's whole
      name (`re.fullmatch`).
    layer_types: None, or class names (`"Conv2D"`); a layer matches when
      its class or a base class has one of the names.

  Returns:
    `chosen(layer) -> bool`; both filters apply when both are given.

  Raises:
    UserInputError: for anything but strings, or an invalid pattern.
  """
  patterns = []
  for text in _names("layers", layers):
    try:
      patterns.append(re.compile(text))
    except re.error as exc:
      raise UserInputError(
          f"`layers` pattern {text!r} is not a valid regular expression "
          f"({exc}); give layer names or regular expressions") from None
  types = frozenset(_names("layer_types", layer_types))

  def chosen(layer):
    if patterns and not any(p.fullmatch(layer.name) for p in patterns):
      return False
    return not types or any(cls.__name__ in types
                            for cls in type(layer).__mro__)

  chosen.description = (f"layers={list(_names('layers', layers))}, "
                        f"layer_types={sorted(types)}")
  return chosen


def _scheme_class():
  """`KeepWeightsScheme` (it subclasses a tfmot class: imports tfmot)."""
  module = importlib.import_module("tf_compress.quantization.tfmot_qat_classes")
  return module.KeepWeightsScheme


def _base_scheme(scheme):
  if not isinstance(scheme, str) or scheme not in SCHEMES:
    raise UserInputError(
        f"unknown quantization scheme {scheme!r}; choose one of "
        f"{', '.join(SCHEMES)}")
  if scheme == "16x8":
    return tq.experimental.default_n_bit.DefaultNBitQuantizeScheme(
        num_bits_weight=8, num_bits_activation=16)
  return tq.default_8bit.Default8BitQuantizeScheme()


def _unsupported(layer):
  return ModelError(
      f"layer {layer.name!r} ({type(layer).__name__}) was selected for "
      "quantization-aware training, but tfmot does not know how to quantize "
      "it: annotate it with tfmot.quantization.keras.quantize_annotate_layer("
      "layer, quantize_config=...) and a tfmot.quantization.keras."
      "QuantizeConfig describing its weights and activations (register both "
      "classes with keras.utils.register_keras_serializable), or keep it in "
      "float by leaving it out with `layers` (name patterns) or "
      "`layer_types`")


def apply_scheme(model, base_scheme, layers, layer_types, what):
  """Copies `model`, annotates the chosen layers and applies `base_scheme`.

  Shared by `quantize_model` and the collaborative (PQAT, CQAT) functions.

  Args:
    model: the caller's model (not modified).
    base_scheme: a tfmot `QuantizeScheme`.
    layers: None or name patterns (see `layer_filter`).
    layer_types: None or class names.
    what: the public function's name, for messages.

  Returns:
    The new, uncompiled QAT model.

  Raises:
    TypeError: for a Keras 3 model.
    UserInputError: for a bad selection.
    ModelError: the model cannot be wrapped, a chosen layer cannot be
      quantized, or no layer is chosen.
  """
  check_plain_model(model, what)
  chosen = layer_filter(layers, layer_types)
  copy = copy_model(model, what)
  annotate = {id(layer) for layer in copy.layers
              if not isinstance(layer, (keras.layers.InputLayer,
                                        QuantizeAnnotate.resolve()))
              and chosen(layer)}
  if not annotate and not any(is_tfmot_instance(layer, QuantizeAnnotate)
                              for layer in copy.layers):
    raise ModelError(
        f"no layer of model {model.name!r} is selected for quantization-"
        f"aware training ({chosen.description}); widen the selection")

  def wrap(layer):
    if id(layer) in annotate:
      return tq.quantize_annotate_layer(layer)
    return layer

  annotated = keras.models.clone_model(copy, clone_function=wrap)
  try:
    with tq.quantize_scope():
      return tq.quantize_apply(annotated, _scheme_class()(base_scheme))
  except (RuntimeError, ValueError) as exc:
    # tfmot refuses a layer its scheme's registry lacks, unless a layout
    # transform gave it a config (a BatchNormalization after a Conv2D).
    first = (str(exc).strip().splitlines() or [""])[0]
    match = re.match(r"Layer (.+?):<class", first)
    names = {layer.name: layer for layer in copy.layers}
    if match and match.group(1) in names:
      raise _unsupported(names[match.group(1)]) from None
    raise ModelError(
        f"{what}: tfmot cannot quantize model {model.name!r} "
        f"({type(exc).__name__}: {first[:300]}); leave the layer named "
        "there out with `layers` or `layer_types`, or give it a "
        "QuantizeConfig with quantize_annotate_layer") from None


def quantize_model(model, layers=None, layer_types=None, scheme="8bit"):
  """Returns a quantization-aware copy of `model` (whole, or chosen layers).

  The caller's model and its weights are never changed. Compile the result
  and fine-tune it for an epoch or a few, with a learning rate about 10x
  below the one that trained the float model; then export it with
  `tf_compress.export.convert_to_tflite(qat, "int8")` (scheme `8bit`), or
  see the module docstring for `16x8`. When only some layers are chosen,
  tfmot also quantizes the output of each float layer that feeds a chosen
  one (an output-only config), so the quantized part gets quantized
  inputs. Layers the user already annotated
  with `tfmot.quantization.keras.quantize_annotate_layer` (a custom layer
  with its own `QuantizeConfig`) are quantized with that config.

  A Keras 3 model gets the native engine instead (`keras3_qat`): any
  model type, nested ones included, 8-bit scheme only.

  Args:
    model: a built tf_keras Sequential or Functional model (no nested
      models, no pruning or clustering wrappers: strip them first), or a
      built Keras 3 model.
    layers: None (all layers), or regular expressions matching the whole
      names of the layers to quantize; the others stay float.
    layer_types: None (all), or class names such as `["Conv2D", "Dense"]`.
    scheme: one of `SCHEMES`: `8bit` or `16x8` (see the module docstring).

  Returns:
    A new, uncompiled `keras.Model` with tfmot's quantize wrappers; for
    Keras 3, see `keras3_qat.quantize_keras3_model`.

  Raises:
    UserInputError: an unknown scheme or a bad `layers`/`layer_types`.
    ModelError: the model is subclassed, nested or wrapped; a chosen layer
      is one tfmot cannot quantize (a custom layer: the message says how to
      annotate it or leave it out); or no layer is chosen.
  """
  if is_keras3_object(model):
    if scheme != "8bit":
      raise UserInputError(
          f"quantize_model scheme {scheme!r}: the Keras 3 engine trains the "
          "8-bit scheme only; for int16x8, export the float model with "
          "convert_to_tflite(model, 'int16x8', representative_data=...)")
    return keras3_qat.quantize_keras3_model(model, layers, layer_types)
  check_model(model)
  base = _base_scheme(scheme)
  return apply_scheme(model, base, layers, layer_types, "quantize_model")


def find_quantizers(model):
  """The quantization-aware layers of `model`.

  Returns:
    `(wrappers, quantize_layers)`, two lists of layers in model order: for
    a tf_keras model, tfmot's quantize wrappers and its input quantize
    layers; for a Keras 3 model, the layers the native engine instrumented
    (and an empty list: it has no separate input quantizers).
  """
  if is_keras3_object(model):
    return ([layer for layer, _ in keras3_qat.keras3_qat_states(model)],
            [])
  wrappers, inputs = [], []
  for layer in model.layers:
    if isinstance(layer, tq.QuantizeWrapper):
      wrappers.append(layer)
    elif _tfmot_kind(layer) == "quantization-aware (QAT)":
      inputs.append(layer)
  return wrappers, inputs


def strip_quantization(model):
  """Returns a float copy of a QAT model, with its trained weights.

  The fake-quant ops and their ranges go; each layer gets the float weights
  that QAT trained (not their quantized values), and each input quantize
  layer becomes an identity `Activation("linear")` with its name. Use it to
  export a `16x8`-scheme model post-training (`convert_to_tflite(...,
  "int16x8", representative_data=...)`), or to go on in float.

  Args:
    model: a QAT model (from `quantize_model`, the collaborative functions
      or `load_qat_model`); a model without quantize wrappers is copied.

  Returns:
    A new, uncompiled float `keras.Model` sharing nothing with `model`.

  Raises:
    TypeError: for a Keras 3 model.
    ModelError: for a subclassed model.
  """
  if is_keras3_object(model):
    return keras3_qat.strip_keras3_quantization(model)
  check_graph_model(model, "strip_quantization")
  sources = {}

  def unwrap(layer):
    if _tfmot_kind(layer) == "quantization-aware (QAT)" and not isinstance(
        layer, tq.QuantizeWrapper):
      return keras.layers.Activation("linear", name=layer.name)
    inner = layer.layer if isinstance(layer, tq.QuantizeWrapper) else layer
    # The wrapped layer's activation serializes as a QuantizeAwareActivation,
    # which deserializes (in quantize_scope) to the original activation.
    fresh = inner.__class__.from_config(inner.get_config())
    if is_tfmot_instance(getattr(fresh, "activation", None),
                         _NoOpActivation):
      fresh.activation = keras.activations.linear
    sources[fresh.name] = layer
    return fresh

  with tq.quantize_scope():
    plain = keras.models.clone_model(model, clone_function=unwrap)
  for layer in plain.layers:
    if layer.name in sources:
      layer.set_weights(_float_weights(sources[layer.name], layer))
  return plain


def _basename(variable):
  return variable.name.split(":")[0].rpartition("/")[2]


def _float_weights(source, fresh):
  """The values for `fresh`'s weights, from the layer (or wrapper) it copies.

  A quantize wrapper replaces its layer's kernel attribute by the
  fake-quantized tensor, so the kernel variable is no longer among the
  layer's weights; the wrapper keeps it, next to the quantizer variables
  (whose names differ: `kernel_min`, `optimizer_step`...).
  """
  if not isinstance(source, tq.QuantizeWrapper):
    return source.get_weights()
  # pylint: disable-next=protected-access
  candidates = [w for w, _, _ in source._weight_vars] + list(
      source.layer.weights)
  by_name = {}
  for variable in candidates:
    by_name.setdefault(_basename(variable), variable)
  try:
    variables = [by_name[_basename(w)] for w in fresh.weights]
  except KeyError as exc:
    raise ModelError(
        f"strip_quantization: no trained value for weight {exc} of layer "
        f"{fresh.name!r} in {source.name!r}") from None
  return keras.backend.batch_get_value(variables)


def load_qat_model(path, layers=None, layer_types=None, safe_mode=True):
  """Loads a QAT model saved with `model.save` or `tf_compress.save_model`.

  A `.keras` file saved by Keras 3 is loaded by the Keras 3 engine
  (`keras3_qat.load_keras3_qat_model`): made quantization-aware again with
  the same `layers`/`layer_types`, then given its saved weights, ranges and
  BatchNormalization statistics. Other files are read by
  `tf_compress.models.load_tfmot_model`, so models that also hold pruning
  or clustering wrappers (PQAT, CQAT) load too.

  Args:
    path: a Keras 3 `.keras` file; or for tf_keras an `.h5` file (or a
      SavedModel directory): tfmot 0.8.1 QAT models saved as `.keras` do
      not load (see the module docstring).
    layers: Keras 3 only: the `layers` given to `quantize_model`.
    layer_types: Keras 3 only: the `layer_types` given to `quantize_model`.
    safe_mode: refuse files that would run code on loading, `.h5` ones
      included (see `tf_compress.load_model`): pass False to load a tfmot
      QAT model from the `.h5` file you saved it to.

  Returns:
    The QAT model (compiled when saved compiled).

  Raises:
    ModelError: the file is missing or corrupt, is refused by `safe_mode`,
      or is a tfmot `.keras` QAT file.
  """
  if saved_by_keras3(path):
    return keras3_qat.load_keras3_qat_model(path, layers, layer_types,
                                            safe_mode=safe_mode)
  return load_tfmot_model(path, safe_mode=safe_mode)
