"""A kernel source: what a layer's forward pass uses instead of its kernel.

The Keras 3 clustering engine (a `ClusterState`: centroids and indices) and
prune-preserving QAT (a fixed mask of the zeros) change the kernel a layer
computes with, not the layer: the source is put on the layer at
`keras3_qat.KERNEL_SOURCE_ATTRIBUTE`, and the layer's own `call` runs inside
a `keras.StatelessScope` that maps the kernel variable to
`source.forward_kernel(variable)`. Any layer's call works unchanged that
way (Dense, convolutions, Embedding...), and gradients flow through the
source's tensor to its variables. A layer the QAT engine instrumented reads
the source in its own call instead.

A source has `weight_name` (the attribute of the variable it stands in
for), `forward_kernel(variable)` and `weights` (its own variables; a
source that is a Keras layer is tracked as a sublayer, so they are saved
with the model).
"""

import keras
from keras import ops
import numpy as np

from tf_compress.quantization.keras3_qat import KERNEL_SOURCE_ATTRIBUTE
from tf_compress.quantization.keras3_qat import QATState

__all__ = ["attach_kernel_source", "detach_kernel_source", "plain_weights",
           "reset_compiled_functions", "KERNEL_SOURCE_ATTRIBUTE"]

_PLAIN_CALL = "_tf_compress_source_call"
_QAT_CALL = "_tf_compress_qat_call"  # where keras3_qat keeps the float call


def _set_tracked(layer, name, value):
  tracker = getattr(layer, "_tracker", None)
  locked = bool(getattr(tracker, "locked", False))
  if locked:
    tracker.unlock()
  try:
    setattr(layer, name, value)
  finally:
    if locked:
      tracker.lock()


def _source_call(layer, original):
  """`original` (the layer's call) run with the kernel the source gives."""

  def call(*args, **kwargs):
    source = getattr(layer, KERNEL_SOURCE_ATTRIBUTE)
    variable = getattr(layer, source.weight_name)
    own = {id(v) for v in source.weights}
    others = [v for v in layer.variables
              if v is not variable and id(v) not in own]
    # The other variables are mapped too: under JAX the scope of the train
    # step holds their values, which a new scope would not see.
    mapping = [(variable, source.forward_kernel(variable))] + [
        (v, v.value) for v in others]
    with keras.StatelessScope(mapping) as scope:
      before = {id(v): scope.get_current_value(v) for v in others}
      outputs = original(*args, **kwargs)
    for v in others:  # what the call assigned, applied outside the scope
      value = scope.get_current_value(v)
      if value is not before[id(v)]:
        v.assign(value)
    return outputs

  return call


def attach_kernel_source(layer, source):
  """Makes `layer` compute with `source.forward_kernel(weight)`, in place.

  `source` has `weight_name`, `forward_kernel(variable)` and `weights`; a
  Keras layer (`ClusterState`) is tracked as a sublayer, so its variables
  are saved with the model. A layer the QAT engine instrumented reads the
  source itself; its float call (restored by `strip_quantization`) is
  wrapped too.
  """
  if isinstance(source, keras.layers.Layer):
    _set_tracked(layer, KERNEL_SOURCE_ATTRIBUTE, source)
  else:
    object.__setattr__(layer, KERNEL_SOURCE_ATTRIBUTE, source)
  where = _QAT_CALL if hasattr(layer, _QAT_CALL) else "call"
  original = getattr(layer, where)
  wrapped = _source_call(layer, original)
  object.__setattr__(layer, _PLAIN_CALL, (original, wrapped,
                                          "call" in layer.__dict__))
  object.__setattr__(layer, where, wrapped)


def detach_kernel_source(layer):
  """Writes the source's kernel into the weight and removes the source.

  Returns:
    The source removed, or None.
  """
  source = getattr(layer, KERNEL_SOURCE_ATTRIBUTE, None)
  if source is None:
    return None
  variable = getattr(layer, source.weight_name)
  variable.assign(source.forward_kernel(variable))
  original, wrapped, had_own_call = getattr(layer, _PLAIN_CALL)
  if getattr(layer, _QAT_CALL, None) is wrapped:
    object.__setattr__(layer, _QAT_CALL, original)
  elif layer.__dict__.get("call") is wrapped:
    if had_own_call:
      object.__setattr__(layer, "call", original)
    else:
      del layer.__dict__["call"]
  object.__delattr__(layer, _PLAIN_CALL)
  restore = getattr(source, "kernel_trainable", None)
  if restore is not None:
    variable.trainable = restore
  tracker = getattr(layer, "_tracker", None)
  if isinstance(source, keras.layers.Layer) and tracker is not None:
    tracker.untrack(source)
  object.__delattr__(layer, KERNEL_SOURCE_ATTRIBUTE)
  return source


def reset_compiled_functions(model):
  """Makes `fit`, `evaluate` and `predict` trace `model` again.

  A model changed in place may have been compiled and run before.
  """
  for name in ("train_function", "test_function", "predict_function"):
    if getattr(model, name, None) is not None:
      setattr(model, name, None)


def plain_weights(model):
  """The values for a plain copy of `model` (`clone_model`), in order.

  Returns:
    `model.weights` as numpy arrays, without the variables of kernel
    sources and `QATState`s; a weight with a kernel source holds the
    kernel its forward pass uses.
  """
  skip = set()
  values = {}
  # pylint: disable-next=protected-access
  for layer in model._flatten_layers(include_self=False):
    if isinstance(layer, QATState):
      skip.update(id(v) for v in layer.weights)
    source = getattr(layer, KERNEL_SOURCE_ATTRIBUTE, None)
    if source is not None:
      skip.update(id(v) for v in source.weights)
      variable = getattr(layer, source.weight_name)
      values[id(variable)] = source.forward_kernel(variable)
  return [np.asarray(ops.convert_to_numpy(values.get(id(v), v)))
          for v in model.weights if id(v) not in skip]
