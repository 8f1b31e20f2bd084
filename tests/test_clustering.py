"""cluster_model, strip_clustering and unique_values_per_layer on digits."""

import numpy as np
import pytest

import tf_compress
from tf_compress import export
from tf_compress import keras
from tf_compress import ModelError
from tf_compress import quantization
from tf_compress import UserInputError

from classifiers import compile_classifier
from classifiers import trained_classifier

BATCH = 32
KERNELS = ["conv1", "conv2", "fc1", "logits"]


def _wrapped(model):
  return [w.layer.name for w in quantization.find_clustering_wrappers(model)]


@pytest.fixture(scope="module")
def baseline(digits):
  return trained_classifier(digits, "cnn", epochs=5, batch_size=BATCH)


@pytest.fixture(scope="module")
def baseline_weights(baseline):
  return [w.copy() for w in baseline.get_weights()]


@pytest.fixture(scope="module")
def clustered_run(baseline, baseline_weights, digits):
  """8 clusters per kernel, 1 fine-tuning epoch, stripped."""
  del baseline_weights  # taken before clustering
  tf_compress.set_seed(1)
  clustered = compile_classifier(quantization.cluster_model(baseline, 8), 1e-4)
  clustered.fit(digits.x_train, digits.y_train, batch_size=BATCH, epochs=1,
                verbose=0)
  return clustered, compile_classifier(quantization.strip_clustering(clustered))


def test_every_kernel_clustered(clustered_run):
  clustered, stripped = clustered_run
  assert _wrapped(clustered) == KERNELS
  rows = quantization.unique_values_per_layer(stripped)
  assert [(r["layer"], r["weight"]) for r in rows] == [
      (name, "kernel") for name in KERNELS]
  assert [r["size"] for r in rows] == [288, 18432, 73728, 1280]
  for row in rows:
    assert 2 <= row["unique"] <= 8, row
  # Counted on the wrapped model too, the same.
  assert quantization.unique_values_per_layer(clustered) == rows


def test_accuracy_kept(clustered_run, baseline, digits):
  _, stripped = clustered_run
  float_top1 = baseline.evaluate(digits.x_test, digits.y_test, verbose=0)[1]
  top1 = stripped.evaluate(digits.x_test, digits.y_test, verbose=0)[1]
  print(f"float={float_top1:.4f} clustered(8)={top1:.4f}")
  assert top1 >= float_top1 - 0.02


def test_clusters_reach_the_tflite_file(clustered_run):
  _, stripped = clustered_run
  float_file = export.inspect_tflite(
      export.convert_to_tflite(stripped, "float32"), per_tensor=True)
  kernels = [w for w in float_file["weights"] if w["role"] == "kernel"]
  assert len(kernels) == 4
  for weight in kernels:
    assert weight["dtype"] == "float32"
    assert weight["unique"] <= 8, weight["name"]


def test_strip_leaves_wrapped_model_alone(clustered_run, digits):
  clustered, stripped = clustered_run
  before = [v.numpy().copy() for v in clustered.weights]
  again = quantization.strip_clustering(clustered)
  for value, variable in zip(before, clustered.weights):
    np.testing.assert_array_equal(value, variable.numpy())
  assert not quantization.find_clustering_wrappers(again)
  assert [type(l).__name__ for l in again.layers] == [
      type(l).__name__ for l in stripped.layers]
  np.testing.assert_array_equal(again.predict(digits.x_test, verbose=0),
                                stripped.predict(digits.x_test, verbose=0))
  # The copy shares no variable with the wrapped model.
  ids = {id(v) for v in clustered.weights}
  assert not any(id(v) in ids for v in again.weights)


def test_caller_model_untouched(clustered_run, baseline, baseline_weights):
  del clustered_run  # trained
  for before, after in zip(baseline_weights, baseline.get_weights()):
    np.testing.assert_array_equal(before, after)
  assert not quantization.find_clustering_wrappers(baseline)


def test_plain_model_counts(baseline):
  rows = quantization.unique_values_per_layer(baseline)
  assert [r["layer"] for r in rows] == KERNELS
  # A trained float kernel has (nearly) as many values as elements.
  for row in rows:
    assert row["unique"] > 0.9 * row["size"]


@pytest.mark.parametrize("init", sorted(quantization.CLUSTER_INITS))
def test_each_init(baseline, init):
  # conv1 only: density initialization takes seconds on larger kernels.
  clustered = quantization.cluster_model(baseline, 16, init=init,
                                         layers=["conv1"])
  assert _wrapped(clustered) == ["conv1"]
  rows = quantization.unique_values_per_layer(clustered)
  assert 2 <= rows[0]["unique"] <= 16, (init, rows[0])
  assert [row["unique"] > 16 for row in rows[1:]] == [True, True, True]


@pytest.mark.parametrize("kwargs,expected", [
    ({"layers": ["fc.*"]}, ["fc1"]),
    ({"layer_types": ["Dense"]}, ["fc1", "logits"]),
    ({"layers": ["conv.*", "logits"], "layer_types": ["Conv2D"]},
     ["conv1", "conv2"]),
], ids=["names", "types", "both"])
def test_chosen_layers_only(baseline, kwargs, expected):
  clustered = quantization.cluster_model(baseline, 8, **kwargs)
  assert _wrapped(clustered) == expected
  rows = {r["layer"]: r["unique"]
          for r in quantization.unique_values_per_layer(clustered)}
  for name in KERNELS:
    if name in expected:
      assert rows[name] <= 8
    else:
      assert rows[name] > 100


def test_tiny_kernels_left_alone():
  # 2 x 3 = 6 weights: already at most 8 values.
  inputs = keras.Input((2,))
  x = keras.layers.Dense(3, name="tiny")(inputs)
  outputs = keras.layers.Dense(40, name="wide")(x)
  model = keras.Model(inputs, outputs)
  assert _wrapped(quantization.cluster_model(model, 8)) == ["wide"]
  with pytest.raises(ModelError, match="more than 8 elements"):
    quantization.cluster_model(model, 8, layers=["tiny"])


def test_stripped_model_save_load(clustered_run, tmp_path):
  _, stripped = clustered_run
  path = str(tmp_path / "clustered.keras")
  tf_compress.save_model(stripped, path)
  loaded = tf_compress.load_model(path)
  assert quantization.unique_values_per_layer(
      loaded) == quantization.unique_values_per_layer(stripped)


def test_trains_under_mirrored_strategy(baseline, digits, logical_cpus):
  del logical_cpus  # the 2 devices the strategy mirrors over
  strategy = tf_compress.make_strategy("mirrored", 2)
  with strategy.scope():
    clustered = compile_classifier(quantization.cluster_model(
        baseline, 8, layer_types=["Dense"]), 1e-4)
  history = clustered.fit(digits.x_train[:320], digits.y_train[:320],
                          batch_size=BATCH, epochs=1, verbose=0)
  assert np.isfinite(history.history["loss"][0])
  stripped = compile_classifier(quantization.strip_clustering(clustered))
  rows = {r["layer"]: r["unique"]
          for r in quantization.unique_values_per_layer(stripped)}
  assert rows["fc1"] <= 8 and rows["logits"] <= 8
  assert stripped.evaluate(digits.x_test, digits.y_test, verbose=0)[1] >= 0.9


@keras.utils.register_keras_serializable(package="tf_compress_tests")
class Scale(keras.layers.Layer):
  """A custom layer with a weight tfmot cannot cluster."""

  def build(self, input_shape):
    self.w = self.add_weight("w", shape=(input_shape[-1],),
                             initializer="ones")

  def call(self, inputs):
    return inputs * self.w


def _custom_model():
  inputs = keras.Input((20,))
  x = Scale(name="scale")(inputs)
  outputs = keras.layers.Dense(30, name="dense")(x)
  return keras.Model(inputs, outputs)


def test_custom_layer_error_says_how():
  with pytest.raises(ModelError) as info:
    quantization.cluster_model(_custom_model(), 8)
  for part in ("'scale'", "Scale", "ClusterableLayer", "layer_types"):
    assert part in str(info.value)
  clustered = quantization.cluster_model(_custom_model(), 8,
                                         layer_types=["Dense"])
  assert _wrapped(clustered) == ["dense"]


@pytest.mark.parametrize("kwargs,error,pattern", [
    ({"num_clusters": 1}, UserInputError, r"num_clusters must be .* got 1"),
    ({"num_clusters": 0}, UserInputError, r"got 0"),
    ({"num_clusters": True}, UserInputError, r"got True"),
    ({"num_clusters": 8.0}, UserInputError, r"got 8.0"),
    ({"num_clusters": 8, "init": "kmeans"}, UserInputError,
     r"unknown centroid initialization 'kmeans'.*kmeans\+\+, linear"),
    ({"num_clusters": 8, "layers": ["relu1"]}, ModelError,
     r"no layer .* is selected for clustering"),
    ({"num_clusters": 8, "layers": "("}, UserInputError,
     r"not a valid regular expression"),
], ids=["one", "zero", "bool", "float", "init", "nothing", "bad-regex"])
def test_bad_arguments(baseline, kwargs, error, pattern):
  with pytest.raises(error, match=pattern):
    quantization.cluster_model(baseline, **kwargs)


def test_wrapped_model_refused(clustered_run):
  clustered, _ = clustered_run
  with pytest.raises(ModelError, match="strip_clustering"):
    quantization.cluster_model(clustered, 8)
