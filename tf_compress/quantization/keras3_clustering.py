"""Weight clustering of Keras 3 models, native (no tfmot).

The Keras 3 engine instruments layers where they stand, as the native
pruning and QAT engines do: Sequential and Functional models are cloned
first (the caller's model is left alone), subclassed ones are clustered in
place, and nested models are walked. Each clustered weight (the kernel of
Dense, Conv1D/2D/3D and DepthwiseConv2D, the pointwise kernel of
SeparableConv1D/2D, an Embedding's table) gets a `ClusterState` sublayer
holding `num_clusters` trainable centroids. The forward pass uses
`centroids[indices]` instead of the kernel, so the gradients reach the
centroids (each the sum of its weights' gradients, tfmot's default).

Indices are re-assigned as tfmot does: at every call, each weight goes to
its nearest centroid, and the kernel variable keeps training behind the
clustered one through a straight-through estimator, so weights can change
cluster. (The cluster-preserving QAT of `keras3_collaborative` instead
keeps the indices fixed and trains the centroids only.)

With `preserve_sparsity` (prune, then cluster), one centroid is held at
exactly 0 and a fixed 0/1 mask of the kernel's non-zeros multiplies both
the weights assigned and the clustered kernel: zeros stay exact zeros and
non-zero weights are never assigned to the zero cluster (the sparsity
pattern is kept exactly, as tfmot keeps it), and a stripped kernel
holds at most `num_clusters` distinct values, 0 among them, as with tfmot.

The state is the layer's kernel source (`keras3_kernel_source`): the
layer's own `call` runs unchanged with the clustered tensor for its kernel,
and the QAT engine's fake-quant reads the same tensor.

Saving and resuming. The state's variables are weights of the model, so
`BackupAndRestore` and `save_weights` keep them; a `.keras` file loads
back, clustering included, with `load_keras3_clustered_model` (the file's
config holds the plain layers only).
"""

import numbers
import os
import tempfile
import warnings
import zipfile

import keras
from keras import ops
import numpy as np

from tf_compress.errors import ModelError
from tf_compress.errors import UserInputError
from tf_compress.models.graph import is_graph_model
from tf_compress.models.persistence import load_model
from tf_compress.pruning.keras3_pruning import find_pruner
from tf_compress.quantization import keras3_centroids
from tf_compress.quantization import keras3_kernel_source as kernel_source
from tf_compress.quantization import keras3_qat
from tf_compress.quantization.keras3_qat import KERNEL_SOURCE_ATTRIBUTE
from tf_compress.quantization.qat import layer_filter

__all__ = ["ClusterState", "cluster_keras3_model", "strip_keras3_clustering",
           "find_keras3_clustered_layers", "keras3_unique_rows",
           "load_keras3_clustered_model", "clusterable_weight_name",
           "leaf_layers", "check_num_clusters", "check_init", "INITS",
           "KERNEL_SOURCE_ATTRIBUTE"]

INITS = keras3_centroids.INITS
# The weight clustered in each layer kind (the first class along the MRO).
_WEIGHTS = {"Dense": "kernel", "Conv1D": "kernel", "Conv2D": "kernel",
            "Conv3D": "kernel", "DepthwiseConv2D": "kernel",
            "SeparableConv1D": "pointwise_kernel",
            "SeparableConv2D": "pointwise_kernel", "Embedding": "embeddings"}


def check_num_clusters(num_clusters):
  """`num_clusters` as an int, or `UserInputError` unless an int >= 2."""
  if (isinstance(num_clusters, bool) or
      not isinstance(num_clusters, numbers.Integral) or num_clusters < 2):
    raise UserInputError(
        f"num_clusters must be an integer >= 2 (distinct values kept per "
        f"weight), got {num_clusters!r}; 8 or 16 are common")
  return int(num_clusters)


def check_init(init):
  """`init` if it names a centroid initialization, else `UserInputError`."""
  if not isinstance(init, str) or init not in INITS:
    raise UserInputError(
        f"unknown centroid initialization {init!r}; choose one of "
        f"{', '.join(INITS)}")
  return init


@keras.saving.register_keras_serializable(package="tf_compress")
class ClusterState(keras.layers.Layer):
  """The clusters of one weight of a layer (a sublayer of that layer).

  Variables: `centroids` (trainable); `indices` (each weight's centroid,
  only when `reassign` is False); `mask` (the kernel's non-zeros, only
  with `preserve_sparsity`).

  Args:
    weight: the attribute name of the clustered weight (`kernel`).
    shape: its shape.
    num_clusters: the number of centroids.
    preserve_sparsity: keep the kernel's zeros (a fixed mask, and centroid
      `zero_index` held at 0).
    reassign: re-assign each weight to its nearest centroid at every call
      (tfmot's clustering), or keep `indices` fixed (cluster-preserving
      QAT).
    zero_index: the centroid held at 0, or -1.

  Example:
    >>> state = ClusterState("kernel", (64, 10), num_clusters=8)
    >>> state.centroids.shape
    (8,)
  """

  def __init__(self, weight="kernel", shape=(), num_clusters=8,
               preserve_sparsity=False, reassign=True, zero_index=-1,
               **kwargs):
    super().__init__(**kwargs)
    self.weight_name = str(weight)
    self.weight_shape = tuple(int(d) for d in shape)
    self.num_clusters = int(num_clusters)
    self.preserve_sparsity = bool(preserve_sparsity)
    self.reassign = bool(reassign)
    self.zero_index = int(zero_index)
    self.centroids = self.add_weight(
        shape=(self.num_clusters,), initializer="zeros", trainable=True,
        name="centroids")
    self.indices = None
    self.mask = None
    # The kernel's own trainable flag while its indices are fixed (the
    # kernel is then not used, so not trained); restored when stripped.
    self.kernel_trainable = None
    if not self.reassign:
      self.indices = self.add_weight(
          shape=self.weight_shape, initializer="zeros", dtype="int32",
          trainable=False, name="indices")
    if self.preserve_sparsity:
      self.mask = self.add_weight(
          shape=self.weight_shape, initializer="ones", trainable=False,
          name="mask")
    self.built = True

  def centroid_values(self):
    """The centroids, the one held at 0 (if any) exactly 0."""
    centroids = ops.convert_to_tensor(self.centroids)
    if self.zero_index < 0:
      return centroids
    keep = np.ones((self.num_clusters,), np.float32)
    keep[self.zero_index] = 0.0
    return centroids * ops.cast(keep, centroids.dtype)

  def forward_kernel(self, kernel):
    """The clustered weight the forward pass uses instead of `kernel`."""
    centroids = self.centroid_values()
    if self.reassign:
      weights = ops.cast(kernel, centroids.dtype)
      if self.mask is not None:
        weights = weights * self.mask
      distance = ops.abs(ops.expand_dims(weights, -1) - centroids)
      if self.zero_index >= 0:
        # The sparsity pattern is kept exactly: a non-zero weight never
        # joins the zero cluster (the masked ones are zeroed below anyway).
        penalty = np.zeros((self.num_clusters,), np.float32)
        penalty[self.zero_index] = np.inf
        distance = distance + ops.cast(penalty, distance.dtype)
      indices = ops.argmin(distance, axis=-1)
      # Straight through: the value is the centroids', and the weights'
      # gradient also reaches the kernel, so weights can change cluster.
      clustered = ops.take(centroids, indices) + (
          weights - ops.stop_gradient(weights))
    else:
      clustered = ops.take(centroids, self.indices)
    if self.mask is not None:
      clustered = clustered * self.mask
    return ops.cast(clustered, kernel.dtype)

  def get_config(self):
    config = super().get_config()
    config.update(weight=self.weight_name, shape=list(self.weight_shape),
                  num_clusters=self.num_clusters,
                  preserve_sparsity=self.preserve_sparsity,
                  reassign=self.reassign, zero_index=self.zero_index)
    return config


# ------------------------------------------------------- walking the layers


def _sublayers(layer):
  # pylint: disable-next=protected-access
  return list(layer._flatten_layers(include_self=False, recursive=False))


def clusterable_weight_name(layer):
  """The attribute name of the weight clustering shares out, or None."""
  for base in type(layer).__mro__:
    name = _WEIGHTS.get(base.__name__)
    if name is not None:
      variable = getattr(layer, name, None)
      return name if isinstance(variable, keras.Variable) else None
  return None


def _is_state(layer):
  return isinstance(layer, (ClusterState, keras3_qat.QATState))


def leaf_layers(model, prefix=""):
  """`(path, layer)` of the leaf layers below `model`, nested ones walked.

  A layer with a clusterable weight is a leaf even when it holds state
  sublayers; a layer holding layers and no such weight is walked into.
  """
  for child in _sublayers(model):
    if _is_state(child):
      continue
    path = f"{prefix}{child.name}"
    if clusterable_weight_name(child) is None and _sublayers(child):
      yield from leaf_layers(child, path + "/")
    else:
      yield path, child


def find_keras3_clustered_layers(model):
  """The layers of `model` (nested ones included) holding a `ClusterState`."""
  return [layer for _, layer in leaf_layers(model)
          if isinstance(getattr(layer, KERNEL_SOURCE_ATTRIBUTE, None),
                        ClusterState)]


# --------------------------------------------------------------- clustering


def _values(variable):
  return np.asarray(ops.convert_to_numpy(variable))


def _check_instrumented(model, what):
  if not model.built:
    raise ModelError(f"{what}: Keras 3 model {model.name!r} is not built; "
                     "call it on data or build(input_shape) first")
  if find_pruner(model) is not None:
    raise ModelError(f"{what}: model {model.name!r} is being pruned; strip "
                     "it first with tf_compress.pruning.strip_pruning")
  if keras3_qat.is_keras3_qat(model):
    raise ModelError(
        f"{what}: model {model.name!r} is quantization-aware; cluster the "
        "float model, then make it quantization-aware with cqat_model")
  if find_keras3_clustered_layers(model):
    raise ModelError(f"{what}: model {model.name!r} is already clustered; "
                     "strip it first with strip_clustering")


def _targets(model, chosen, num_clusters, preserve_sparsity):
  """`[(layer, weight name)]` to cluster; ModelError for a custom layer."""
  out = []
  for _, layer in leaf_layers(model):
    if isinstance(layer, keras.layers.InputLayer) or not chosen(layer):
      continue
    name = clusterable_weight_name(layer)
    if name is None:
      if layer.trainable_weights and not type(
          layer).__module__.startswith("keras"):
        raise ModelError(
            f"cluster_model: layer {layer.name!r} ({type(layer).__name__}) "
            "was selected for clustering, but the Keras 3 engine clusters "
            f"only the weights of {', '.join(sorted(_WEIGHTS))}; leave it "
            "out with `layers` (name patterns) or `layer_types`")
      continue
    values = _values(getattr(layer, name))
    count = np.count_nonzero(values) if preserve_sparsity else values.size
    # A weight with no more values than clusters already has at most that
    # many distinct values (k-means++ cannot seed more centroids either).
    if count > num_clusters:
      out.append((layer, name))
  return out


def _cluster_layer(layer, name, num_clusters, init, preserve_sparsity):
  values = _values(getattr(layer, name))
  centroids = keras3_centroids.initial_centroids(
      values, num_clusters, init, preserve_sparsity)
  zero_index = int(np.flatnonzero(centroids == 0)[0]) if (
      preserve_sparsity) else -1
  state = ClusterState(name, values.shape, num_clusters, preserve_sparsity,
                       reassign=True, zero_index=zero_index,
                       name=f"{layer.name}_cluster")
  state.centroids.assign(centroids)
  if preserve_sparsity:
    state.mask.assign((values != 0).astype(np.float32))
  kernel_source.attach_kernel_source(layer, state)


def cluster_keras3_model(model, num_clusters, init="kmeans++", layers=None,
                         layer_types=None, preserve_sparsity=False):
  """Clusters a Keras 3 model: a copy for Sequential/Functional, in place else.

  See `quantization.cluster_model` for the arguments.

  Returns:
    The model to compile and fine-tune (the copy, or `model` itself).

  Raises:
    UserInputError: bad `num_clusters`, `init` or selection.
    ModelError: the model is not built, is being pruned, is QAT or already
      clustered, a chosen custom layer has weights the engine cannot
      cluster, or no weight is chosen.
  """
  num_clusters = check_num_clusters(num_clusters)
  init = check_init(init)
  chosen = layer_filter(layers, layer_types)
  _check_instrumented(model, "cluster_model")
  if not _targets(model, chosen, num_clusters, preserve_sparsity):
    raise ModelError(
        f"no layer of model {model.name!r} is selected for clustering "
        f"({chosen.description}, with weights of more than {num_clusters} "
        f"{'non-zero ' if preserve_sparsity else ''}elements); widen the "
        "selection")
  if is_graph_model(model):
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    model = copy
  for layer, name in _targets(model, chosen, num_clusters, preserve_sparsity):
    _cluster_layer(layer, name, num_clusters, init, preserve_sparsity)
  kernel_source.reset_compiled_functions(model)
  return model


def strip_keras3_clustering(model):
  """A Keras 3 model without clustering, each clustered weight clustered.

  A Sequential or Functional model is copied (float: a QAT model loses its
  fake-quants too); a subclassed one is stripped in place.
  """
  if is_graph_model(model):
    copy = keras.models.clone_model(model)
    copy.set_weights(kernel_source.plain_weights(model))
    return copy
  for layer in find_keras3_clustered_layers(model):
    kernel_source.detach_kernel_source(layer)
  kernel_source.reset_compiled_functions(model)
  return model


def keras3_unique_rows(model):
  """`unique_values_per_layer` rows of a Keras 3 model, clustered or not."""
  rows = []
  for path, layer in leaf_layers(model):
    name = clusterable_weight_name(layer)
    if name is None:
      continue
    variable = getattr(layer, name)
    source = getattr(layer, KERNEL_SOURCE_ATTRIBUTE, None)
    values = _values(variable if source is None else
                     source.forward_kernel(variable))
    rows.append({"layer": path, "weight": name, "size": int(values.size),
                 "unique": int(np.unique(values).size)})
  return rows


def _saved_states(weights_path):
  """How many `ClusterState`s a `.weights.h5` file holds."""
  import h5py  # pylint: disable=g-import-not-at-top
  found = []
  with h5py.File(weights_path, "r") as store:
    store.visit(lambda name: found.append(name) if name.rsplit(
        "/", 1)[-1] == KERNEL_SOURCE_ATTRIBUTE else None)
  return len(found)


def load_keras3_clustered_model(path, num_clusters, layers=None,
                                layer_types=None, preserve_sparsity=False,
                                custom_objects=None, safe_mode=True):
  """Loads a clustered Keras 3 model saved as `.keras`, clusters included.

  Keras rebuilds the plain model from the file (the clustering is not part
  of its config); it is clustered again with the same selection, then
  given the file's weights: kernels, centroids and masks, exactly as saved.

  Args:
    path: the `.keras` file.
    num_clusters: as given to `cluster_model`.
    layers: as given to `cluster_model`.
    layer_types: as given to `cluster_model`.
    preserve_sparsity: as given to `cluster_model`.
    custom_objects: passed to Keras' loader.
    safe_mode: Keras' safe mode (refuses `Lambda` layers).

  Returns:
    The clustered model, without the optimizer state of the file (whose
    optimizer had slots for the centroids): compile it to train on.

  Raises:
    ModelError: the file does not load, or its clusters do not match the
      given arguments.
  """
  path = os.fspath(path)
  with warnings.catch_warnings():
    # The file's optimizer also has slots for the centroids, which the
    # optimizer of the plain model Keras rebuilds has not: its state is not
    # restored (the docstring says so).
    warnings.filterwarnings("ignore", "Skipping variable loading for "
                            "optimizer")
    model = load_model(path, custom_objects, safe_mode=safe_mode)
    clustered = cluster_keras3_model(model, num_clusters, "linear", layers,
                                     layer_types, preserve_sparsity)
    expected = len(find_keras3_clustered_layers(clustered))
    with tempfile.TemporaryDirectory(
        prefix="tf_compress_cluster_") as workdir:
      weights = os.path.join(workdir, "model.weights.h5")
      try:
        with zipfile.ZipFile(path) as archive, open(weights, "wb") as out:
          out.write(archive.read("model.weights.h5"))
        saved = _saved_states(weights)
        if saved != expected:
          raise ValueError(f"the file holds {saved} clustered weights, the "
                           f"arguments choose {expected}")
        clustered.load_weights(weights)
      except Exception as error:  # pylint: disable=broad-except
        raise ModelError(
            f"cannot restore the clusters of {path!r}: {error}. Was it "
            "saved from cluster_model with the same num_clusters, layers, "
            "layer_types and preserve_sparsity?") from error
  return clustered
