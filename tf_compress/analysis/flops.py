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
with names like `"block/conv"`.
"""

import numpy as np

from tf_compress._keras import check_model
from tf_compress._keras import keras
from tf_compress.errors import UserInputError
from tf_compress.models.graph import graph_nodes
from tf_compress.models.graph import unwrap

__all__ = ["count_macs"]

_SEPARABLE = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
_DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
_TRANSPOSE = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
              keras.layers.Conv3DTranspose)
_CONV = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)


def count_macs(model):
  """Counts the multiply-accumulates of one forward pass of `model`.

  Args:
    model: a built tf_keras Functional or Sequential model; tfmot pruning
      wrappers and nested models are seen through.

  Returns:
    A dict with `total` (int) and `per_layer`: a list, in graph order, of
    `{"layer": name, "type": class name, "macs": int}` for every layer but
    the inputs. A wrapped layer is listed under the wrapper's name with the
    wrapped layer's type; a nested model's layers as `"outer/inner"`.

  Raises:
    TypeError: for a Keras 3 model or a non-model.
    UserInputError: for a subclassed model (whose layer shapes are not
      recorded) or a layer whose shape has unknown dimensions.

  Example:
    >>> count_macs(tf_compress.build_model("cnn", (8, 8, 1), 10))["total"]
    756992
  """
  check_model(model)
  per_layer = []
  _collect(model, "", per_layer)
  return {"total": int(sum(row["macs"] for row in per_layer)),
          "per_layer": per_layer}


def _collect(model, prefix, per_layer):
  rows = {}
  for node in graph_nodes(model):
    layer = node.layer
    inner = unwrap(layer)
    if isinstance(inner, keras.Model):
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
  if not isinstance(layer, _CONV + _SEPARABLE + _DEPTHWISE +
                    (keras.layers.Dense,)):
    return 0
  in_shape, out_shape = node.input_shapes, node.output_shapes
  if isinstance(layer, _SEPARABLE):
    return _positions(out_shape, name, "output", layer) * (
        _size(layer.depthwise_kernel) + _size(layer.pointwise_kernel))
  if isinstance(layer, _DEPTHWISE):
    return _positions(out_shape, name, "output", layer) * _size(
        layer.depthwise_kernel)
  if isinstance(layer, _TRANSPOSE):
    return _positions(in_shape, name, "input", layer) * _size(layer.kernel)
  if isinstance(layer, _CONV):
    return _positions(out_shape, name, "output", layer) * _size(layer.kernel)
  return _positions(in_shape, name, "input") * _size(layer.kernel)
