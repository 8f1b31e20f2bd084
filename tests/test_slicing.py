"""slice_model: a smaller model that predicts what the masked original does."""

import warnings

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot

import tf_compress
from tf_compress import keras
from tf_compress.errors import UserInputError
from tf_compress.pruning.slicing import channel_scores
from tf_compress.pruning.slicing import mask_channels
from tf_compress.pruning.slicing import slice_masked_model
from tf_compress.pruning.slicing import slice_model

L = keras.layers
X = np.random.RandomState(0).rand(16, 8, 8, 1).astype(np.float32)


def _randomize(model, seed=0):
  """Random weights everywhere: nonzero biases, BN that is no identity."""
  rng = np.random.RandomState(seed)
  for layer in model.layers:
    weights = []
    for variable, array in zip(layer.weights, layer.get_weights()):
      if "moving_variance" in variable.name:
        weights.append(rng.uniform(0.5, 2.0, array.shape))
      elif array.ndim > 1:  # kernels: keep activations of order 1
        fan_in = int(np.prod(array.shape[:-1]))
        weights.append(rng.normal(0.0, 1.0 / np.sqrt(fan_in), array.shape))
      else:
        weights.append(rng.normal(0.0, 0.3, array.shape))
    layer.set_weights([w.astype(np.float32) for w in weights])
  return model


def _predict(model, x=X):
  return model(x, training=False).numpy()


def _residual_add():
  inputs = keras.Input((8, 8, 1))
  stem = L.Conv2D(8, 3, padding="same", name="stem")(inputs)
  x = L.Conv2D(6, 3, padding="same", name="conv_a")(stem)
  x = L.BatchNormalization(name="bn_a")(x)
  x = L.ReLU(name="relu_a")(x)
  x = L.Conv2D(8, 3, padding="same", name="conv_b")(x)
  x = L.Add(name="add")([x, stem])
  x = L.ReLU(name="relu")(x)
  x = L.GlobalAveragePooling2D(name="gap")(x)
  return keras.Model(inputs, L.Dense(10, name="logits")(x), name="res")


def _concat():
  inputs = keras.Input((8, 8, 1))
  a = L.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")(inputs)
  b = L.Conv2D(6, 3, padding="same", activation="relu", name="conv_b")(inputs)
  x = L.Concatenate(name="cat")([a, b])
  x = L.Conv2D(5, 3, name="conv_c")(x)
  x = L.Flatten(name="flatten")(x)
  x = L.Dropout(0.5, name="drop")(x)
  return keras.Model(inputs, L.Dense(10, name="logits")(x), name="cat")


def _depthwise():
  inputs = keras.Input((8, 8, 1))
  x = L.Conv2D(6, 3, padding="same", name="conv")(inputs)
  x = L.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x)
  x = L.BatchNormalization(name="bn")(x)
  x = L.Activation("relu", name="act")(x)
  x = L.SeparableConv2D(8, 3, name="sep")(x)
  x = L.GlobalMaxPooling2D(name="gmp")(x)
  return keras.Model(inputs, L.Dense(10, name="logits")(x), name="dw")


def _sequential():
  return keras.Sequential([
      keras.Input((8, 8, 1)),
      L.Conv2D(8, 3, name="conv1"),
      L.BatchNormalization(name="bn1"),
      L.ReLU(name="relu1"),
      L.MaxPooling2D(2, name="pool"),
      L.Flatten(name="flatten"),
      L.Dense(16, activation="relu", name="fc1"),
      L.Dense(10, name="logits"),
  ], name="seq")


MODELS = {
    "cnn": lambda: tf_compress.build_model("cnn", (8, 8, 1), 10,
                                           keras_version=2),
    "cnn_bn": lambda: tf_compress.build_model("cnn_bn", (8, 8, 1), 10,
                                              keras_version=2),
    "sequential": _sequential,
    "residual_add": _residual_add,
    "concatenate": _concat,
    "depthwise_separable": _depthwise,
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def model(request):
  return _randomize(MODELS[request.param]())


@pytest.mark.parametrize("criterion", ["l1", "l2", "bn_gamma"])
def test_sliced_equals_masked_original(model, criterion):
  before = model.get_weights()
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # bn_gamma without BN
    result = slice_model(model, 0.5, criterion=criterion)
  assert result.params_after < result.params_before
  assert result.macs_after < result.macs_before
  assert result.params_after == result.model.count_params()
  masked = mask_channels(model, result.kept)
  expected = _predict(masked)
  assert np.abs(expected - _predict(model)).max() > 1e-3  # masking matters
  np.testing.assert_allclose(_predict(result.model), expected, atol=1e-5)
  # Neither call touched the caller's model.
  for old, now in zip(before, model.get_weights()):
    np.testing.assert_array_equal(old, now)
  assert isinstance(result.model, type(model))


def test_ratio_zero_is_the_same_model(model):
  result = slice_model(model, 0.0)
  assert result.params_after == result.params_before == model.count_params()
  assert result.macs_after == result.macs_before
  assert set(result.removed.values()) == {0}
  np.testing.assert_array_equal(_predict(result.model), _predict(model))


def test_hand_counted_small_model():
  inputs = keras.Input((8, 8, 1))
  x = L.Conv2D(4, 3, padding="same", name="conv")(inputs)
  x = L.Flatten(name="flatten")(x)
  model = keras.Model(inputs, L.Dense(3, name="logits")(x))
  kernel = np.zeros((3, 3, 1, 4), np.float32)
  kernel[0, 0, 0] = [4.0, 1.0, 3.0, 2.0]  # l1 ranks filters 1 < 3 < 2 < 0
  model.get_layer("conv").set_weights([kernel, np.arange(4.0)])
  result = slice_model(model, 0.5)
  assert result.kept == {"conv": [0, 2]}
  assert result.removed == {"conv": 2}
  # conv: 3*3*1*2 + 2; logits: (8*8*2)*3 + 3.
  assert result.params_after == 20 + 387
  assert result.params_before == 40 + 771
  assert result.macs_after == 8 * 8 * 9 * 2 + 128 * 3
  # The Dense keeps the rows of both kept channels at every position.
  old = model.get_layer("logits").get_weights()[0]
  new = result.model.get_layer("logits").get_weights()[0]
  rows = (np.arange(64)[:, None] * 4 + [0, 2]).ravel()
  np.testing.assert_array_equal(new, old[rows])
  np.testing.assert_array_equal(
      result.model.get_layer("conv").get_weights()[1], [0.0, 2.0])


def test_add_shares_one_keep_set():
  model = _randomize(_residual_add())
  scores = channel_scores(model, "l1")
  stem = np.abs(model.get_layer("stem").kernel.numpy()).sum((0, 1, 2))
  conv_b = np.abs(model.get_layer("conv_b").kernel.numpy()).sum((0, 1, 2))
  np.testing.assert_allclose(scores["stem"], stem + conv_b, rtol=1e-6)
  np.testing.assert_array_equal(scores["stem"], scores["conv_b"])
  result = slice_model(model, 0.5)
  expected = sorted(np.argsort(stem + conv_b, kind="stable")[4:].tolist())
  assert result.kept["stem"] == result.kept["conv_b"] == expected
  assert len(result.kept["conv_a"]) == 3
  assert result.kept["bn_a"] == result.kept["conv_a"]
  new = result.model
  assert new.get_layer("stem").kernel.shape == (3, 3, 1, 4)
  assert new.get_layer("conv_a").kernel.shape == (3, 3, 4, 3)
  assert new.get_layer("conv_b").kernel.shape == (3, 3, 3, 4)
  assert new.get_layer("logits").kernel.shape == (4, 10)


def test_concatenate_maps_offsets():
  model = _randomize(_concat())
  result = slice_model(model, 0.5)
  kept_a, kept_b = result.kept["conv_a"], result.kept["conv_b"]
  assert (len(kept_a), len(kept_b), len(result.kept["conv_c"])) == (2, 3, 2)
  old = model.get_layer("conv_c").kernel.numpy()
  new = result.model.get_layer("conv_c").kernel.numpy()
  rows = kept_a + [4 + i for i in kept_b]
  np.testing.assert_array_equal(
      new, old[:, :, rows][..., result.kept["conv_c"]])


def test_depthwise_follows_its_input_channels():
  model = _randomize(_depthwise())
  result = slice_model(model, 0.5)
  kept = result.kept["conv"]
  assert len(kept) == 3
  expanded = [2 * c + m for c in kept for m in (0, 1)]
  assert result.kept["dw"] == result.kept["bn"] == expanded
  assert result.model.get_layer("dw").depthwise_kernel.shape == (3, 3, 3, 2)
  assert result.model.get_layer("sep").pointwise_kernel.shape == (1, 1, 6, 4)


def test_squeeze_excite_multiply_reshape_and_shared_layer():
  inputs = keras.Input((8, 8, 3))
  x = L.Conv2D(3, 3, padding="same", name="c1")(inputs)
  x = L.Add(name="add_input")([x, inputs])
  x = L.Conv2D(8, 3, name="c2")(x)
  se = L.GlobalAveragePooling2D(name="gap")(x)
  se = L.Dense(4, activation="relu", name="se1")(se)
  se = L.Dense(8, activation="sigmoid", name="se2")(se)
  x = L.Multiply(name="scale")([x, L.Reshape((1, 1, 8), name="rs")(se)])
  shared = L.Conv2D(8, 1, name="shared")
  x = shared(shared(x))
  x = L.Conv2D(6, 1, activation="softmax", name="soft")(x)
  x = L.Flatten(name="flatten")(L.Conv2D(4, 1, name="last_conv")(x))
  model = _randomize(keras.Model(inputs, L.Dense(5, name="logits")(x)))
  result = slice_model(model, 0.5)
  reasons = {row["layer"]: row["reason"] for row in result.skipped}
  assert reasons["c1"].startswith("shares channels with the model input")
  assert "shared by 2 calls" in reasons["shared"]
  assert "feeds Conv2D 'shared'" in reasons["c2"]
  assert "softmax" in reasons["soft"]
  # se2 scales c2's channels (Multiply): same group, so left whole too.
  assert "feeds Conv2D 'shared'" in reasons["se2"]
  assert set(result.kept) == {"se1", "last_conv"}
  result = slice_model(model, 0.5, layers=["se1"])
  assert result.model.get_layer("se2").kernel.shape == (2, 8)
  np.testing.assert_allclose(
      _predict(result.model, X.repeat(3, axis=-1)),
      _predict(mask_channels(model, result.kept), X.repeat(3, axis=-1)),
      atol=1e-5)


def test_multiply_ties_channels_and_reshape_follows():
  inputs = keras.Input((8, 8, 1))
  x = L.Conv2D(8, 3, name="c2")(inputs)
  se = L.GlobalAveragePooling2D(name="gap")(x)
  se = L.Dense(4, activation="relu", name="se1")(se)
  se = L.Dense(8, activation="sigmoid", name="se2")(se)
  x = L.Multiply(name="scale")([x, L.Reshape((1, 1, 8), name="rs")(se)])
  x = L.Flatten(name="flatten")(x)
  model = _randomize(keras.Model(inputs, L.Dense(5, name="logits")(x)))
  result = slice_model(model, 0.5)
  assert result.kept["c2"] == result.kept["se2"]
  assert len(result.kept["c2"]) == 4
  assert result.model.get_layer("rs").target_shape == (1, 1, 4)
  np.testing.assert_allclose(_predict(result.model),
                             _predict(mask_channels(model, result.kept)),
                             atol=1e-5)


@pytest.mark.parametrize("criterion,kept", [
    ("l1", [0, 1]), ("l2", [0, 3]), ("bn_gamma", [0, 2])])
def test_criteria_rank_hand_made_weights(criterion, kept):
  inputs = keras.Input((3,))
  x = L.Dense(4, name="fc")(inputs)
  x = L.BatchNormalization(name="bn")(x)
  model = keras.Model(inputs, L.Dense(2, name="logits")(x))
  # Columns: l1 = 3, 3.2, 1.5, 2.5 and l2 = 3, 1.9, 0.87, 2.5.
  kernel = np.array([[3, 1, .5, 2.5], [0, 1, .5, 0], [0, 1.2, .5, 0]])
  model.get_layer("fc").set_weights([kernel, np.zeros(4)])
  bn = model.get_layer("bn")
  bn.set_weights([np.array([-5, .1, 2, -.2])] + bn.get_weights()[1:])
  result = slice_model(model, 0.5, criterion=criterion)
  assert result.kept["fc"] == kept
  row = next(r for r in result.per_layer if r["layer"] == "fc")
  assert row["criterion"] == criterion
  assert (row["channels_before"], row["channels_after"]) == (4, 2)


def test_bn_gamma_without_batchnorm_falls_back_to_l1():
  model = _randomize(_concat())
  with pytest.warns(RuntimeWarning, match="ranked by l1"):
    result = slice_model(model, 0.5, criterion="bn_gamma")
  assert result.kept == slice_model(model, 0.5, criterion="l1").kept
  row = next(r for r in result.per_layer if r["layer"] == "conv_a")
  assert row["criterion"] == "l1 (no BatchNormalization follows)"


class Doubler(L.Layer):
  """A custom layer: tf_compress cannot know what it does to channels."""

  def call(self, inputs):
    return inputs * 2.0


def test_unknown_layers_are_left_whole_and_listed():
  inputs = keras.Input((8, 8, 1))
  x = L.Conv2D(4, 3, name="conv1")(inputs)
  x = L.Lambda(lambda t: t * 2.0, name="lam")(x)
  x = L.Conv2D(6, 3, name="conv2")(x)
  x = Doubler(name="custom")(x)
  x = L.Conv2D(8, 3, name="conv3")(x)
  x = L.Flatten()(x)
  model = _randomize(keras.Model(inputs, L.Dense(10, name="logits")(x)))
  result = slice_model(model, 0.5)
  reasons = {row["layer"]: row["reason"] for row in result.skipped}
  assert set(reasons) == {"lam", "custom", "conv1", "conv2", "logits"}
  assert "Lambda" in reasons["lam"] and "left whole" in reasons["lam"]
  assert "Doubler" in reasons["custom"]
  assert "feeds Lambda 'lam'" in reasons["conv1"]
  assert "feeds Doubler 'custom'" in reasons["conv2"]
  assert "model output" in reasons["logits"]
  assert list(result.kept) == ["conv3"]
  np.testing.assert_allclose(_predict(result.model),
                             _predict(mask_channels(model, result.kept)),
                             atol=1e-5)


def test_digits_cnn_half_slicing_cuts_macs():
  model = tf_compress.build_model("cnn", (8, 8, 1), 10, keras_version=2)
  result = slice_model(model, 0.5)
  assert result.macs_before / result.macs_after >= 2.0
  rows = {row["layer"]: row for row in result.per_layer}
  assert rows["conv2"]["macs_after"] * 4 == rows["conv2"]["macs_before"]
  assert {n: rows[n]["channels_after"] for n in ("conv1", "conv2", "fc1",
                                                 "logits")} == {
                                                     "conv1": 16,
                                                     "conv2": 32,
                                                     "fc1": 64,
                                                     "logits": 10}
  assert result.params_after == 160 + 4640 + 18496 + 650


def test_layers_argument_slices_only_those():
  model = _randomize(tf_compress.build_model("cnn", (8, 8, 1), 10,
                                             keras_version=2))
  result = slice_model(model, 0.5, layers=["conv2"])
  assert set(result.kept) == {"conv2"}
  assert result.model.get_layer("conv1").kernel.shape == (3, 3, 1, 32)
  assert result.model.get_layer("conv2").kernel.shape == (3, 3, 32, 32)
  with pytest.raises(UserInputError, match="'flatten' in `layers`"):
    slice_model(model, 0.5, layers=["flatten"])


def test_save_load_round_trip(tmp_path):
  model = _randomize(_residual_add())
  result = slice_model(model, 0.5)
  path = str(tmp_path / "sliced.keras")
  result.model.save(path)
  loaded = tf_compress.load_model(path)
  np.testing.assert_allclose(_predict(loaded), _predict(result.model),
                             atol=1e-6)


def test_slice_masked_model_from_kept_sets():
  model = _randomize(_sequential())
  kept = {"conv1": [1, 3, 5], "fc1": list(range(8))}
  result = slice_masked_model(model, kept)
  assert result.kept["bn1"] == [1, 3, 5]
  np.testing.assert_allclose(_predict(result.model),
                             _predict(mask_channels(model, kept)), atol=1e-5)
  with pytest.raises(UserInputError, match="cannot be sliced"):
    slice_masked_model(model, {"logits": [0]})
  with pytest.raises(UserInputError, match="channel indices"):
    slice_masked_model(model, {"conv1": [8]})
  res = _randomize(_residual_add())
  with pytest.raises(UserInputError, match="same ones"):
    mask_channels(res, {"stem": [0, 1], "conv_b": [0, 2]})


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5, "half", True, None],
                         ids=str)
def test_bad_ratio(ratio):
  with pytest.raises(UserInputError, match=r"`ratio` must be .* \[0, 1\)"):
    slice_model(_sequential(), ratio)


def test_other_bad_values():
  model = _sequential()
  with pytest.raises(UserInputError, match="would remove all 8 channels"):
    slice_model(model, 0.95)
  with pytest.raises(UserInputError, match="unknown slicing criterion 'l3'"):
    slice_model(model, 0.5, criterion="l3")
  with pytest.raises(TypeError, match="Keras 3 or tf_keras Model"):
    slice_model(object(), 0.5)
  with pytest.raises(TypeError, match="Keras 3 or tf_keras Model"):
    mask_channels("model.keras", {})


def test_nested_model_is_left_whole():
  inner_in = keras.Input((6, 6, 4))
  inner = keras.Model(inner_in, L.Conv2D(3, 1, name="inner_conv")(inner_in),
                      name="block")
  inputs = keras.Input((8, 8, 1))
  x = inner(L.Conv2D(4, 3, name="conv1")(inputs))
  x = L.Flatten()(L.Conv2D(5, 3, name="conv2")(x))
  model = _randomize(keras.Model(inputs, L.Dense(3, name="logits")(x)))
  inner.set_weights([w + 0.1 for w in inner.get_weights()])
  result = slice_model(model, 0.5)
  reasons = {row["layer"]: row["reason"] for row in result.skipped}
  assert "nested model" in reasons["block"]
  assert "feeds Functional 'block'" in reasons["conv1"]
  assert result.kept == {"conv2": result.kept["conv2"]}
  np.testing.assert_allclose(_predict(result.model),
                             _predict(mask_channels(model, result.kept)),
                             atol=1e-5)


def test_wrapped_and_subclassed_models_are_refused():
  pruned = tfmot.sparsity.keras.prune_low_magnitude(_sequential())
  with pytest.raises(UserInputError, match="strip_pruning"):
    slice_model(pruned, 0.5)

  class Sub(keras.Model):

    def __init__(self):
      super().__init__()
      self.fc = L.Dense(2)

    def call(self, x):
      return self.fc(x)

  sub = Sub()
  sub(np.zeros((1, 3), np.float32))
  with pytest.raises(UserInputError, match="not a built Functional"):
    slice_model(sub, 0.5)
