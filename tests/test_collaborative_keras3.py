"""Native Keras 3 PQAT, CQAT and prune→cluster, checked in the int8 files.

A baseline CNN (with a BatchNormalization that QAT folds) is pruned (75%)
and, separately, clustered (8 clusters); each collaborative step is
fine-tuned briefly and exported to int8, and the zeros and cluster counts
are read back from the flatbuffer's kernels. PQAT and PCQAT are built and
fine-tuned under a MirroredStrategy over 2 logical CPUs, CQAT without one.
That these Keras 3 methods never import tfmot is checked in
test_keras_binding.py, in the fresh Python it starts anyway.
"""

import contextlib
import re

from ai_edge_litert.interpreter import Interpreter
import keras
import numpy as np
import pytest

import tf_compress
from tf_compress import export
from tf_compress import pruning
from tf_compress import quantization
from tf_compress.errors import ModelError

_LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
KERNELS = ["c1", "c2", "fc", "logits"]
CLUSTERS = 8
_NAME = re.compile(r"(?:^|/)(c1|c2|fc|logits)(?:_\d+)?(?:/|;|$)")


def _cnn(input_shape):
  inputs = keras.Input(input_shape)
  x = keras.layers.Conv2D(8, 3, use_bias=False, name="c1")(inputs)
  x = keras.layers.BatchNormalization(name="bn")(x)
  x = keras.layers.ReLU(name="r1")(x)
  x = keras.layers.Conv2D(16, 3, activation="relu", name="c2")(x)
  x = keras.layers.Flatten(name="flat")(x)
  x = keras.layers.Dense(32, activation="relu", name="fc")(x)
  return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x))


def _compile(model, lr=1e-3):
  model.compile(keras.optimizers.Adam(lr), _LOSS, metrics=["accuracy"],
                jit_compile=False)
  return model


def _fit(build, digits, strategy=None, samples=320, lr=1e-4):
  """`build()`, compiled (both under `strategy`) and fine-tuned."""
  with strategy.scope() if strategy else contextlib.nullcontext():
    model = _compile(build(), lr)
  history = model.fit(digits.x_train[:samples], digits.y_train[:samples],
                      batch_size=32, epochs=1, verbose=0)
  assert np.isfinite(history.history["loss"][0])
  return model


def _zeros(model):
  return {row["layer"]: row["zeros"] for row in pruning.sparsity_table(model)}


def _unique(model):
  return {row["layer"]: row["unique"]
          for row in quantization.unique_values_per_layer(model)}


def _int8_kernels(data):
  """{layer: {"zeros", "size", "unique", "per_channel"}} of a file.

  `per_channel` is the largest count of distinct int8 values in one output
  channel of a per-channel kernel, None for a per-tensor one.
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
                      "per_channel": per_channel}
  assert sorted(kernels) == sorted(KERNELS)
  return kernels


def _export(qat, digits):
  data = export.convert_to_tflite(qat, "int8")
  check = export.verify_tflite(data, digits.x_test, digits.y_test,
                               keras_model=qat, isolate=False)
  return data, check


@pytest.fixture(scope="module")
def baseline(digits):
  keras.utils.set_random_seed(0)
  model = _compile(_cnn(digits.input_shape), 3e-3)
  model.fit(digits.x_train, digits.y_train, epochs=5, batch_size=32,
            verbose=0)
  return model


@pytest.fixture(scope="module")
def pruned(baseline, digits):
  """75% magnitude pruning from step 0, 1 epoch, stripped."""
  config = pruning.PruningConfig(target_sparsity=0.75, schedule="constant",
                                 begin_step=0, frequency=5)
  model = _compile(pruning.prune_model(baseline, config))
  model.fit(digits.x_train, digits.y_train, batch_size=32, epochs=1,
            verbose=0, callbacks=[pruning.PruningCallback()])
  return _compile(pruning.strip_pruning(model))


@pytest.fixture(scope="module")
def clustered(baseline, digits):
  """8 clusters per kernel, 10 steps, stripped."""
  model = _fit(lambda: quantization.cluster_model(baseline, CLUSTERS),
               digits)
  return _compile(quantization.strip_clustering(model))


@pytest.fixture(scope="module")
def mirrored(logical_cpus):
  del logical_cpus  # the 2 devices the strategy mirrors over
  return tf_compress.make_strategy("mirrored", 2)


@pytest.fixture(scope="module")
def pqat_run(pruned, digits, mirrored):
  qat = _fit(lambda: quantization.pqat_model(pruned), digits, mirrored)
  return (qat,) + _export(qat, digits)


@pytest.fixture(scope="module")
def cqat_run(clustered, digits):
  qat = _fit(lambda: quantization.cqat_model(clustered), digits)
  return (qat,) + _export(qat, digits)


@pytest.fixture(scope="module")
def prune_cluster_run(pruned, digits, mirrored):
  """prune → cluster (zeros kept) → PCQAT (zeros and clusters kept)."""
  model = _fit(lambda: quantization.prune_then_cluster(pruned, CLUSTERS),
               digits)
  stripped = _compile(quantization.strip_clustering(model))
  qat = _fit(lambda: quantization.cqat_model(stripped,
                                             preserve_sparsity=True),
             digits, mirrored)
  return (stripped, qat) + _export(qat, digits)


def test_pruned_fixture(pruned):
  for row in pruning.sparsity_table(pruned):
    assert row["sparsity"] == pytest.approx(0.75, abs=0.01), row


def test_pqat_keeps_zeros_in_int8(pqat_run, pruned, digits):
  qat, data, check = pqat_run
  assert qat.distribute_strategy.num_replicas_in_sync == 2
  zeros = _zeros(pruned)
  kernels = _int8_kernels(data)
  for name in KERNELS:
    print(f"pqat {name}: {kernels[name]['zeros']}/{zeros[name]} zeros kept "
          f"of {kernels[name]['size']}")
    assert kernels[name]["zeros"] >= zeros[name], name
    assert kernels[name]["zeros"] / kernels[name]["size"] == pytest.approx(
        0.75, abs=0.02), name
  # In the Keras model: exactly the same zeros, and the rest trained.
  plain = quantization.strip_quantization(qat)
  assert _zeros(plain) == zeros
  fc = plain.get_layer("fc").kernel.numpy()
  before = pruned.get_layer("fc").kernel.numpy()
  np.testing.assert_array_equal(fc == 0, before == 0)
  assert np.abs(fc - before).max() > 1e-4
  top1 = pruned.evaluate(digits.x_test, digits.y_test, verbose=0)[1]
  print(f"pruned float={top1:.4f} pqat int8={check['tflite_top1']:.4f}")
  assert check["tflite_top1"] >= top1 - 0.02
  assert check["agreement"] >= 0.98


def test_cqat_keeps_clusters_in_int8(cqat_run, clustered, digits):
  qat, data, check = cqat_run
  assert all(2 <= n <= CLUSTERS for n in _unique(clustered).values())
  kernels = _int8_kernels(data)
  for name, kernel in kernels.items():
    # Per-channel scales: N centroids → at most N int8 values per channel.
    print(f"cqat {name}: {kernel['per_channel'] or kernel['unique']} values")
    assert (kernel["per_channel"] or kernel["unique"]) <= CLUSTERS, name
  assert kernels["c2"]["per_channel"] is not None
  assert kernels["fc"]["per_channel"] is None  # Dense: per tensor
  # The centroids trained (not the kernels, which are frozen meanwhile).
  layer = qat.get_layer("fc")
  state = getattr(layer, quantization.keras3_clustering.KERNEL_SOURCE_ATTRIBUTE)
  assert not state.reassign and not layer.kernel.trainable
  trained = np.sort(state.centroids.numpy())
  initial = np.unique(clustered.get_layer("fc").kernel.numpy())
  assert trained.shape == initial.shape
  assert np.abs(trained - initial).max() > 1e-5
  plain = quantization.strip_quantization(qat)
  assert all(n <= CLUSTERS for n in _unique(plain).values())
  assert plain.get_layer("fc").kernel.trainable
  top1 = clustered.evaluate(digits.x_test, digits.y_test, verbose=0)[1]
  print(f"clustered float={top1:.4f} cqat int8={check['tflite_top1']:.4f}")
  assert check["tflite_top1"] >= top1 - 0.02
  assert check["agreement"] >= 0.98


def test_prune_then_cluster_keeps_zeros(prune_cluster_run, pruned):
  stripped = prune_cluster_run[0]
  before = {name: pruned.get_layer(name).kernel.numpy() for name in KERNELS}
  for name in KERNELS:
    kernel = stripped.get_layer(name).kernel.numpy()
    np.testing.assert_array_equal(kernel[before[name] == 0], 0.0)
    assert 0.0 in kernel
  for name, count in _unique(stripped).items():
    assert count <= CLUSTERS, name


def test_pcqat_keeps_zeros_and_clusters_in_int8(prune_cluster_run, pruned,
                                                digits):
  stripped, qat, data, check = prune_cluster_run
  assert qat.distribute_strategy.num_replicas_in_sync == 2
  zeros = _zeros(stripped)
  assert all(zeros[name] >= _zeros(pruned)[name] for name in KERNELS)
  kernels = _int8_kernels(data)
  for name in KERNELS:
    kernel = kernels[name]
    print(f"pcqat {name}: {kernel['zeros']}/{zeros[name]} zeros, "
          f"{kernel['per_channel'] or kernel['unique']} values")
    assert kernel["zeros"] >= zeros[name], name
    assert (kernel["per_channel"] or kernel["unique"]) <= CLUSTERS, name
  plain = quantization.strip_quantization(qat)
  assert _zeros(plain) == zeros
  top1 = pruned.evaluate(digits.x_test, digits.y_test, verbose=0)[1]
  assert check["tflite_top1"] >= top1 - 0.03
  assert check["agreement"] >= 0.98


def test_needs_the_right_input(baseline, pruned, clustered):
  with pytest.raises(ModelError, match="pqat_model needs a pruned model"):
    quantization.pqat_model(baseline)
  with pytest.raises(ModelError, match="prune_then_cluster needs a pruned"):
    quantization.prune_then_cluster(baseline, CLUSTERS)
  with pytest.raises(ModelError, match="cqat_model needs a clustered model"):
    quantization.cqat_model(baseline)
  with pytest.raises(ModelError, match=r"preserve_sparsity=True\) needs a "
                     "pruned"):
    quantization.cqat_model(clustered, preserve_sparsity=True)
  still_clustered = quantization.prune_then_cluster(pruned, CLUSTERS)
  with pytest.raises(ModelError, match="use cqat_model"):
    quantization.pqat_model(still_clustered)
