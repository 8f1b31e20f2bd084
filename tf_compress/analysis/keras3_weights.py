"""The weights of a Keras 3 model as deployed, pruning masks applied.

The Keras 3 pruning engine (`tf_compress.pruning.keras3_pruning`) gives each
pruned kernel a 0/1 mask variable, held by a pruner object that it attaches
to the pruned model. The masks are training state, like the masks of tfmot's
pruning wrappers: they are not parameters, and a pruned kernel counts the
non-zeros of `kernel * mask`. The analyses sit below the pruning package, so
the pruner is found by its attribute name and read by duck typing here
rather than imported. So is the QAT engine's `QATState` sublayer (its
fake-quant ranges and flags are training state too, not parameters).
"""

import keras
import numpy as np

__all__ = ["pruning_masks", "weight_values"]

# `keras3_pruning.PRUNER_ATTRIBUTE`: where a pruned model holds its pruner.
_PRUNER_ATTRIBUTE = "_tf_compress_pruner"
# `keras3_qat.QAT_STATE_ATTRIBUTE`: where a QAT layer holds its ranges.
_QAT_STATE_ATTRIBUTE = "_tf_compress_qat"


def _qat_state_ids(layer):
  """Ids of the QAT range variables in `layer` and below."""
  ids = set()
  for sub in _layers(layer):
    state = getattr(sub, _QAT_STATE_ATTRIBUTE, None)
    if state is not None:
      ids.update(id(v) for v in state.weights)
  return ids


def _layers(model):
  # pylint: disable-next=protected-access
  return model._flatten_layers(include_self=True, recursive=True)


def pruning_masks(model):
  """The pruning masks of `model` and of the models nested in it.

  Args:
    model: a Keras 3 model, pruned or not.

  Returns:
    `{id(kernel variable): mask variable}`; empty when nothing is pruned.
  """
  masks = {}
  for layer in _layers(model):
    pruner = getattr(layer, _PRUNER_ATTRIBUTE, None)
    # A target is `(path, layer, weight name, kernel variable, mask)`.
    for target in getattr(pruner, "targets", None) or ():
      masks[id(target[3])] = target[4]
  return masks


def weight_values(layer, masks):
  """`(variable, value)` of each weight of `layer`, as deployed.

  Args:
    layer: a Keras 3 layer or model.
    masks: `pruning_masks` of the model holding `layer`.

  Returns:
    A list in `layer.weights` order, without the mask variables and QAT
    ranges; a pruned kernel's value is `kernel * mask`.
  """
  mask_ids = {id(mask) for mask in masks.values()} | _qat_state_ids(layer)
  out = []
  for variable in layer.weights:
    if id(variable) in mask_ids:
      continue
    value = np.asarray(keras.ops.convert_to_numpy(variable))
    mask = masks.get(id(variable))
    if mask is not None:
      value = value * np.asarray(keras.ops.convert_to_numpy(mask),
                                 value.dtype)
    out.append((variable, value))
  return out
