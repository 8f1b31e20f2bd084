"""Our subclasses of tfmot's QAT classes (the tfmot engine's extensions).

* `FrozenRangeQuantizer`: a tfmot quantizer with its ranges frozen, for
  `QATFreezeCallback`.
* `KeepWeightsScheme` / `KeepWeightsBeforeReLU`: a scheme whose layout
  transform keeps the kernels of layers before a ReLU quantized (see
  `qat`'s module docstring).

They subclass tfmot classes, so importing this module imports tfmot;
`qat` and `qat_callbacks` import it on first use, for tf_keras models only.
"""

from tf_compress._keras import register
from tf_compress._tfmot import tfmot
from tf_compress._tfmot import tfmot_module
from tf_compress.errors import UserInputError

__all__ = ["FrozenRangeQuantizer", "KeepWeightsScheme",
           "KeepWeightsBeforeReLU"]

tq = tfmot.quantization.keras
# tfmot's (de)serializers of quantizers, which its layers use.
quantize_utils = tfmot_module("python.core.quantization.keras.utils")
_NoOpActivation = tfmot_module(
    "python.core.quantization.keras.quantize_aware_activation").NoOpActivation
# Layer classes whose NoOp config from LayerReLUQuantize is undone.
_WEIGHTED = ("Conv2D", "DepthwiseConv2D", "Dense")
_RELU_CONSUMERS = ("ReLU", "Activation")


@register
class FrozenRangeQuantizer(tq.quantizers.Quantizer):
  """Runs a tfmot quantizer with its ranges frozen (`training=False`).

  The stored min/max variables quantize; they are never updated. Used by
  `QATFreezeCallback`; registered so that a model saved while frozen (a
  checkpoint in the middle of `fit`) still loads. Such a model's input
  quantize layers stay frozen until a `QATFreezeCallback` trains it again.

  Args:
    quantizer: the tfmot `Quantizer` to freeze.

  Example:
    >>> frozen = FrozenRangeQuantizer(
    ...     tfmot.quantization.keras.quantizers.MovingAverageQuantizer(
    ...         8, False, False, False))
  """

  def __init__(self, quantizer):
    if not isinstance(quantizer, tq.quantizers.Quantizer):
      raise UserInputError(
          "FrozenRangeQuantizer needs a tfmot Quantizer, got "
          f"{type(quantizer).__name__}")
    self.quantizer = quantizer

  def build(self, tensor_shape, name, layer):
    return self.quantizer.build(tensor_shape, name, layer)

  def __call__(self, inputs, training, weights, **kwargs):
    del training  # Always inference: no range update.
    return self.quantizer(inputs, False, weights, **kwargs)

  def get_config(self):
    # tfmot's own (legacy) format, as its layers serialize quantizers.
    return {"quantizer": quantize_utils.serialize_keras_object(
        self.quantizer)}

  @classmethod
  def from_config(cls, config):
    with tq.quantize_scope():
      quantizer = quantize_utils.deserialize_keras_object(config["quantizer"])
    return cls(quantizer)

  def __eq__(self, other):
    return (isinstance(other, FrozenRangeQuantizer) and
            self.quantizer == other.quantizer)

  def __ne__(self, other):
    return not self.__eq__(other)


class KeepWeightsBeforeReLU(tq.QuantizeLayoutTransform):
  """A scheme's layout transform, without LayerReLUQuantize's weight loss.

  See `qat`'s module docstring. A config the user gave the layer (its own
  annotation) is restored as it was.
  """

  def __init__(self, base):
    self._base = base

  def apply(self, model, layer_quantize_map):
    before = {name: meta.get("quantize_config")
              for name, meta in layer_quantize_map.items()}
    model, layer_quantize_map = self._base.apply(model, layer_quantize_map)
    for layer in model.layers:
      if type(layer).__name__ not in _WEIGHTED:
        continue
      meta = layer_quantize_map.get(layer.name)
      config = (meta or {}).get("quantize_config")
      original = before.get(layer.name)
      if (type(config).__name__ != "NoOpQuantizeConfig" or
          type(original).__name__ == "NoOpQuantizeConfig"):
        continue
      nodes = layer._outbound_nodes  # pylint: disable=protected-access
      consumers = [node.outbound_layer for node in nodes]
      if len(consumers) != 1 or (
          type(consumers[0]).__name__ not in _RELU_CONSUMERS):
        continue
      meta["quantize_config"] = original
      if getattr(layer.activation, "__name__", None) == "linear":
        # quantize_apply wraps this very layer object.
        layer.activation = _NoOpActivation()
    return model, layer_quantize_map


class KeepWeightsScheme(tq.QuantizeScheme):
  """A tfmot scheme with `KeepWeightsBeforeReLU` as its layout transform."""

  def __init__(self, base):
    self._base = base

  def get_layout_transformer(self):
    return KeepWeightsBeforeReLU(self._base.get_layout_transformer())

  def get_quantize_registry(self):
    return self._base.get_quantize_registry()
