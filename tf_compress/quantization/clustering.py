"""Weight clustering: at most N distinct values per kernel (both engines).

A Keras 3 model goes to the native engine (`keras3_clustering`: no tfmot;
Sequential, Functional, subclassed and nested models). For a tf_keras
model, `cluster_model` copies the caller's model and wraps the chosen
layers with tfmot's `ClusterWeights`: each clusterable weight (the kernel of Conv and
Dense layers, an Embedding's table, a SeparableConv's pointwise kernel) is
replaced by `num_clusters` shared centroids, fine-tuned in training. After
`strip_clustering`, each such weight holds at most `num_clusters` distinct
values, which is what makes the exported file compress well (gzip) and what
int8 quantization keeps: with per-channel scales, N centroids become at
most N int8 values per output channel.

Layers clustered: the built-in layers in tfmot's clustering registry that
have a weight to cluster, and custom layers implementing
`tfmot.clustering.keras.ClusterableLayer`. A weight with no more elements
than `num_clusters` already has at most that many values, so its layer is
left alone (as tfmot does for small Conv2D kernels). Recurrent and
attention layers are not handled here.
"""

import collections.abc

import numpy as np

from tf_compress._keras import check_model, is_keras3_object, keras
from tf_compress._tfmot import is_tfmot_instance
from tf_compress._tfmot import lazy
from tf_compress._tfmot import tfmot
from tf_compress.errors import ModelError, UserInputError
from tf_compress.models.graph import check_graph_model
from tf_compress.models.persistence import load_tfmot_model
from tf_compress.models.persistence import saved_by_keras3
from tf_compress.quantization import keras3_clustering
from tf_compress.quantization.qat import check_plain_model
from tf_compress.quantization.qat import copy_model
from tf_compress.quantization.qat import layer_filter

__all__ = ["CLUSTER_INITS", "cluster_model", "strip_clustering",
           "unique_values_per_layer", "find_clustering_wrappers",
           "load_clustered_model"]

# tfmot, looked up on first use (only tf_keras models need it). It exports
# neither the wrapper class, nor the registry's weight table, nor (in its
# public API) the cluster_weights that preserves sparsity.
_Init = lazy("clustering.keras.CentroidInitialization")
ClusterWeights = lazy(
    "python.core.clustering.keras.cluster_wrapper:ClusterWeights")
experimental_cluster = lazy("python.core.clustering.keras.experimental.cluster:"
                            "cluster_weights")
_REGISTRY = lazy(
    "python.core.clustering.keras.clustering_registry:ClusteringRegistry")
_INIT_MEMBERS = {"kmeans++": "KMEANS_PLUS_PLUS", "linear": "LINEAR",
                 "density": "DENSITY_BASED", "random": "RANDOM"}


class _Inits(collections.abc.Mapping):
  """Our names of tfmot's `CentroidInitialization` members (read lazily)."""

  def __getitem__(self, name):
    return getattr(_Init.resolve(), _INIT_MEMBERS[name])

  def __iter__(self):
    return iter(_INIT_MEMBERS)

  def __len__(self):
    return len(_INIT_MEMBERS)


CLUSTER_INITS = _Inits()


_check_num_clusters = keras3_clustering.check_num_clusters


def _check_init(init):
  if is_tfmot_instance(init, _Init):
    return init
  return CLUSTER_INITS[keras3_clustering.check_init(init)]


def clusterable_weights(layer):
  """`[(name, variable)]` that clustering would share out in `layer`.

  Returns:
    The list (empty for layers with nothing to cluster, such as ReLU,
    BatchNormalization or DepthwiseConv2D), or None for a layer with
    trainable weights that tfmot cannot cluster (a custom layer).
  """
  if is_tfmot_instance(layer, ClusterWeights):
    layer = layer.layer
  if isinstance(layer, tfmot.clustering.keras.ClusterableLayer):
    return list(layer.get_clusterable_weights())
  # pylint: disable-next=protected-access
  names = _REGISTRY._LAYERS_WEIGHTS_MAP.get(type(layer))
  if names is None:
    return None if layer.trainable_weights else []
  if not layer.trainable_weights:
    return []
  return [(name, getattr(layer, name)) for name in names]


def _unclusterable(layer):
  return ModelError(
      f"layer {layer.name!r} ({type(layer).__name__}) was selected for "
      "clustering, but tfmot cannot cluster it: implement "
      "tfmot.clustering.keras.ClusterableLayer (get_clusterable_weights() "
      "returning [(name, kernel)]), or leave it out with `layers` (name "
      "patterns) or `layer_types`")


def _values_to_cluster(weight, preserve_sparsity):
  if preserve_sparsity:
    return int(np.count_nonzero(weight.numpy()))
  return int(np.prod(weight.shape))


def cluster_model(model, num_clusters, init="kmeans++", layers=None,
                  layer_types=None, preserve_sparsity=False):
  """Returns a copy of `model` whose chosen layers tfmot clusters in training.

  The caller's model and its weights are never changed. Fine-tune the
  result (an epoch or two at a low learning rate), then `strip_clustering`
  it for export.

  A Keras 3 model gets the native engine (`keras3_clustering`): a
  Sequential or Functional model is copied, a subclassed one is clustered
  in place (and returned); nested models are walked. Its clustered weights
  are the kernels of Dense, Conv1D/2D/3D and DepthwiseConv2D, the
  pointwise kernels of SeparableConv1D/2D and Embedding tables; indices are
  re-assigned at every step, as tfmot does.

  Args:
    model: a trained, built tf_keras Sequential or Functional model (no
      nested models, no tfmot wrappers), or a built Keras 3 model.
    num_clusters: distinct values per clustered weight, an integer >= 2.
    init: centroid initialization, one of `CLUSTER_INITS`: `kmeans++`,
      `linear` (evenly spaced between min and max), `density` (evenly
      spaced in the weights' cumulative distribution) or `random`.
    layers: None (all clusterable layers), or regular expressions matching
      the whole names of the layers to cluster.
    layer_types: None (all), or class names such as `["Dense"]`.
    preserve_sparsity: keep the zeros of a pruned model (one centroid is
      held at 0 and zero weights stay zero); see
      `collaborative.prune_then_cluster`.

  Returns:
    A new, uncompiled `keras.Model` with tfmot `ClusterWeights` wrappers;
    for Keras 3, the instrumented copy (or model).

  Raises:
    UserInputError: `num_clusters` < 2, an unknown `init`, or a bad
      selection.
    ModelError: the model cannot be wrapped, a chosen layer cannot be
      clustered, or none is chosen.
  """
  if is_keras3_object(model):
    return keras3_clustering.cluster_keras3_model(
        model, num_clusters, init, layers, layer_types, preserve_sparsity)
  check_plain_model(model, "cluster_model")
  num_clusters = _check_num_clusters(num_clusters)
  centroid_init = _check_init(init)
  chosen = layer_filter(layers, layer_types)
  copy = copy_model(model, "cluster_model")
  wrap_ids = set()
  for layer in copy.layers:
    if isinstance(layer, keras.layers.InputLayer) or not chosen(layer):
      continue
    weights = clusterable_weights(layer)
    if weights is None:
      raise _unclusterable(layer)
    # A weight with no more values to cluster than clusters already holds
    # at most that many distinct values; tfmot's k-means++ also cannot seed
    # more centroids than points. With preserve_sparsity the zeros are not
    # clustered, so only the non-zero values count.
    if any(_values_to_cluster(w, preserve_sparsity) > num_clusters
           for _, w in weights):
      wrap_ids.add(id(layer))
  if not wrap_ids:
    raise ModelError(
        f"no layer of model {model.name!r} is selected for clustering "
        f"({chosen.description}, with weights of more than {num_clusters} "
        "elements); widen the selection")

  def wrap(layer):
    if id(layer) not in wrap_ids:
      return layer
    return experimental_cluster(
        layer, num_clusters, centroid_init,
        preserve_sparsity=bool(preserve_sparsity))

  return keras.models.clone_model(copy, clone_function=wrap)


def find_clustering_wrappers(model):
  """The clustered layers of `model`, in model order.

  Returns:
    For a tf_keras model, tfmot's `ClusterWeights` wrappers; for a Keras 3
    model, the layers holding a `keras3_clustering.ClusterState` (nested
    ones included).
  """
  if is_keras3_object(model):
    return keras3_clustering.find_keras3_clustered_layers(model)
  return [layer for layer in model.layers
          if is_tfmot_instance(layer, ClusterWeights)]


def strip_clustering(model):
  """Returns a plain Keras copy of a clustered model, for export.

  tfmot's `strip_clustering` puts the clustered values in the kernels (it
  refreshes each wrapper's cluster assignments first; the wrappers'
  variables are restored afterwards, so `model` is left as it was); the
  result is copied again, so it shares no layer or variable with `model`.
  A Keras 3 Sequential or Functional model is copied the same way; a
  subclassed one is stripped in place (and returned).

  Args:
    model: a Sequential or Functional model with clustering wrappers (a
      model without any is simply copied), or a Keras 3 model.

  Returns:
    A new, uncompiled `keras.Model` with the original layer classes, each
    clustered weight holding the centroids its indices point to: at most
    `num_clusters` distinct values (0 among them with `preserve_sparsity`).

  Raises:
    ModelError: for a subclassed tf_keras model.
  """
  if is_keras3_object(model):
    return keras3_clustering.strip_keras3_clustering(model)
  check_graph_model(model, "strip_clustering")
  wrappers = find_clustering_wrappers(model)
  variables = [v for wrapper in wrappers for v in wrapper.variables]
  saved = keras.backend.batch_get_value(variables)
  try:
    shared = tfmot.clustering.keras.strip_clustering(model)
  finally:
    keras.backend.batch_set_value(list(zip(variables, saved)))
  return copy_model(shared, "strip_clustering")


def unique_values_per_layer(model):
  """Distinct values of each clusterable weight of `model`.

  Args:
    model: a clustered model (with wrappers: counted on what
      `strip_clustering` would export) or a plain one.

  Returns:
    A list of dicts, one per clusterable weight in model order: `layer`
    (the layer's name, without tfmot's `cluster_` prefix; for Keras 3 its
    path, `inner/conv` in a nested model), `weight` (its attribute name,
    e.g. `kernel`), `size` (elements) and `unique` (distinct values).
    Layers the engine cannot cluster are not listed.

  Raises:
    ModelError: for a subclassed tf_keras model.
  """
  if is_keras3_object(model):
    return keras3_clustering.keras3_unique_rows(model)
  check_model(model)
  if find_clustering_wrappers(model):
    model = strip_clustering(model)
  rows = []
  for layer in model.layers:
    if isinstance(layer, keras.Model):
      continue
    for name, weight in clusterable_weights(layer) or []:
      values = keras.backend.get_value(weight)
      rows.append({"layer": layer.name, "weight": name,
                   "size": int(values.size),
                   "unique": int(np.unique(values).size)})
  return rows


def load_clustered_model(path, num_clusters=None, layers=None,
                         layer_types=None, preserve_sparsity=False,
                         safe_mode=True):
  """Loads a clustered model saved mid-training (centroids included).

  A `.keras` file saved by Keras 3 is loaded by the native engine
  (`keras3_clustering.load_keras3_clustered_model`): clustered again with
  the arguments it was clustered with, then given its saved weights and
  centroids. Other files are read by `tf_compress.models.load_tfmot_model`
  (tfmot's wrappers are in the file's config).

  Args:
    path: the saved model.
    num_clusters: Keras 3 only (required): as given to `cluster_model`.
    layers: Keras 3 only: as given to `cluster_model`.
    layer_types: Keras 3 only: as given to `cluster_model`.
    preserve_sparsity: Keras 3 only: as given to `cluster_model`.
    safe_mode: refuse files that would run code on loading, `.h5` ones
      included (see `tf_compress.load_model`).

  Returns:
    The clustered model. A Keras 3 graph model comes back uncompiled and
    without its optimizer state: compile it again to train on.

  Raises:
    UserInputError: a Keras 3 file without `num_clusters`.
    ModelError: the file is missing or corrupt, or its clusters do not
      match the arguments.
  """
  if saved_by_keras3(path):
    if num_clusters is None:
      raise UserInputError(
          f"load_clustered_model({str(path)!r}): a Keras 3 file needs the "
          "num_clusters (and layers, layer_types, preserve_sparsity) it was "
          "clustered with")
    return keras3_clustering.load_keras3_clustered_model(
        path, num_clusters, layers, layer_types, preserve_sparsity,
        safe_mode=safe_mode)
  return load_tfmot_model(path, safe_mode=safe_mode)
