"""Quantization-aware training, weight clustering and collaborative schemes.

QAT follows the model: a Keras 3 model gets the native engine
(`keras3_qat`: BatchNormalization folded, ReLU fused, subclassed and nested
models instrumented in place), a tf_keras model tfmot's wrappers. So do
clustering and the collaborative schemes (PQAT, CQAT, prune then cluster):
native for Keras 3 (`keras3_clustering`, `keras3_collaborative`), tfmot's
for tf_keras models.

    from tf_compress import quantization

    qat = quantization.quantize_model(model)          # or layers=["fc.*"]
    qat.compile(...)
    qat.fit(data, epochs=3, callbacks=[quantization.QATFreezeCallback(2)])
    data = export.convert_to_tflite(qat, "int8")

    clustered = quantization.cluster_model(model, num_clusters=16)
    clustered.compile(...); clustered.fit(data, epochs=2)
    stripped = quantization.strip_clustering(clustered)
    quantization.unique_values_per_layer(stripped)   # unique <= 16

    pqat = quantization.pqat_model(pruning.strip_pruning(pruned))
    cqat = quantization.cqat_model(stripped)

    # The fewest layers to keep in float so that int8 costs <= 0.5 pt:
    choice = quantization.auto_keep_float(model, splits, max_drop=0.5)
"""

from tf_compress.quantization import qat_callbacks
from tf_compress.quantization.qat_callbacks import QATFreezeCallback
from tf_compress.quantization.clustering import CLUSTER_INITS
from tf_compress.quantization.clustering import cluster_model
from tf_compress.quantization.clustering import find_clustering_wrappers
from tf_compress.quantization.clustering import load_clustered_model
from tf_compress.quantization.clustering import strip_clustering
from tf_compress.quantization.clustering import unique_values_per_layer
from tf_compress.quantization.collaborative import cqat_model
from tf_compress.quantization.collaborative import pqat_model
from tf_compress.quantization.collaborative import prune_then_cluster
from tf_compress.quantization import keras3_clustering
from tf_compress.quantization import keras3_collaborative
from tf_compress.quantization import keras3_qat
from tf_compress.quantization.keras3_clustering import ClusterState
from tf_compress.quantization.keras3_qat import QATState
from tf_compress.quantization.mixed_precision import auto_keep_float
from tf_compress.quantization.qat import find_quantizers
from tf_compress.quantization.qat import load_qat_model
from tf_compress.quantization.qat import quantize_model
from tf_compress.quantization.qat import SCHEMES
from tf_compress.quantization.qat import strip_quantization


from tf_compress._tfmot import register_extension

register_extension("tf_compress.quantization.tfmot_qat_classes")


def __getattr__(name):
  # A tfmot subclass: imported (with tfmot) on first use.
  if name == "FrozenRangeQuantizer":
    return getattr(qat_callbacks, name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    # Quantization-aware training.
    "find_quantizers", "FrozenRangeQuantizer", "load_qat_model",
    "QATFreezeCallback", "quantize_model", "SCHEMES", "strip_quantization",
    # The Keras 3 QAT engine.
    "keras3_qat", "QATState",
    # Clustering.
    "CLUSTER_INITS", "cluster_model", "find_clustering_wrappers",
    "load_clustered_model", "strip_clustering", "unique_values_per_layer",
    # The Keras 3 clustering engine.
    "keras3_clustering", "ClusterState",
    # Collaborative optimisation.
    "cqat_model", "pqat_model", "prune_then_cluster", "keras3_collaborative",
    # Mixed precision: the fewest layers kept float for an int8 budget.
    "auto_keep_float",
]
