"""Walking and copying Keras models: nested layers, graph or subclassed.

Pruning, quantization, slicing and the analyses need the same few things:
the leaf layers of a model that holds sub-models, whether Keras knows a
model's graph (Sequential, Functional) or only its code (subclassed), the
calls of a graph model in topological order, the layer inside a wrapper,
and a copy of a model that shares no layer or variable with it but holds
the same weights.

Layers are named by their path: `fc1` at the top level, `student/fc1` inside
a sub-model named `student`.

Everything here but `check_graph_model` (the tfmot engine's guard) takes
models of either Keras: Keras 3 (`import keras`) or tf_keras.
"""

import collections

import keras as keras3
# Keras 3 exports no Functional class; functional models are instances of it.
from keras.src.models.functional import Functional as _Keras3Functional

from tf_compress._keras import check_model
from tf_compress._keras import is_keras3_object
from tf_compress._keras import keras
from tf_compress.errors import ModelError
from tf_compress.errors import UserInputError

__all__ = ["is_model", "check_any_model", "is_graph_model",
           "check_graph_model", "iter_layers", "find_model", "graph_nodes",
           "unwrap", "copy_layer", "clone_with_weights", "Call"]

_MODELS = (keras.Model, keras3.Model)
_WRAPPERS = (keras.layers.Wrapper, keras3.layers.Wrapper)

# One call of a layer, as tf_keras' `Node` describes it: `input_shapes` and
# `output_shapes` are one shape tuple, or a list of them for several tensors.
# `node` is the Keras 3 `Node` itself (its tensors and arguments), for the
# analyses that follow tensors through the graph.
Call = collections.namedtuple("Call", "layer input_shapes output_shapes node",
                              defaults=(None,))


def is_model(obj):
  """True for a Keras model of either Keras (Keras 3 or tf_keras)."""
  return isinstance(obj, _MODELS)


def check_any_model(model, argument="model"):
  """Raises `TypeError` unless `model` is a Keras 3 or a tf_keras model.

  The guard of the functions that need no tfmot (statistics, saving);
  `tf_compress.check_model` is the tfmot engine's, for tf_keras only.

  Args:
    model: the object handed to a public function.
    argument: the name of that function's argument, for the message.

  Returns:
    `model`, unchanged.

  Raises:
    TypeError: for an object that is not a Keras model.
  """
  if is_model(model):
    return model
  raise TypeError(f"`{argument}` must be a Keras 3 or tf_keras Model, got "
                  f"{type(model).__name__}.")


def is_graph_model(model):
  """True for Sequential and Functional models (whose graph Keras knows)."""
  if is_keras3_object(model):
    return isinstance(model, (keras3.Sequential, _Keras3Functional))
  return isinstance(model, keras.Sequential) or getattr(
      model, "_is_graph_network", False)


def check_graph_model(model, what, advice=None):
  """Checks that `model` is a tf_keras Sequential or Functional model.

  Args:
    model: the caller's model.
    what: the public function's name, for the message.
    advice: None, or what the user can do, appended to the message after
      the model's class name.

  Returns:
    `model`, unchanged.

  Raises:
    TypeError: for a Keras 3 model or an object that is not a model.
    ModelError: for a subclassed model.
  """
  check_model(model)
  if is_graph_model(model):
    return model
  message = (f"{what} needs a Sequential or Functional model, got the "
             f"subclassed model {model.name!r}")
  if advice:
    message += f" ({type(model).__name__}), {advice}"
  raise ModelError(message)


def iter_layers(model, prefix="", into_subclassed=True):
  """Yields `(path, layer)` for every leaf layer of `model`, in order.

  A layer reached twice (a shared sub-model) is yielded once per model that
  lists it, but once only within one model.

  Args:
    model: a Keras model.
    prefix: path prefix for the names.
    into_subclassed: also descend into subclassed sub-models (their tracked
      layers); when False, such a sub-model is yielded as a leaf.

  Example:
    >>> [path for path, _ in iter_layers(outer)]
    ['student/fc1', 'student/fc2', 'head']
  """
  seen = set()
  for layer in model.layers:
    if id(layer) in seen:
      continue
    seen.add(id(layer))
    if is_model(layer) and (into_subclassed or is_graph_model(layer)):
      yield from iter_layers(layer, f"{prefix}{layer.name}/", into_subclassed)
    else:
      yield f"{prefix}{layer.name}", layer


def unwrap(layer):
  """Returns the layer inside tfmot (or other) `Wrapper`s of `layer`.

  tfmot's pruning, clustering and QAT wrappers, and `TimeDistributed`, are
  `keras.layers.Wrapper`s (of tf_keras or of Keras 3); nested wrappers are
  all seen through.
  """
  while isinstance(layer, _WRAPPERS) and hasattr(layer, "layer"):
    layer = layer.layer
  return layer


def find_model(model, cls):
  """The first model of class `cls` in `model`: itself, or nested in it.

  Searched depth first: the model a training harness trains (its
  `base_model`, as an `AdversarialModel` holds a `Distiller`), then the
  sub-models among its layers. Callbacks use it to find the harness they
  drive inside whatever model `fit` runs.

  Args:
    model: a Keras model.
    cls: the model class to look for.

  Returns:
    The model found, or None.
  """
  if isinstance(model, cls):
    return model
  inner = [getattr(model, "base_model", None)]
  for layer in inner + list(getattr(model, "layers", [])):
    if is_model(layer):
      found = find_model(layer, cls)
      if found is not None:
        return found
  return None


def graph_nodes(model):
  """Yields the non-input nodes of a graph model in topological order.

  A tf_keras model yields its own `Node`s; a Keras 3 model yields `Call`s,
  which have the same `layer`, `input_shapes` and `output_shapes`, and the
  Keras 3 `node` itself. A Keras 3 `layer` may be an op (`x + 1.0`).

  Raises:
    UserInputError: when `model` is not a Functional/Sequential graph.
  """
  if is_keras3_object(model):
    yield from _keras3_nodes(model)
    return
  if not getattr(model, "_is_graph_network", False):
    raise _not_a_graph(model)
  nodes_by_depth = model._nodes_by_depth  # pylint: disable=protected-access
  for depth in sorted(nodes_by_depth, reverse=True):
    for node in nodes_by_depth[depth]:
      if not node.is_input:
        yield node


def _not_a_graph(model):
  return UserInputError(
      f"model {model.name!r} ({type(model).__name__}) is not a built "
      "Functional or Sequential model, so its layer graph is unknown; "
      "build it with `keras.Input` (functionally or in a Sequential)")


def _shapes(tensors):
  shapes = [tuple(t.shape) for t in tensors]
  return shapes[0] if len(shapes) == 1 else shapes


def _keras3_nodes(model):
  # A built Keras 3 Sequential keeps its graph in a Functional of its own.
  graph = (getattr(model, "_functional", None)
           if isinstance(model, keras3.Sequential) else model)
  if not isinstance(graph, _Keras3Functional):
    raise _not_a_graph(model)
  nodes_by_depth = graph._nodes_by_depth  # pylint: disable=protected-access
  for depth in sorted(nodes_by_depth, reverse=True):
    for node in nodes_by_depth[depth]:
      if not node.is_input:
        yield Call(node.operation, _shapes(node.input_tensors),
                   _shapes(node.output_tensors), node)


def copy_layer(layer):
  """A new layer like `layer`, built by its own class from its config.

  A `clone_function` for `keras.models.clone_model`. Keras' default clone
  rebuilds a nested model from its config, which needs every custom layer
  class inside to be registered; this clones nested Sequential and
  Functional models layer by layer instead, with the classes themselves.

  Args:
    layer: a built or unbuilt layer or graph sub-model, of either Keras.

  Returns:
    The new layer (or model), without weights.
  """
  if is_model(layer) and is_graph_model(layer):
    return _clone_model(layer, clone_function=copy_layer)
  return layer.__class__.from_config(layer.get_config())


def clone_with_weights(model, clone_function=None, what=None):
  """A copy of `model` with new layers and variables and the same weights.

  Args:
    model: a Sequential or Functional model of either Keras (a subclassed
      Keras 3 model too, when its class serializes).
    clone_function: builds each new layer from the old one, as for
      `keras.models.clone_model`, keeping the weights' order (e.g.
      `copy_layer`); None uses Keras' default, which rebuilds layers from
      their serialized configs.
    what: None lets Keras' error through when the model cannot be cloned;
      otherwise the operation the copy is made for (`"pruning"`), named in
      a `ModelError`.

  Returns:
    The new, uncompiled model.

  Raises:
    ModelError: with `what`, when the model cannot be cloned (a custom
      layer without a complete `get_config`, a subclassed model).

  Example:
    >>> copy = clone_with_weights(model, copy_layer, what="pruning")
    >>> copy.layers[1] is model.layers[1]
    False
  """
  try:
    copy = _clone_model(model, clone_function=clone_function)
  except Exception as exc:  # pylint: disable=broad-except
    if what is None:
      raise
    raise ModelError(
        f"could not copy model {model.name!r} before {what} "
        f"({type(exc).__name__}: {exc}); every custom layer needs a "
        "get_config() returning its constructor arguments") from None
  copy.set_weights(model.get_weights())
  return copy


def _clone_model(model, clone_function=None):
  """`clone_model` of the model's own Keras."""
  if is_keras3_object(model):
    return keras3.models.clone_model(model, clone_function=clone_function)
  return keras.models.clone_model(model, clone_function=clone_function)
