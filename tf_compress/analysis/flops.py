"""Multiply-accumulate (MAC) counts of a Keras model, per layer and in total.

One MAC is one `a * b + c`. A layer's count is for one sample (batch size 1):

- Conv1D/2D/3D (grouped too): output positions x kernel size, where the
  kernel size `k_h * k_w * (in / groups) * filters` is the kernel's shape.
- Conv*Transpose: input positions x kernel size.
- DepthwiseConv1D/2D: output positions x `k_h * k_w * in * multiplier`.
- SeparableConv1D/2D: the depthwise part plus the 1x1 pointwise part.
- Dense: the positions of every axis but the last (a Dense on `(batch, t, f)`
  runs once per `t`) x `in * units`.
- Every other layer (BatchNormalization, pooling, activations, ...) counts 0.

tfmot pruning wrappers and other `Wrapper`s (TimeDistributed too) are seen
through to the layer inside, and nested models are counted layer by layer
with names like `"block/conv"`. Keras 3 and tf_keras models are counted the
same way; a Keras 3 model being pruned has no wrappers (its layers are
instrumented in place).
"""

import keras as keras3
import numpy as np

from tf_compress._keras import keras
from tf_compress.errors import UserInputError
from tf_compress.models.graph import check_any_model
from tf_compress.models.graph import graph_nodes
from tf_compress.models.graph import is_model
from tf_compress.models.graph import unwrap

__all__ = ["count_macs"]


def _classes(*names):
  """The layer classes of both Kerases named `names`.

  In Keras 3 the transposed, depthwise and separable convolutions are not
  subclasses of `Conv*D`, so each kind is tested explicitly.
  """
  return tuple(getattr(module.layers, name) for module in (keras, keras3)
               for name in names)


_SEPARABLE = _classes("SeparableConv1D", "SeparableConv2D")
_DEPTHWISE = _classes("DepthwiseConv1D", "DepthwiseConv2D")
_TRANSPOSE = _classes("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
_CONV = _classes("Conv1D", "Conv2D", "Conv3D")
_DENSE = _classes("Dense")


def count_macs(model):
  """Counts the multiply-accumulates of one forward pass of `model`.

  Args:
    model: a built Functional or Sequential model, of Keras 3 or tf_keras;
      tfmot pruning wrappers and nested models are seen through.

  Returns:
    A dict with `total` (int) and `per_layer`: a list, in graph order, of
    `{"layer": name, "type": class name, "macs": int}` for every layer but
    the inputs. A wrapped layer is listed under the wrapper's name with the
    wrapped layer's type; a nested model's layers as `"outer/inner"`.

  Raises:
    TypeError: for an object that is not a Keras model.
    UserInputError: for a subclassed model (whose layer shapes are not
      recorded) or a layer whose shape has unknown dimensions.

  Example:
    >>> count_macs(tf_compress.build_model("cnn", (8, 8, 1), 10))["total"]
    756992
  """
  check_any_model(model)
  per_layer = []
  _collect(model, "", per_layer)
  return {"total": int(sum(row["macs"] for row in per_layer)),
          "per_layer": per_layer}


def _collect(model, prefix, per_layer):
  rows = {}
  for node in graph_nodes(model):
    layer = node.layer
    inner = unwrap(layer)
    if is_model(inner):
      _collect(inner, f"{prefix}{layer.name}/", per_layer)
      continue
    macs = _node_macs(inner, node, f"{prefix}{layer.name}")
    name = f"{prefix}{layer.name}"
    if name in rows:  # A shared layer: count every call.
      rows[name]["macs"] += macs
    else:
      rows[name] = {"layer": name, "type": type(inner).__name__,
                    "macs": macs}
      per_layer.append(rows[name])


def _positions(shape, name, what, layer=None):
  channels_first = getattr(layer, "data_format", None) == "channels_first"
  dims = list(shape[2:] if channels_first else shape[1:-1])
  if any(d is None for d in dims):
    raise UserInputError(
        f"layer {name!r} has an {what} shape {tuple(shape)} with unknown "
        "dimensions, so its MACs cannot be counted; build the model with a "
        "fixed input size")
  return int(np.prod(dims, dtype=np.int64)) if dims else 1


def _size(variable):
  return int(np.prod(variable.shape, dtype=np.int64))


def _node_macs(layer, node, name):
  """MACs of one call of `layer` (already unwrapped) at `node`."""
  if not isinstance(layer, _CONV + _TRANSPOSE + _SEPARABLE + _DEPTHWISE +
                    _DENSE):
    return 0
  in_shape, out_shape = node.input_shapes, node.output_shapes
  if isinstance(layer, _SEPARABLE):
    return _positions(out_shape, name, "output", layer) * (
        _size(layer.depthwise_kernel) + _size(layer.pointwise_kernel))
  if isinstance(layer, _DEPTHWISE):
    # Keras 3 names the depthwise kernel `kernel`.
    kernel = getattr(layer, "depthwise_kernel", None)
    return _positions(out_shape, name, "output", layer) * _size(
        layer.kernel if kernel is None else kernel)
  if isinstance(layer, _TRANSPOSE):
    return _positions(in_shape, name, "input", layer) * _size(layer.kernel)
  if isinstance(layer, _CONV):
    return _positions(out_shape, name, "output", layer) * _size(layer.kernel)
  return _positions(in_shape, name, "input") * _size(layer.kernel)
