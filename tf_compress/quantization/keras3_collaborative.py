"""Collaborative optimisation of Keras 3 models, native (no tfmot).

Built on the native QAT engine (`keras3_qat`) and the native clustering
(`keras3_clustering`); each step keeps what the one before gained:

* `pqat_keras3_model` (prune-preserving QAT): every kernel with zeros gets a
  fixed 0/1 mask of its non-zeros, which multiplies the kernel in each
  forward pass (the QAT weight fake-quant reads it through
  `keras3_qat.KERNEL_SOURCE_ATTRIBUTE`), so the zeros stay exact zeros in
  training and in the int8 file; the masked weights get no gradient.
* `cqat_keras3_model` (cluster-preserving QAT): each clustered kernel (2 to
  `MAX_CLUSTERS` distinct values, fewer than its size) becomes a
  `ClusterState` whose indices are fixed and whose centroids (the kernel's
  distinct values) are what trains; the kernel variable itself is frozen.
  The fake-quantized kernel thus keeps at most its number of clusters of
  values per output channel (per-channel int8 scales; per tensor for
  Dense). With `preserve_sparsity` the zero centroid is held at 0 and the
  kernel's zeros are masked (PCQAT).
* `prune_then_cluster_keras3`: clustering with sparsity preserved.

Inputs may be stripped models, or models still instrumented by the step
before (being pruned, or clustered): those are stripped first (a copy for
graph models, in place for subclassed ones). Graph models are cloned by the
QAT engine, subclassed ones are made quantization-aware in place.

Saving: the masks of PQAT are not variables (they come back from the
kernels' zeros: make the loaded, stripped model quantization-aware with
`pqat_model` again); a CQAT model's centroids and indices are weights of
the model, so `BackupAndRestore` keeps them.
"""

from keras import ops
import numpy as np

from tf_compress.errors import ModelError
from tf_compress.pruning.keras3_pruning import find_pruner
from tf_compress.pruning.keras3_pruning import strip_keras3_pruning
from tf_compress.quantization import keras3_clustering as clustering
from tf_compress.quantization import keras3_kernel_source as kernel_source
from tf_compress.quantization.keras3_qat import quantize_keras3_model

__all__ = ["KernelMask", "pqat_keras3_model", "cqat_keras3_model",
           "prune_then_cluster_keras3", "MAX_CLUSTERS"]

# A kernel with more distinct values is not treated as clustered (tfmot's
# CQAT limit too).
MAX_CLUSTERS = 1024


class KernelMask:
  """A fixed 0/1 mask of a kernel's non-zeros, as a kernel source.

  Not a variable: the mask is a constant of the traced step, and comes back
  from the kernel's zeros after a save.

  Args:
    weight_name: the masked weight's attribute name.
    mask: the 0/1 array.
  """

  weights = ()

  def __init__(self, weight_name, mask):
    self.weight_name = weight_name
    self.mask = np.asarray(mask, np.float32)

  def forward_kernel(self, kernel):
    """`kernel * mask`."""
    return kernel * ops.cast(self.mask, kernel.dtype)


def _unpruned(model):
  """`model` with its pruning stripped (a copy for graph models)."""
  if find_pruner(model) is not None:
    model = strip_keras3_pruning(model)
  return model


def _kernels(model):
  """`(layer, weight name, values)` of each clusterable weight of `model`."""
  for _, layer in clustering.leaf_layers(model):
    name = clustering.clusterable_weight_name(layer)
    if name is not None:
      values = np.asarray(ops.convert_to_numpy(getattr(layer, name)))
      yield layer, name, values


def pqat_keras3_model(model, layers=None, layer_types=None):
  """Prune-preserving QAT of a pruned Keras 3 model (see the module doc).

  Args:
    model: a pruned Keras 3 model (stripped, or still being pruned).
    layers: None, or name patterns of the layers to quantize.
    layer_types: None, or class names.

  Returns:
    The quantization-aware model, its kernels' zeros masked.

  Raises:
    ModelError: the model is clustered (strip it, or use `cqat_model`), or
      as `quantize_model`.
    UserInputError: a bad selection.
  """
  model = _unpruned(model)
  if clustering.find_keras3_clustered_layers(model):
    raise ModelError(
        f"pqat_model: model {model.name!r} is clustered; to keep its "
        "clusters (and zeros) through QAT use cqat_model(model, "
        "preserve_sparsity=True)")
  qat = quantize_keras3_model(model, layers, layer_types)
  for layer, name, values in list(_kernels(qat)):
    if np.any(values == 0):
      kernel_source.attach_kernel_source(layer, KernelMask(name, values != 0))
  kernel_source.reset_compiled_functions(qat)
  return qat


def _fixed_clusters(layer, name, values, preserve_sparsity):
  centroids = np.unique(values)
  zeros = preserve_sparsity and bool(np.any(values == 0))
  state = clustering.ClusterState(
      name, values.shape, centroids.size, preserve_sparsity=zeros,
      reassign=False,
      zero_index=int(np.searchsorted(centroids, 0.0)) if zeros else -1,
      name=f"{layer.name}_cluster")
  state.centroids.assign(centroids)
  state.indices.assign(np.searchsorted(centroids, values).astype(np.int32))
  if zeros:
    state.mask.assign((values != 0).astype(np.float32))
  variable = getattr(layer, name)
  state.kernel_trainable = variable.trainable
  variable.trainable = False  # the centroids train instead
  kernel_source.attach_kernel_source(layer, state)


def cqat_keras3_model(model, preserve_sparsity=False, layers=None,
                      layer_types=None):
  """Cluster-preserving QAT of a clustered Keras 3 model (see the module doc).

  Args:
    model: a clustered Keras 3 model (stripped, or still clustered).
    preserve_sparsity: also keep the kernels' zeros (PCQAT).
    layers: None, or name patterns of the layers to quantize.
    layer_types: None, or class names.

  Returns:
    The quantization-aware model, each clustered kernel trained through its
    centroids.

  Raises:
    ModelError: as `quantize_model`.
    UserInputError: a bad selection.
  """
  model = _unpruned(model)
  if clustering.find_keras3_clustered_layers(model):
    model = clustering.strip_keras3_clustering(model)
  qat = quantize_keras3_model(model, layers, layer_types)
  for layer, name, values in list(_kernels(qat)):
    count = np.unique(values).size
    if 2 <= count <= MAX_CLUSTERS and count < values.size:
      _fixed_clusters(layer, name, values, preserve_sparsity)
  kernel_source.reset_compiled_functions(qat)
  return qat


def prune_then_cluster_keras3(model, num_clusters, init="kmeans++",
                              layers=None, layer_types=None):
  """Clusters a pruned Keras 3 model keeping its zeros (one centroid 0).

  Returns:
    The clustered model (see `keras3_clustering.cluster_keras3_model`).
  """
  model = _unpruned(model)
  return clustering.cluster_keras3_model(model, num_clusters, init, layers,
                                         layer_types, preserve_sparsity=True)
