"""PQAT, CQAT and prune→cluster, checked in the exported int8 files.

A baseline is pruned (75%) and, separately, clustered (8 clusters); each
collaborative step is fine-tuned briefly and exported to int8, and the
zeros and cluster counts are read back from the flatbuffer's kernels.
"""

import re

from ai_edge_litert.interpreter import Interpreter
import numpy as np
import pytest

import tf_compress
from tf_compress import export
from tf_compress import keras
from tf_compress import ModelError
from tf_compress import pruning
from tf_compress import quantization
from tf_compress import UserInputError

from classifiers import compile_classifier
from classifiers import trained_classifier

BATCH = 32
KERNELS = ["conv1", "conv2", "fc1", "logits"]
CLUSTERS = 8
_NAME = re.compile(r"(?:^|/)(?:quant_)?(conv1|conv2|fc1|logits)(?:/|;|$)")


def _int8_kernels(data):
  """{layer: {"zeros", "size", "unique", "unique_per_channel"}} of a file.

  `unique_per_channel` is the largest count of distinct stored values in
  one output channel for per-channel kernels, None for per-tensor ones.
  """
  info = export.inspect_tflite(data, per_tensor=True)
  interpreter = Interpreter(model_content=data)
  kernels = {}
  for weight in info["weights"]:
    if weight["role"] != "kernel":
      continue
    assert weight["dtype"] == "int8", weight
    layer = _NAME.search(weight["name"]).group(1)
    values = interpreter.get_tensor(weight["index"])
    axis = (weight["quantization"] or {}).get("quantized_dimension")
    per_channel = None
    if axis is not None:
      per_channel = max(np.unique(np.take(values, c, axis=axis)).size
                        for c in range(values.shape[axis]))
    kernels[layer] = {"zeros": weight["size"] - weight["nonzero"],
                      "size": weight["size"], "unique": weight["unique"],
                      "unique_per_channel": per_channel}
  assert sorted(kernels) == sorted(KERNELS)
  return kernels


def _zeros(model):
  return {row["layer"]: row["zeros"] for row in pruning.sparsity_table(model)}


def _unique(model):
  return {row["layer"]: row["unique"]
          for row in quantization.unique_values_per_layer(model)}


def _check_clusters_in_file(kernels):
  for name, kernel in kernels.items():
    # Per-channel scales: N centroids → at most N int8 values per channel.
    count = kernel["unique_per_channel"] or kernel["unique"]
    assert count <= CLUSTERS, (name, kernel)


@pytest.fixture(scope="module")
def baseline(digits):
  return trained_classifier(digits, "cnn", epochs=5, batch_size=BATCH)


@pytest.fixture(scope="module")
def pruned(baseline, digits):
  """75% magnitude pruning in 1 epoch, 1 more epoch, stripped."""
  config = pruning.PruningConfig(target_sparsity=0.75, frequency=5,
                                 end_epoch=1)
  steps = -(-len(digits.x_train) // BATCH)
  model = compile_classifier(pruning.prune_model(baseline, config, steps))
  model.fit(digits.x_train, digits.y_train, batch_size=BATCH, epochs=2,
            verbose=0, callbacks=[pruning.PruningCallback()])
  return compile_classifier(pruning.strip_pruning(model))


@pytest.fixture(scope="module")
def clustered(baseline, digits):
  """8 clusters, fine-tuned for 20 steps (the baseline is trained)."""
  model = compile_classifier(quantization.cluster_model(baseline, CLUSTERS), 1e-4)
  model.fit(digits.x_train[:640], digits.y_train[:640], batch_size=BATCH,
            epochs=1, verbose=0)
  return compile_classifier(quantization.strip_clustering(model))


def _fine_tune_and_export(qat, digits, samples=None):
  compile_classifier(qat, 1e-4)
  end = samples or len(digits.x_train)
  qat.fit(digits.x_train[:end], digits.y_train[:end], batch_size=BATCH,
          epochs=1, verbose=0)
  data = export.convert_to_tflite(qat, "int8")
  check = export.verify_tflite(data, digits.x_test, digits.y_test,
                               keras_model=qat, isolate=False)
  return data, check


@pytest.fixture(scope="module")
def pqat_run(pruned, digits):
  qat = quantization.pqat_model(pruned)
  return (qat,) + _fine_tune_and_export(qat, digits, samples=640)


@pytest.fixture(scope="module")
def cqat_run(clustered, digits):
  # CQAT re-assigns every weight to a centroid at each step: 10 steps.
  qat = quantization.cqat_model(clustered)
  return (qat,) + _fine_tune_and_export(qat, digits, samples=320)


@pytest.fixture(scope="module")
def prune_cluster_run(pruned, digits):
  """prune → cluster (zeros kept) → PCQAT (zeros and clusters kept)."""
  model = compile_classifier(quantization.prune_then_cluster(pruned, CLUSTERS), 1e-4)
  model.fit(digits.x_train[:640], digits.y_train[:640], batch_size=BATCH,
            epochs=1, verbose=0)
  stripped = compile_classifier(quantization.strip_clustering(model))
  qat = quantization.cqat_model(stripped, preserve_sparsity=True)
  return (stripped, qat) + _fine_tune_and_export(qat, digits, samples=320)


def test_pruned_fixture(pruned):
  for row in pruning.sparsity_table(pruned):
    assert row["sparsity"] == pytest.approx(0.75, abs=0.01), row


def test_pqat_keeps_zeros_in_int8(pqat_run, pruned, digits):
  qat, data, check = pqat_run
  zeros = _zeros(pruned)
  kernels = _int8_kernels(data)
  for name in KERNELS:
    kept = kernels[name]["zeros"] / zeros[name]
    print(f"pqat {name}: {kernels[name]['zeros']}/{zeros[name]} zeros kept")
    assert kept >= 0.99, name
  # Also in the Keras model after fine-tuning: exactly the same zeros.
  assert _zeros(quantization.strip_quantization(qat)) == zeros
  pruned_top1 = pruned.evaluate(digits.x_test, digits.y_test, verbose=0)[1]
  print(f"pruned float={pruned_top1:.4f} pqat int8={check['tflite_top1']:.4f}")
  assert check["tflite_top1"] >= pruned_top1 - 0.01
  assert check["agreement"] >= 0.99


def test_cqat_keeps_clusters_in_int8(cqat_run, clustered, digits):
  qat, data, check = cqat_run
  assert all(count <= CLUSTERS for count in _unique(clustered).values())
  kernels = _int8_kernels(data)
  _check_clusters_in_file(kernels)
  # Conv kernels are per-channel, Dense kernels per-tensor.
  assert kernels["conv2"]["unique_per_channel"] is not None
  assert kernels["fc1"]["unique_per_channel"] is None
  for name, count in _unique(quantization.strip_quantization(qat)).items():
    assert count <= CLUSTERS, name
  top1 = clustered.evaluate(digits.x_test, digits.y_test, verbose=0)[1]
  print(f"clustered float={top1:.4f} cqat int8={check['tflite_top1']:.4f}")
  assert check["tflite_top1"] >= top1 - 0.02
  assert check["agreement"] >= 0.99


def test_prune_then_cluster_keeps_zeros(prune_cluster_run, pruned):
  stripped, _, _, _ = prune_cluster_run
  zeros = _zeros(pruned)
  for name, count in _zeros(stripped).items():
    assert count >= 0.99 * zeros[name], name
  for name, count in _unique(stripped).items():
    assert count <= CLUSTERS, name


def test_pcqat_keeps_zeros_and_clusters_in_int8(prune_cluster_run, pruned,
                                                digits):
  _, _, data, check = prune_cluster_run
  zeros = _zeros(pruned)
  kernels = _int8_kernels(data)
  for name in KERNELS:
    print(f"pcqat {name}: {kernels[name]['zeros']}/{zeros[name]} zeros, "
          f"{kernels[name]['unique_per_channel'] or kernels[name]['unique']}"
          " values")
    assert kernels[name]["zeros"] >= 0.99 * zeros[name], name
  _check_clusters_in_file(kernels)
  pruned_top1 = pruned.evaluate(digits.x_test, digits.y_test, verbose=0)[1]
  assert check["tflite_top1"] >= pruned_top1 - 0.03
  assert check["agreement"] >= 0.98


def test_needs_the_right_input(baseline, pruned, clustered, digits):
  with pytest.raises(ModelError, match="pqat_model needs a pruned model"):
    quantization.pqat_model(baseline)
  with pytest.raises(ModelError, match="prune_then_cluster needs a pruned"):
    quantization.prune_then_cluster(baseline, CLUSTERS)
  with pytest.raises(ModelError, match="cqat_model needs a clustered model"):
    quantization.cqat_model(baseline)
  with pytest.raises(ModelError, match=r"preserve_sparsity=True\) needs a "
                     "pruned"):
    quantization.cqat_model(clustered, preserve_sparsity=True)
  wrapped = pruning.prune_model(
      pruned, pruning.PruningConfig(target_sparsity=0.8))
  with pytest.raises(ModelError, match="strip_pruning"):
    quantization.pqat_model(wrapped)
  del digits


@pytest.mark.parametrize("kwargs,pattern", [
    ({"num_clusters": 1}, r"num_clusters must be an integer >= 2"),
    ({"num_clusters": 8, "init": "best"}, r"unknown centroid initialization"),
], ids=["clusters", "init"])
def test_prune_then_cluster_bad_arguments(pruned, kwargs, pattern):
  with pytest.raises(UserInputError, match=pattern):
    quantization.prune_then_cluster(pruned, **kwargs)


def test_prune_then_cluster_skips_layers_with_fewer_values_than_clusters(
    pruned):
  # A layer pruned to fewer non-zeros than clusters already holds at most
  # that many distinct values; tfmot's k-means++ could not seed it anyway.
  nearly_empty = keras.models.clone_model(pruned)
  nearly_empty.set_weights(pruned.get_weights())
  logits = nearly_empty.get_layer("logits")
  kernel = logits.kernel.numpy()
  kept = np.zeros_like(kernel)
  kept.flat[:5] = kernel.flat[:5] + 1.0
  logits.kernel.assign(kept)
  wrapped = quantization.prune_then_cluster(nearly_empty, 8)
  names = [w.layer.name for w in quantization.find_clustering_wrappers(
      wrapped)]
  assert "logits" not in names
  assert {"conv1", "conv2", "fc1"} <= set(names)
  stripped = quantization.strip_clustering(wrapped)
  np.testing.assert_array_equal(stripped.get_layer("logits").kernel.numpy(),
                                kept)


def test_pqat_and_pcqat_train_under_mirrored_strategy(
    pruned, prune_cluster_run, digits, logical_cpus):
  del logical_cpus  # the 2 devices the strategy mirrors over
  stripped = prune_cluster_run[0]
  strategy = tf_compress.make_strategy("mirrored", 2)
  with strategy.scope():
    pqat = compile_classifier(quantization.pqat_model(pruned), 1e-4)
    # PCQAT assigns the kernel and its cluster associations inside the
    # training step, which the strategy must keep in sync.
    pcqat = compile_classifier(quantization.cqat_model(stripped, preserve_sparsity=True),
                     1e-4)
  for qat in (pqat, pcqat):
    history = qat.fit(digits.x_train[:160], digits.y_train[:160],
                      batch_size=BATCH, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
  zeros = _zeros(pruned)
  assert _zeros(quantization.strip_quantization(pqat)) == zeros
  plain = quantization.strip_quantization(pcqat)
  for name, count in _zeros(plain).items():
    assert count >= 0.99 * zeros[name], name
  for name, count in _unique(plain).items():
    assert count <= CLUSTERS, name
