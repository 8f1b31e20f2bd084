"""Collaborative optimisation: each step keeps what the previous one gained.

A Keras 3 model gets the native engine (`keras3_collaborative`: masks and
fixed clusters on the native QAT engine, no tfmot); it takes models that are
stripped or still instrumented by the step before. For tf_keras models,
tfmot's collaborative schemes chain pruning, clustering and QAT without
undoing each other:

* `pqat_model`: prune-preserving QAT (tfmot's
  `Default8BitPrunePreserveQuantizeScheme`): the kernels' zeros are masked
  in every training step, so they stay exact zeros, and int8 maps them to
  the int8 value 0.
* `cqat_model`: cluster-preserving QAT (`Default8BitClusterPreserveQuantize
  Scheme`): each kernel stays made of its clusters' centroids, which QAT
  fine-tunes; with `preserve_sparsity=True` (PCQAT) the zero cluster of a
  pruned-then-clustered model stays zero too.
* `prune_then_cluster`: sparsity-preserving clustering (`cluster_weights(...,
  preserve_sparsity=True)`): one centroid is held at 0 and zero weights
  stay zero.

The full chain, ending in an int8 file (see `examples/prune_cluster_qat.py`):
prune → `strip_pruning` → `prune_then_cluster` → fine-tune →
`strip_clustering` → `cqat_model(..., preserve_sparsity=True)` → fine-tune
→ `convert_to_tflite(qat, "int8")`.

The inputs are *stripped* models (no tfmot wrappers), as tfmot requires.
The QAT results are built by `qat.apply_scheme`, so they get the same
copy-first handling and the same ReLU fix as `quantize_model`; without that
fix, tfmot left the kernel of a Conv2D followed by a ReLU layer outside
the preserving quantizer, and its zeros and clusters drifted in training.
"""

from tf_compress._keras import is_keras3_object
from tf_compress._tfmot import lazy

from tf_compress.errors import ModelError
from tf_compress.pruning.sparsity_stats import sparsity_table
from tf_compress.quantization import clustering
from tf_compress.quantization import keras3_collaborative
from tf_compress.quantization.keras3_collaborative import MAX_CLUSTERS
from tf_compress.quantization.qat import apply_scheme
from tf_compress.quantization.qat import check_plain_model

__all__ = ["pqat_model", "cqat_model", "prune_then_cluster",
           "MAX_CLUSTERS"]

_combine = lazy("experimental.combine")


def _check_pruned(model, what):
  if not any(row["zeros"] for row in sparsity_table(model)):
    raise ModelError(
        f"{what} needs a pruned model, but no prunable kernel of model "
        f"{model.name!r} holds a zero: prune it first (tf_compress.pruning."
        "prune_model, fine-tune, strip_pruning)")


def _check_clustered(model, what):
  rows = clustering.unique_values_per_layer(model)
  if not any(2 <= row["unique"] <= MAX_CLUSTERS and row["unique"] < row["size"]
             for row in rows):
    summary = ", ".join(f"{r['layer']}: {r['unique']}" for r in rows)
    raise ModelError(
        f"{what} needs a clustered model, but no clusterable weight of model "
        f"{model.name!r} holds few distinct values ({summary}): cluster it "
        "first (cluster_model, fine-tune, strip_clustering)")


def pqat_model(model, layers=None, layer_types=None):
  """Prune-preserving QAT: a QAT copy of a pruned model keeping its zeros.

  For a Keras 3 model (stripped, or still being pruned), each kernel with
  zeros is multiplied by a fixed mask of its non-zeros in every forward
  pass of the native QAT engine.

  Args:
    model: a pruned and stripped tf_keras model (see `pruning.strip_pruning`),
      or a pruned Keras 3 model.
    layers: None (all layers), or name patterns of the layers to quantize.
    layer_types: None (all), or class names.

  Returns:
    A new, uncompiled QAT model (a subclassed Keras 3 model: itself, made
    quantization-aware in place); compile and fine-tune it, then export it
    with `convert_to_tflite(qat, "int8")`.

  Raises:
    UserInputError: for a bad selection.
    ModelError: the model holds tfmot wrappers (strip them first), has no
      zeros, or holds a layer tfmot cannot quantize with this scheme (the
      collaborative schemes know Conv2D, DepthwiseConv2D, Dense and layers
      without weights).
  """
  if is_keras3_object(model):
    _check_pruned(model, "pqat_model")
    return keras3_collaborative.pqat_keras3_model(model, layers, layer_types)
  check_plain_model(model, "pqat_model")
  _check_pruned(model, "pqat_model")
  return apply_scheme(model, _combine.Default8BitPrunePreserveQuantizeScheme(),
                      layers, layer_types, "pqat_model")


def cqat_model(model, preserve_sparsity=False, layers=None, layer_types=None):
  """Cluster-preserving QAT: a QAT copy of a clustered model keeping clusters.

  After fine-tuning, each clustered kernel still holds at most its number of
  clusters of distinct values; in the int8 file, at most that many int8
  values per output channel (per-channel kernels) or per tensor.

  For a Keras 3 model (stripped, or still clustered), the indices of each
  clustered kernel are fixed and its centroids are trained instead of the
  kernel, on the native QAT engine.

  Args:
    model: a clustered and stripped tf_keras model (see `strip_clustering`),
      or a clustered Keras 3 model.
    preserve_sparsity: also keep the zeros of a pruned-then-clustered model
      (PCQAT).
    layers: None (all layers), or name patterns of the layers to quantize.
    layer_types: None (all), or class names.

  Returns:
    A new, uncompiled QAT model (a subclassed Keras 3 model: itself).

  Raises:
    UserInputError: for a bad selection.
    ModelError: the model holds tfmot wrappers, is not clustered (or, with
      `preserve_sparsity`, not pruned), or holds a layer this scheme cannot
      quantize.
  """
  if not is_keras3_object(model):
    check_plain_model(model, "cqat_model")
  _check_clustered(model, "cqat_model")
  if preserve_sparsity:
    _check_pruned(model, "cqat_model(preserve_sparsity=True)")
  if is_keras3_object(model):
    return keras3_collaborative.cqat_keras3_model(
        model, preserve_sparsity, layers, layer_types)
  scheme = _combine.Default8BitClusterPreserveQuantizeScheme(
      preserve_sparsity=bool(preserve_sparsity))
  return apply_scheme(model, scheme, layers, layer_types, "cqat_model")


def prune_then_cluster(model, num_clusters, init="kmeans++", layers=None,
                       layer_types=None):
  """Sparsity-preserving clustering of a pruned model.

  Args:
    model: a pruned and stripped tf_keras model, or a pruned Keras 3 model
      (stripped, or still being pruned).
    num_clusters: distinct values per clustered kernel (one of them 0), an
      integer >= 2.
    init: centroid initialization (see `clustering.CLUSTER_INITS`).
    layers: None (all clusterable layers), or name patterns.
    layer_types: None (all), or class names.

  Returns:
    A new, uncompiled model with clustering wrappers (Keras 3: see
    `cluster_model`); fine-tune it, then `strip_clustering` it. Zeros stay
    zeros.

  Raises:
    UserInputError: `num_clusters` < 2, an unknown `init`, a bad selection.
    ModelError: the model holds tfmot wrappers, has no zeros, or a chosen
      layer cannot be clustered.
  """
  if is_keras3_object(model):
    _check_pruned(model, "prune_then_cluster")
    return keras3_collaborative.prune_then_cluster_keras3(
        model, num_clusters, init, layers, layer_types)
  check_plain_model(model, "prune_then_cluster")
  _check_pruned(model, "prune_then_cluster")
  return clustering.cluster_model(model, num_clusters, init, layers,
                                  layer_types, preserve_sparsity=True)
