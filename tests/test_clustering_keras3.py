"""Native Keras 3 clustering: centroids, digits CNN, model kinds, resuming.

One float CNN is trained on digits once per module; it is clustered to 16
values per kernel and fine-tuned for an epoch, once.
"""

import json

import keras
import numpy as np
import pytest

import tf_compress
from tf_compress import quantization
from tf_compress._tfmot import tfmot_module
from tf_compress.errors import ModelError, UserInputError
from tf_compress.quantization import keras3_centroids
from tf_compress.quantization import keras3_clustering

_LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
KERNELS = ["c1", "c2", "fc", "logits"]


def _cnn(input_shape):
  inputs = keras.Input(input_shape)
  x = keras.layers.Conv2D(8, 3, activation="relu", name="c1")(inputs)
  x = keras.layers.Conv2D(16, 3, activation="relu", name="c2")(x)
  x = keras.layers.Flatten(name="flat")(x)
  x = keras.layers.Dense(32, activation="relu", name="fc")(x)
  return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x))


def _compile(model, lr=1e-3):
  model.compile(keras.optimizers.Adam(lr), _LOSS, metrics=["accuracy"],
                jit_compile=False)
  return model


def _state(model, name):
  layer = [l for l in quantization.find_clustering_wrappers(model)
           if l.name == name][0]
  return getattr(layer, keras3_clustering.KERNEL_SOURCE_ATTRIBUTE)


def _unique(model):
  return {row["layer"]: row["unique"]
          for row in quantization.unique_values_per_layer(model)}


@pytest.fixture(scope="module")
def baseline(digits):
  keras.utils.set_random_seed(0)
  model = _compile(_cnn(digits.input_shape), 3e-3)
  model.fit(digits.x_train, digits.y_train, epochs=5, batch_size=32,
            verbose=0)
  return model


@pytest.fixture(scope="module")
def baseline_weights(baseline):
  return [w.copy() for w in baseline.get_weights()]


@pytest.fixture(scope="module")
def clustered_run(baseline, baseline_weights, digits):
  """16 clusters per kernel, 1 epoch at 1e-3, stripped."""
  del baseline_weights  # taken before clustering
  keras.utils.set_random_seed(1)
  clustered = _compile(quantization.cluster_model(baseline, 16))
  clustered.fit(digits.x_train, digits.y_train, epochs=1, batch_size=32,
                verbose=0)
  return clustered, _compile(quantization.strip_clustering(clustered))


# -------------------------------------------------------------- centroids


def _one_kernel_model(values):
  values = np.asarray(values, np.float32).reshape(-1, 1)
  model = keras.Sequential([keras.Input((values.shape[0],)),
                            keras.layers.Dense(1, use_bias=False, name="d")])
  model.get_layer("d").kernel.assign(values)
  return model


@pytest.mark.parametrize("init,values,clusters,sparse,expected", [
    ("linear", [-1, -0.5, 0, 0.25, 1, 3], 3, False, [-1, 1, 3]),
    # Grid 0.0, 0.1, ..., 2.9 (min - 0.01 to max + 0.01); CDF 0.4 from
    # 0.1, 0.8 from 1.6, 1 at 2.9; probabilities 0.01, 0.505, 1.
    ("density", [0.01] * 4 + [1.55] * 4 + [2.89] * 2, 3, False,
     [0.1, 1.6, 2.9]),
    # Three distinct values: each D^2 draw can only pick a new one.
    ("kmeans++", [-1] * 4 + [0.5] * 4 + [2] * 4, 3, False, [-1, 0.5, 2]),
    # 2 negatives, 3 positives, 3 non-zero clusters: 1 and 2, and 0.
    ("linear", [-3, -1, 0, 0, 1, 2, 4], 4, True, [-3, 0, 1, 4]),
    ("kmeans++", [-2] * 3 + [-1] * 3 + [0] * 4 + [1] * 3 + [3] * 3, 5, True,
     [-2, -1, 0, 1, 3]),
], ids=["linear", "density", "kmeans++", "linear-sparse", "kmeans++-sparse"])
def test_init_gives_hand_computed_centroids(init, values, clusters, sparse,
                                            expected):
  clustered = quantization.cluster_model(_one_kernel_model(values), clusters,
                                         init=init, preserve_sparsity=sparse)
  centroids = _state(clustered, "d").centroids.numpy()
  np.testing.assert_allclose(np.sort(centroids), expected, atol=1e-6)


@pytest.mark.parametrize("sparse", [False, True], ids=["plain", "sparse"])
@pytest.mark.parametrize("init,cls", [
    ("linear", "LinearCentroidsInitialisation"),
    ("density", "DensityBasedCentroidsInitialisation")])
def test_deterministic_inits_match_tfmot(init, cls, sparse):
  # tfmot is imported by this test process anyway (see conftest).
  centroids_lib = tfmot_module(
      "python.core.clustering.keras.clustering_centroids")
  weights = np.random.default_rng(0).normal(size=(3, 3, 4, 8)).astype(
      np.float32)
  weights[np.abs(weights) < 0.4] = 0.0
  for clusters in (5, 16):
    theirs = getattr(centroids_lib, cls)(
        keras.ops.convert_to_tensor(weights), clusters,
        preserve_sparsity=sparse).get_cluster_centroids().numpy()
    ours = keras3_centroids.initial_centroids(weights, clusters, init,
                                              sparse)
    np.testing.assert_allclose(ours, np.sort(theirs), atol=1e-6)


def test_random_init_lies_within_the_weights():
  values = np.random.default_rng(1).normal(size=200)
  centroids = keras3_centroids.initial_centroids(values, 8, "random")
  assert centroids.shape == (8,)
  assert values.min() <= centroids.min() and centroids.max() <= values.max()
  assert np.unique(centroids).size == 8


# ---------------------------------------------------- the digits CNN, k=16


def test_every_kernel_clustered_to_16_values(clustered_run):
  clustered, stripped = clustered_run
  assert [l.name for l in quantization.find_clustering_wrappers(
      clustered)] == KERNELS
  rows = quantization.unique_values_per_layer(stripped)
  assert [(r["layer"], r["weight"], r["size"]) for r in rows] == [
      ("c1", "kernel", 72), ("c2", "kernel", 1152), ("fc", "kernel", 8192),
      ("logits", "kernel", 320)]
  for row in rows:
    assert 8 <= row["unique"] <= 16, row
  # Counted on the clustered model, the same; the stripped one is plain.
  assert quantization.unique_values_per_layer(clustered) == rows
  assert not quantization.find_clustering_wrappers(stripped)
  assert len(stripped.weights) == 8 and len(clustered.weights) == 12


def test_accuracy_kept_and_strip_computes_the_same(clustered_run, baseline,
                                                   digits):
  clustered, stripped = clustered_run
  float_top1 = baseline.evaluate(digits.x_test, digits.y_test, verbose=0)[1]
  top1 = stripped.evaluate(digits.x_test, digits.y_test, verbose=0)[1]
  print(f"float={float_top1:.4f} clustered(16)={top1:.4f}")
  assert top1 >= max(0.9, float_top1 - 0.02)
  np.testing.assert_allclose(stripped.predict(digits.x_test, verbose=0),
                             clustered.predict(digits.x_test, verbose=0),
                             atol=1e-5)


def test_centroids_and_kernels_trained(clustered_run, baseline):
  clustered, _ = clustered_run
  kernel = baseline.get_layer("c2").kernel.numpy()
  initial = keras3_centroids.initial_centroids(kernel, 16, "kmeans++")
  trained = _state(clustered, "c2").centroids.numpy()
  # The gradients reached the centroids, and (straight through) the
  # kernel behind them, from which the indices are re-assigned.
  assert np.abs(trained - initial).max() > 1e-3
  assert np.abs(clustered.get_layer("c2").kernel.numpy() - kernel).max() > 1e-3


def test_caller_model_untouched(clustered_run, baseline, baseline_weights):
  del clustered_run  # trained
  for before, after in zip(baseline_weights, baseline.get_weights()):
    np.testing.assert_array_equal(before, after)
  assert not quantization.find_clustering_wrappers(baseline)
  assert _unique(baseline)["fc"] > 8000


def test_preserve_sparsity_keeps_zeros_exactly():
  keras.utils.set_random_seed(3)
  model = keras.Sequential([keras.Input((12,)),
                            keras.layers.Dense(10, name="d")])
  kernel = model.get_layer("d").kernel.numpy()
  kernel[::2] = 0.0
  model.get_layer("d").kernel.assign(kernel)
  clustered = _compile(quantization.cluster_model(model, 4,
                                                  preserve_sparsity=True))
  x = np.random.default_rng(0).normal(size=(64, 12)).astype(np.float32)
  clustered.fit(x, x[:, :1] > 0, epochs=3, batch_size=16, verbose=0)
  stripped = quantization.strip_clustering(clustered).get_layer("d")
  values = stripped.kernel.numpy()
  # The sparsity pattern is kept exactly: zeros stay zeros, and no
  # non-zero weight joins the zero cluster.
  np.testing.assert_array_equal(values == 0, kernel == 0)
  assert 0.0 in np.unique(values) and np.unique(values).size <= 4
  np.testing.assert_array_equal(
      clustered.get_layer("d").kernel.numpy()[kernel == 0], 0.0)


def test_tiny_kernels_left_alone():
  inputs = keras.Input((2,))
  x = keras.layers.Dense(3, name="tiny")(inputs)  # 6 weights
  model = keras.Model(inputs, keras.layers.Dense(40, name="wide")(x))
  clustered = quantization.cluster_model(model, 8)
  assert [l.name for l in quantization.find_clustering_wrappers(
      clustered)] == ["wide"]
  with pytest.raises(ModelError, match="more than 8 elements"):
    quantization.cluster_model(model, 8, layers=["tiny"])


# ------------------------------------------------------------- model kinds


@keras.saving.register_keras_serializable(package="tf_compress_tests")
class ClusterNet(keras.Model):
  """A subclassed model: separable conv, depthwise conv, dense head."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.sep = keras.layers.SeparableConv2D(8, 3, activation="relu")
    self.dw = keras.layers.DepthwiseConv2D(3, activation="relu")
    self.flat = keras.layers.Flatten()
    self.head = keras.layers.Dense(10)

  def call(self, x):
    return self.head(self.flat(self.dw(self.sep(x))))


def test_subclassed_model_clustered_and_stripped_in_place(digits):
  keras.utils.set_random_seed(4)
  model = ClusterNet()
  model(digits.x_train[:2])
  clustered = quantization.cluster_model(model, 4)
  assert clustered is model
  rows = quantization.unique_values_per_layer(model)
  assert [(r["weight"], r["size"]) for r in rows] == [
      ("pointwise_kernel", 8), ("kernel", 72), ("kernel", 1280)]
  assert len(quantization.find_clustering_wrappers(model)) == 3
  _compile(model).fit(digits.x_train[:320], digits.y_train[:320], epochs=1,
                      batch_size=32, verbose=0)
  x = digits.x_test[:64]
  before = model.predict(x, verbose=0)
  assert quantization.strip_clustering(model) is model
  assert not quantization.find_clustering_wrappers(model)
  assert [r["unique"] for r in quantization.unique_values_per_layer(
      model)] == [4, 4, 4]
  np.testing.assert_allclose(model.predict(x, verbose=0), before, atol=1e-5)
  # Plain again: one more step moves the kernels off their 4 values.
  model.fit(digits.x_train[:32], digits.y_train[:32], epochs=1, verbose=0)
  assert min(_unique(model).values()) > 4


def test_nested_model_walked_and_embedding_clustered():
  inner = keras.Sequential([keras.Input((5,), dtype="int32"),
                            keras.layers.Embedding(20, 8, name="emb"),
                            keras.layers.Conv1D(4, 2, name="conv")],
                           name="inner")
  inputs = keras.Input((5,), dtype="int32")
  x = keras.layers.GlobalAveragePooling1D()(inner(inputs))
  model = keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
  clustered = quantization.cluster_model(model, 4, init="density")
  assert list(_unique(clustered)) == ["inner/emb", "inner/conv", "head"]
  assert list(_unique(clustered).values()) == [4, 4, 4]
  assert not quantization.find_clustering_wrappers(model)
  stripped = quantization.strip_clustering(clustered)
  assert _unique(stripped) == _unique(clustered)


# ------------------------------------------------------ saving and resuming


def test_save_load_round_trip(clustered_run, digits, tmp_path):
  clustered, _ = clustered_run
  path = tmp_path / "clustered.keras"
  clustered.save(path)
  again = quantization.load_clustered_model(path, 16)
  x = digits.x_test[:64]
  np.testing.assert_array_equal(again.predict(x, verbose=0),
                                clustered.predict(x, verbose=0))
  for name in KERNELS:
    np.testing.assert_array_equal(_state(again, name).centroids.numpy(),
                                  _state(clustered, name).centroids.numpy())
  with pytest.raises(ModelError, match="same num_clusters"):
    quantization.load_clustered_model(path, 8)
  with pytest.raises(ModelError, match="holds 4 clustered weights.*2"):
    quantization.load_clustered_model(path, 16, layer_types=["Dense"])
  with pytest.raises(UserInputError, match="needs the num_clusters"):
    quantization.load_clustered_model(path)


def test_cluster_state_config_round_trip():
  state = keras3_clustering.ClusterState(
      "kernel", (4, 3), 5, preserve_sparsity=True, reassign=False,
      zero_index=2, name="s")
  config = json.loads(json.dumps(keras.saving.serialize_keras_object(
      state)))
  assert config["registered_name"] == "tf_compress>ClusterState"
  again = keras.saving.deserialize_keras_object(config)
  assert again.get_config() == state.get_config()
  assert [tuple(v.shape) for v in again.weights] == [(5,), (4, 3), (4, 3)]


def _mlp_clustered(seed=5):
  keras.utils.set_random_seed(seed)
  model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                            keras.layers.Dense(16, name="fc"),
                            keras.layers.Dense(10, name="out")])
  return _compile(quantization.cluster_model(model, 8, init="linear"))


class _Interrupt(keras.callbacks.Callback):
  """Records the weights after epoch 0, then stops the run."""

  def on_epoch_begin(self, epoch, logs=None):
    if epoch == 1:
      self.weights = [v.numpy() for v in self.model.weights]
      raise RuntimeError("interrupted at epoch 1")


def test_backup_and_restore_restores_the_clusters(digits, tmp_path):
  x, y = digits.x_train[:256], digits.y_train[:256]
  backup = str(tmp_path / "backup")
  interrupt = _Interrupt()
  with pytest.raises(RuntimeError, match="interrupted"):
    _mlp_clustered().fit(x, y, batch_size=32, epochs=2, verbose=0,
                         callbacks=[keras.callbacks.BackupAndRestore(backup),
                                    interrupt])
  rerun = _mlp_clustered(seed=6)  # other initial weights and centroids
  centroids = _state(rerun, "fc").centroids.numpy()
  assert np.abs(centroids - interrupt.weights[2]).max() > 1e-3
  # Resumed after epoch 0 of 1: restored, with nothing left to train.
  rerun.fit(x, y, batch_size=32, epochs=1, verbose=0,
            callbacks=[keras.callbacks.BackupAndRestore(backup)])
  assert int(rerun.optimizer.iterations) == 8
  restored = [v.numpy() for v in rerun.weights]
  assert [w.path for w in rerun.weights][2] == "fc_cluster/centroids"
  assert len(restored) == 6  # kernels, biases, centroids
  for a, b in zip(interrupt.weights, restored):
    np.testing.assert_array_equal(a, b)


def test_trains_under_mirrored_strategy(baseline, digits, logical_cpus):
  del logical_cpus  # the 2 devices the strategy mirrors over
  strategy = tf_compress.make_strategy("mirrored", 2)
  with strategy.scope():
    model = _cnn(digits.input_shape)
    model.set_weights(baseline.get_weights())
    clustered = _compile(quantization.cluster_model(
        model, 8, layer_types=["Dense"]))
  history = clustered.fit(digits.x_train[:256], digits.y_train[:256],
                          batch_size=64, epochs=1, verbose=0)
  assert np.isfinite(history.history["loss"][0])
  unique = _unique(quantization.strip_clustering(clustered))
  assert unique["fc"] <= 8 and unique["logits"] <= 8
  assert unique["c1"] == 72 and unique["c2"] > 1000


# ------------------------------------------------------------------ errors


class Scale(keras.layers.Layer):
  """A custom layer with a weight the engine cannot cluster."""

  def build(self, input_shape):
    self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")

  def call(self, inputs):
    return inputs * self.w


@pytest.mark.parametrize("kwargs,error,pattern", [
    ({"num_clusters": 1}, UserInputError, r"num_clusters must be .* got 1"),
    ({"num_clusters": True}, UserInputError, r"got True"),
    ({"num_clusters": 8.0}, UserInputError, r"got 8.0"),
    ({"num_clusters": 8, "init": "kmeans"}, UserInputError,
     r"unknown centroid initialization 'kmeans'.*kmeans\+\+, linear"),
    ({"num_clusters": 8, "layers": ["flat"]}, ModelError,
     r"no layer .* is selected for clustering"),
    ({"num_clusters": 8, "layers": "("}, UserInputError,
     r"not a valid regular expression"),
], ids=["one", "bool", "float", "init", "nothing", "bad-regex"])
def test_bad_arguments(baseline, kwargs, error, pattern):
  with pytest.raises(error, match=pattern):
    quantization.cluster_model(baseline, **kwargs)


def test_custom_layer_and_instrumented_models_refused(clustered_run,
                                                      baseline):
  inputs = keras.Input((20,))
  x = Scale(name="scale")(inputs)
  model = keras.Model(inputs, keras.layers.Dense(30, name="dense")(x))
  with pytest.raises(ModelError, match=r"'scale' \(Scale\).*layer_types"):
    quantization.cluster_model(model, 8)
  assert [l.name for l in quantization.find_clustering_wrappers(
      quantization.cluster_model(model, 8, layer_types=["Dense"]))] == [
          "dense"]
  clustered, _ = clustered_run
  with pytest.raises(ModelError, match="already clustered"):
    quantization.cluster_model(clustered, 8)
  qat = quantization.quantize_model(baseline)
  with pytest.raises(ModelError, match="cqat_model"):
    quantization.cluster_model(qat, 8)
