"""`QATFreezeCallback`: freeze quantization ranges and BatchNorm statistics.

Late in quantization-aware training, the ranges that tfmot's fake-quant ops
learn (min/max variables: moving averages for activations, last values for
weights) and BatchNormalization's moving statistics are usually frozen, so
that the last epochs fine-tune the weights against fixed quantization
parameters, as the exported int8 model will use them.

How. tfmot's quantizers update their range variables only when called with
`training=True`. From the chosen epoch, the callback hands every quantizer
of the model's quantize wrappers and input quantize layers to a
`FrozenRangeQuantizer`, which calls it with `training=False`: the
fake-quant ops keep quantizing (with the stored ranges) and passing
gradients, and the ranges stop changing. BatchNormalization layers are set
`trainable=False`, which in Keras 2 runs them in inference mode (moving
statistics fixed; gamma and beta stop training too; the order of the
model's `weights` is unchanged, so checkpoints still load). The compiled
training function is then rebuilt so that the next step runs the frozen
graph. At
the end of `fit` everything is put back as it was, so a model saved after
training is a plain tfmot model, and a later `fit` without the callback
trains as before.

One exception: the weight quantizers of cluster-preserving QAT (CQAT) also
re-cluster the kernel when `training=True`, so they are left alone, and
those kernels' ranges keep following the (clustered) kernels.
"""

import numbers

import importlib

from absl import logging

from tf_compress._keras import is_keras3_object, keras, register
from tf_compress._tfmot import tfmot_is_imported
from tf_compress.errors import ModelError, UserInputError
from tf_compress.quantization import keras3_qat
from tf_compress.quantization.qat import find_quantizers

__all__ = ["QATFreezeCallback", "FrozenRangeQuantizer"]

# Quantizers whose `training` flag does more than update ranges.
_TRAINING_SENSITIVE = ("ClusterPreserveDefaultWeightsQuantizer",)


def _frozen_class():
  """`FrozenRangeQuantizer` (it subclasses tfmot's, so it imports tfmot)."""
  module = importlib.import_module("tf_compress.quantization.tfmot_qat_classes")
  return module.FrozenRangeQuantizer


def __getattr__(name):
  if name == "FrozenRangeQuantizer":
    return _frozen_class()
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _freezable(quantizer):
  if quantizer is None or isinstance(quantizer, _frozen_class()):
    return False
  return not any(base.__name__ in _TRAINING_SENSITIVE
                 for base in type(quantizer).__mro__)


def _batchnorm_layers(model):
  """`[(batchnorm, quantize wrapper or None)]` of `model`."""
  found = []
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      found.append((layer, None))
    elif isinstance(getattr(layer, "layer", None),
                    keras.layers.BatchNormalization):
      found.append((layer.layer, layer))
  return found


@register
class QATFreezeCallback(keras.callbacks.Callback):
  """Freezes QAT ranges and BatchNorm statistics from a chosen epoch.

  From the start of epoch `freeze_epoch` (0-based; `freeze_epoch` epochs
  train with live ranges) the quantization ranges stop updating and
  BatchNormalization runs in inference mode (see the module docstring).
  `logs["qat_frozen"]` is 1.0 for the epochs trained frozen and 0.0 before,
  and the freeze is logged (absl, and printed when `verbose`). With
  `freeze_epoch=0` the ranges tfmot initialised are never trained: only
  use that to resume a model whose ranges were trained already. If the
  BatchNorm moving statistics still lag behind the batch statistics (a
  short float training), the loss jumps in the first frozen epoch, then
  falls: from then on training computes what inference computes.

  Args:
    freeze_epoch: the first epoch to train frozen, an integer >= 0.
    verbose: print a line when freezing.

  Raises:
    UserInputError: `freeze_epoch` is not an integer >= 0.
    ModelError: (from `set_model`) the model has no quantize wrappers.

  Example:
    >>> qat = quantize_model(model)
    >>> qat.compile(...)
    >>> history = qat.fit(data, epochs=4, callbacks=[QATFreezeCallback(2)])
    >>> history.history["qat_frozen"]
    [0.0, 0.0, 1.0, 1.0]
  """

  def __init__(self, freeze_epoch, verbose=False):
    super().__init__()
    if (isinstance(freeze_epoch, bool) or
        not isinstance(freeze_epoch, numbers.Integral) or freeze_epoch < 0):
      raise UserInputError(
          f"QATFreezeCallback freeze_epoch must be an integer >= 0, got "
          f"{freeze_epoch!r}")
    self.freeze_epoch = int(freeze_epoch)
    self.verbose = bool(verbose)
    self._restore = []
    self.frozen = False
    self._keras3 = False

  def set_model(self, model):
    super().set_model(model)
    self._keras3 = is_keras3_object(model)
    if self._keras3:
      if not keras3_qat.keras3_qat_states(model):
        raise ModelError(
            f"QATFreezeCallback: Keras 3 model {model.name!r} is not "
            "quantization-aware; make it so first with "
            "tf_compress.quantization.quantize_model")
      return
    wrappers, inputs = find_quantizers(model)
    if not wrappers and not inputs:
      raise ModelError(
          f"QATFreezeCallback: model {model.name!r} has no quantize "
          "wrappers; make it quantization-aware first with "
          "tf_compress.quantization.quantize_model")

  def on_train_begin(self, logs=None):
    if self._keras3:
      # A checkpoint saved while frozen holds frozen flags; freezing is this
      # callback's job, so start from live ranges.
      keras3_qat.freeze_keras3_qat(self.model, frozen=False)
      return
    # A checkpoint saved while frozen loads with frozen input quantizers;
    # freezing is this callback's job, so start from live ranges.
    for layer in find_quantizers(self.model)[1]:
      if isinstance(layer.quantizer, _frozen_class()):
        layer.quantizer = layer.quantizer.quantizer

  def _freeze(self):
    """Swaps in frozen quantizers; records how to undo it."""
    if self._keras3:
      # The flags are variables that the compiled step reads: no retrace,
      # except for a BatchNormalization that was not folded.
      keras3_qat.freeze_keras3_qat(self.model, frozen=True)
      self.frozen = True
      if keras3_qat.unfolded_batch_norms(self.model):
        self._rebuild()
      return
    undo = []
    wrappers, inputs = find_quantizers(self.model)
    # pylint: disable=protected-access
    for wrapper in wrappers:
      weight_vars = list(wrapper._weight_vars)
      wrapper._weight_vars = [
          (w, _frozen_class()(q) if _freezable(q) else q, v)
          for w, q, v in weight_vars]
      undo.append((wrapper, "_weight_vars", weight_vars))
      for activation in wrapper._quantize_activations:
        if _freezable(activation.quantizer):
          undo.append((activation, "quantizer", activation.quantizer))
          activation.quantizer = _frozen_class()(activation.quantizer)
      outputs = list(getattr(wrapper, "_output_quantizers", None) or [])
      if outputs:
        wrapper._output_quantizers = [
            _frozen_class()(q) if _freezable(q) else q for q in outputs]
        undo.append((wrapper, "_output_quantizers", outputs))
    # pylint: enable=protected-access
    for layer in inputs:
      if _freezable(layer.quantizer):
        undo.append((layer, "quantizer", layer.quantizer))
        layer.quantizer = _frozen_class()(layer.quantizer)
    for layer, wrapper in _batchnorm_layers(self.model):
      if not layer.trainable:
        continue
      if wrapper is not None:
        # QuantizeWrapperV2 lists its layer's trainable weights as its own
        # too: left there, gamma and beta would still train, and would be
        # listed twice in `weights` (breaking .h5 checkpoints).
        # pylint: disable=protected-access
        own = list(wrapper._trainable_weights)
        moved = {id(w) for w in layer.trainable_weights}
        wrapper._trainable_weights = [w for w in own if id(w) not in moved]
        # pylint: enable=protected-access
        undo.append((wrapper, "_trainable_weights", own))
      undo.append((layer, "trainable", True))
      layer.trainable = False
    self._restore = undo
    self.frozen = True
    self._rebuild()

  def _rebuild(self):
    # fit() looks `train_function` up at every step, so the next step runs
    # the graph traced now.
    self.model.train_function = None
    self.model.make_train_function(force=True)

  def _unfreeze(self):
    if self._keras3:
      keras3_qat.freeze_keras3_qat(self.model, frozen=False)
      self.frozen = False
      self.model.train_function = None
      return
    for obj, name, value in reversed(self._restore):
      setattr(obj, name, value)
    self._restore = []
    self.frozen = False
    # The next fit() traces again, with live ranges.
    self.model.train_function = None

  def on_epoch_begin(self, epoch, logs=None):
    if epoch >= self.freeze_epoch and not self.frozen:
      self._freeze()
      message = (f"QATFreezeCallback: froze quantization ranges and "
                 f"BatchNorm statistics at epoch {epoch}")
      logging.info(message)
      if self.verbose:
        print(message)

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None:
      logs["qat_frozen"] = 1.0 if self.frozen else 0.0

  def on_train_end(self, logs=None):
    if self.frozen:
      self._unfreeze()

  def get_config(self):
    return {"freeze_epoch": self.freeze_epoch, "verbose": self.verbose}

  @classmethod
  def from_config(cls, config):
    return cls(**config)
