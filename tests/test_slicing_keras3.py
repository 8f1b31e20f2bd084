"""slice_model and SlicingCallback on Keras 3 models (no tfmot)."""

import json
import warnings

import keras
import numpy as np
import pytest

import tf_compress
from tf_compress import export
from tf_compress import pruning
from tf_compress.errors import ModelError
from tf_compress.errors import UserInputError

L = keras.layers
X = np.random.RandomState(0).rand(8, 8, 8, 1).astype(np.float32)


def _randomize(model, seed=0):
  """Random weights: nonzero biases, BN that is no identity, O(1) outputs."""
  rng = np.random.RandomState(seed)
  for layer in model.layers:
    weights = []
    depthwise = isinstance(layer, L.DepthwiseConv2D)
    for variable, array in zip(layer.weights, layer.get_weights()):
      if "moving_variance" in variable.path:
        weights.append(rng.uniform(0.5, 2.0, array.shape))
      elif array.ndim > 1:
        fan_in = int(np.prod(array.shape[:-2 if depthwise else -1]))
        weights.append(rng.normal(0.0, 1.0 / np.sqrt(fan_in), array.shape))
      else:
        weights.append(rng.normal(0.0, 0.3, array.shape))
    layer.set_weights([w.astype(np.float32) for w in weights])
  return model


def _predict(model, x=X):
  return keras.ops.convert_to_numpy(model(x, training=False))


def _small_cnn():
  """BN + Add + Concatenate + depthwise, 16x16x3 input."""
  inputs = keras.Input((16, 16, 3))
  stem = L.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(inputs)
  stem = L.ReLU(name="stem_relu")(L.BatchNormalization(name="stem_bn")(stem))
  x = L.Conv2D(16, 3, padding="same", name="conv_a")(stem)
  x = L.ReLU(name="relu_a")(L.BatchNormalization(name="bn_a")(x))
  x = L.Add(name="add")([x, stem])
  d = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
  d = L.ReLU(name="dw_relu")(L.BatchNormalization(name="dw_bn")(d))
  d = L.Conv2D(16, 1, name="pw")(d)
  b = L.Conv2D(8, 3, padding="same", name="branch")(x)
  x = L.Concatenate(name="cat")([d, b])
  x = L.MaxPooling2D(2, name="pool")(x)
  x = L.Conv2D(32, 3, padding="same", activation="relu", name="conv_c")(x)
  x = L.GlobalAveragePooling2D(name="gap")(x)
  return keras.Model(inputs, L.Dense(10, name="logits")(x), name="small")


def _sequential():
  return keras.Sequential([
      keras.Input((8, 8, 1)), L.Conv2D(8, 3, name="conv1"),
      L.BatchNormalization(name="bn1"), L.ReLU(name="relu1"),
      L.MaxPooling2D(2, name="pool"), L.Flatten(name="flatten"),
      L.Dense(16, activation="relu", name="fc1"), L.Dense(10, name="logits")
  ], name="seq")


def _separable():
  inputs = keras.Input((8, 8, 1))
  x = L.Conv2D(6, 3, padding="same", name="conv")(inputs)
  x = L.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x)
  x = L.Activation("relu", name="act")(L.BatchNormalization(name="bn")(x))
  x = L.SeparableConv2D(8, 3, name="sep")(x)
  x = L.Reshape((1, 1, 8), name="rs")(L.GlobalMaxPooling2D(name="gmp")(x))
  x = L.Flatten(name="flat")(L.Conv2DTranspose(4, 1, name="up")(x))
  return keras.Model(inputs, L.Dense(10, name="logits")(x), name="sep")


def _hard_sigmoid(x):
  # As keras.applications' MobileNetV3: Keras 3 ops on KerasTensors.
  return L.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)


def _squeeze_excite():
  """MobileNetV3's SE block (op gate) and EfficientNet's (Reshape gate)."""
  inputs = keras.Input((8, 8, 1))
  x = L.Conv2D(8, 3, padding="same", name="expand")(inputs)
  x = L.Activation("hard_swish", name="swish")(
      L.BatchNormalization(name="expand_bn")(x))
  se = L.GlobalAveragePooling2D(keepdims=True, name="se_pool")(x)
  se = L.ReLU(name="se_relu")(L.Conv2D(4, 1, name="se_reduce")(se))
  se = _hard_sigmoid(L.Conv2D(8, 1, name="se_expand")(se))
  x = L.Multiply(name="se_scale")([x, se])
  x = L.Conv2D(6, 1, name="project")(x)
  gate = L.GlobalAveragePooling2D(name="gap")(x)
  gate = L.Dense(6, activation="sigmoid", name="gate")(
      L.Dense(4, activation="swish", name="squeeze")(gate))
  x = L.Multiply(name="scale")([x, L.Reshape((1, 1, 6), name="rs")(gate)])
  x = L.Flatten(name="flatten")(x)
  return keras.Model(inputs, L.Dense(5, name="logits")(x), name="se")


MODELS = {"small_cnn": _small_cnn, "sequential": _sequential,
          "separable": _separable, "squeeze_excite": _squeeze_excite}


def _input_for(model):
  return np.random.RandomState(1).rand(
      4, *model.input_shape[1:]).astype(np.float32)


@pytest.fixture(scope="module", params=sorted(MODELS))
def model(request):
  return _randomize(MODELS[request.param]())


@pytest.mark.parametrize("criterion", ["l1", "bn_gamma"])
def test_sliced_equals_masked_original(model, criterion):
  x = _input_for(model)
  before = model.get_weights()
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # bn_gamma without BN
    result = pruning.slice_model(model, 0.5, criterion=criterion)
  new = result.model
  assert type(new) is type(model)  # pylint: disable=unidiomatic-typecheck
  assert isinstance(new, keras.Model)
  assert [l.name for l in new.layers] == [l.name for l in model.layers]
  for name, kept in result.kept.items():
    layer = new.get_layer(name)
    if "filters" in layer.get_config() or "units" in layer.get_config():
      config = layer.get_config()
      assert config.get("filters", config.get("units")) == len(kept)
  assert result.params_after < result.params_before
  assert result.params_after == new.count_params()
  assert result.macs_after < result.macs_before
  masked = pruning.mask_channels(model, result.kept)
  expected = _predict(masked, x)
  assert np.abs(expected - _predict(model, x)).max() > 1e-3
  np.testing.assert_allclose(_predict(new, x), expected, atol=1e-5)
  for old, now in zip(before, model.get_weights()):
    np.testing.assert_array_equal(old, now)


def test_small_cnn_half_cuts_macs_by_hand_count():
  model = _randomize(_small_cnn())
  result = pruning.slice_model(model, 0.5)
  kept = {n: len(k) for n, k in result.kept.items()}
  assert kept == {"stem": 8, "stem_bn": 8, "conv_a": 8, "bn_a": 8, "dw": 8,
                  "dw_bn": 8, "pw": 8, "branch": 4, "conv_c": 16}
  # stem, conv_a (Add-tied to stem) and the depthwise share one keep-set.
  assert result.kept["stem"] == result.kept["conv_a"] == result.kept["dw"]
  def macs(stem, pw, branch, conv_c):
    return (256 * 27 * stem + 256 * 9 * stem * stem + 256 * 9 * stem +
            256 * stem * pw + 256 * 9 * stem * branch +
            64 * 9 * (pw + branch) * conv_c + conv_c * 10)
  assert result.macs_before == macs(16, 16, 8, 32) == 1540416
  assert result.macs_after == macs(8, 8, 4, 16) == 422048
  assert result.macs_before / result.macs_after >= 1.8
  # The concatenation keeps pw's channels, then branch's shifted by 16.
  old = model.get_layer("conv_c").kernel.numpy()
  rows = result.kept["pw"] + [16 + i for i in result.kept["branch"]]
  np.testing.assert_array_equal(
      result.model.get_layer("conv_c").kernel.numpy(),
      old[:, :, rows][..., result.kept["conv_c"]])


def test_kept_channels_are_top_l1_on_a_hand_built_kernel():
  inputs = keras.Input((8, 8, 1))
  x = L.Flatten(name="flatten")(L.Conv2D(4, 3, padding="same",
                                         name="conv")(inputs))
  model = keras.Model(inputs, L.Dense(3, name="logits")(x))
  kernel = np.zeros((3, 3, 1, 4), np.float32)
  kernel[0, 0, 0] = [4.0, 1.0, 3.0, 2.0]  # l1 ranks filters 1 < 3 < 2 < 0
  kernel[1, 1, 0] = [0.5, -1.5, 0.0, 0.0]  # l1: 4.5, 2.5, 3, 2
  model.get_layer("conv").set_weights([kernel, np.arange(4.0)])
  np.testing.assert_allclose(pruning.channel_scores(model)["conv"],
                             [4.5, 2.5, 3.0, 2.0])
  result = pruning.slice_model(model, 0.5)
  assert result.kept == {"conv": [0, 2]} and result.removed == {"conv": 2}
  assert result.params_before == 40 + 771
  assert result.params_after == 20 + 387
  assert result.macs_after == 8 * 8 * 9 * 2 + 128 * 3
  old = model.get_layer("logits").get_weights()[0]
  rows = (np.arange(64)[:, None] * 4 + [0, 2]).ravel()
  np.testing.assert_array_equal(
      result.model.get_layer("logits").get_weights()[0], old[rows])
  np.testing.assert_array_equal(
      result.model.get_layer("conv").get_weights()[1], [0.0, 2.0])


def test_squeeze_excite_keeps_channels_consistent_across_multiply():
  model = _randomize(_squeeze_excite())
  result = pruning.slice_model(model, 0.5)
  kept = result.kept
  # The gates scale the feature maps channel by channel: one keep-set.
  assert kept["expand"] == kept["expand_bn"] == kept["se_expand"]
  assert kept["project"] == kept["gate"] and len(kept["project"]) == 3
  assert len(kept["se_reduce"]) == 2 and len(kept["squeeze"]) == 2
  assert result.model.get_layer("rs").target_shape == (1, 1, 3)
  assert result.skipped == [{"layer": "logits", "reason":
                             "reaches the model output 'logits'"}]


def test_tensor_constants_unknown_layers_and_nested_models_left_whole():
  inner_in = keras.Input((6, 6, 4))
  inner = keras.Model(inner_in, L.Conv2D(3, 1, name="inner_conv")(inner_in),
                      name="block")
  inputs = keras.Input((8, 8, 1))
  x = inner(L.Conv2D(4, 3, name="conv1")(inputs))
  x = L.Conv2D(6, 1, name="conv2")(x)
  x = L.Lambda(lambda t: t * 2.0, name="lam")(x)
  x = L.Conv2D(8, 1, name="conv3")(x)
  x = x * np.linspace(0.5, 2.0, 8).astype(np.float32)  # per-channel
  op = x._keras_history[0].name  # pylint: disable=protected-access
  x = keras.ops.log(1.0 + keras.ops.abs(L.Conv2D(5, 1, name="conv4")(x)))
  log = x._keras_history[0].name  # pylint: disable=protected-access
  x = Doubler(name="custom")(x)
  x = L.Flatten()(L.Conv2D(7, 1, name="conv5")(x))
  model = _randomize(keras.Model(inputs, L.Dense(3, name="logits")(x)))
  inner.set_weights([w + 0.1 for w in inner.get_weights()])
  result = pruning.slice_model(model, 0.5)
  reasons = {row["layer"]: row["reason"] for row in result.skipped}
  assert set(reasons) == {"block", "lam", op, log, "custom", "conv1",
                          "conv2", "conv3", "conv4", "logits"}
  assert "nested model (Functional)" in reasons["block"]
  assert "feeds Functional 'block'" in reasons["conv1"]
  assert "Lambda" in reasons["lam"] and "feeds Lambda" in reasons["conv2"]
  assert "op Multiply with a tensor constant" in reasons[op]
  assert f"feeds Multiply '{op}'" in reasons["conv3"]
  assert "op Log, not known to keep channels apart" in reasons[log]
  assert "Doubler" in reasons["custom"]
  assert list(result.kept) == ["conv5"]
  np.testing.assert_allclose(_predict(result.model),
                             _predict(pruning.mask_channels(model,
                                                            result.kept)),
                             atol=1e-5)
  assert result.model.get_layer("lam").function is model.get_layer(
      "lam").function


class Doubler(L.Layer):
  """A custom layer: tf_compress cannot know what it does to channels."""

  def call(self, inputs):
    return inputs * 2.0


def test_save_load_round_trip(tmp_path):
  model = _randomize(_small_cnn())
  result = pruning.slice_model(model, 0.5)
  path = str(tmp_path / "sliced.keras")
  result.model.save(path)
  loaded = tf_compress.load_model(path)
  assert isinstance(loaded, keras.Model)
  assert loaded.get_layer("conv_c").kernel.shape == (3, 3, 12, 16)
  x = _input_for(model)
  np.testing.assert_allclose(_predict(loaded, x), _predict(result.model, x),
                             atol=1e-6)


class TinySubclassed(keras.Model):
  """A subclassed Keras 3 model: no graph to rebuild."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.fc = L.Dense(2)

  def call(self, inputs):
    return self.fc(inputs)


def test_subclassed_and_pruned_models_are_refused():
  sub = TinySubclassed(name="tiny")
  sub(np.zeros((1, 3), np.float32))
  for call in (lambda: pruning.slice_model(sub, 0.5),
               lambda: pruning.mask_channels(sub, {}),
               lambda: pruning.SlicingCallback(0.5).set_model(sub)):
    with pytest.raises(ModelError, match=r"needs a Functional or Sequential"
                       r".*'tiny' \(TinySubclassed\).*keras.Input"):
      call()
  pruned = pruning.prune_model(
      _sequential(), pruning.PruningConfig(target_sparsity=0.5),
      steps_per_epoch=1)
  with pytest.raises(UserInputError, match="strip_pruning"):
    pruning.slice_model(pruned, 0.5)
  with pytest.raises(TypeError, match="Keras 3 or tf_keras Model"):
    pruning.slice_model("model.keras", 0.5)


def _compiled(model):
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True),
                metrics=["accuracy"], jit_compile=False)
  return model


def _assert_masked(model, kept):
  conv1 = sorted(set(range(32)) - set(kept["conv1"]))
  conv2 = sorted(set(range(64)) - set(kept["conv2"]))
  assert len(conv1) == 16 and len(conv2) == 32
  assert not model.get_layer("conv1").kernel.numpy()[..., conv1].any()
  assert not model.get_layer("conv2").kernel.numpy()[:, :, conv1].any()
  assert not model.get_layer("conv2").bias.numpy()[conv2].any()
  fc1 = model.get_layer("fc1").kernel.numpy().reshape(9, 64, -1)
  assert not fc1[:, conv2].any()
  assert model.get_layer("conv1").kernel.numpy()[..., kept["conv1"]].all()


def test_callback_hooks_remask_after_each_batch():
  model = tf_compress.build_model("cnn", (8, 8, 1), 10)
  callback = pruning.SlicingCallback(0.5, begin_epoch=0, end_epoch=0)
  callback.set_model(model)
  callback.on_epoch_begin(0)
  _assert_masked(model, callback.kept)
  kernel = model.get_layer("conv1").kernel
  kernel.assign(kernel + 1.0)
  callback.on_train_batch_end(0)
  _assert_masked(model, callback.kept)


@pytest.mark.parametrize("distributed", [False, True],
                         ids=["one_device", "mirrored"])
def test_callback_fit_then_slice(distributed, digits, logical_cpus):
  del logical_cpus
  tf_compress.set_seed(0)
  strategy = tf_compress.make_strategy(
      "mirrored" if distributed else "default", 2)
  with strategy.scope():
    model = _compiled(tf_compress.build_model("cnn", (8, 8, 1), 10))
  assert isinstance(model, keras.Model)
  callback = pruning.SlicingCallback(0.5, begin_epoch=0, end_epoch=1)
  history = model.fit(digits.train(batch_size=64, seed=0), epochs=3,
                      steps_per_epoch=5, callbacks=[callback], verbose=0,
                      shuffle=False)
  assert history.history["slicing_ratio"] == [0.25, 0.5, 0.5]
  assert history.history["loss"][-1] < history.history["loss"][0]
  _assert_masked(model, callback.kept)
  result = pruning.slice_masked_model(model, callback)
  assert result.model.get_layer("conv2").kernel.shape == (3, 3, 16, 32)
  assert result.macs_before / result.macs_after >= 3.5
  x = digits.x_test[:64]
  np.testing.assert_allclose(_predict(result.model, x), _predict(model, x),
                             atol=1e-4)


def test_callback_config_round_trip_in_keras3():
  callback = pruning.SlicingCallback(0.4, begin_epoch=2, end_epoch=5,
                                     criterion="l2", layers=["conv2"])
  serialized = json.loads(json.dumps(
      keras.saving.serialize_keras_object(callback)))
  assert serialized["registered_name"] == "tf_compress>SlicingCallback"
  restored = keras.saving.deserialize_keras_object(serialized)
  assert isinstance(restored, pruning.SlicingCallback)
  assert restored.get_config() == callback.get_config()


@pytest.fixture(scope="module")
def mobilenet():
  keras.utils.set_random_seed(0)
  model = keras.applications.MobileNetV2(
      alpha=0.35, input_shape=(96, 96, 3), weights=None, classes=10,
      classifier_activation=None)
  return _randomize(model)


@pytest.mark.slow
def test_mobilenet_v2_half_slicing_and_litert_export(mobilenet, tmp_path):
  result = pruning.slice_model(mobilenet, 0.5)
  assert (result.macs_before, result.macs_after) == (10666928, 3313720)
  assert result.macs_before / result.macs_after >= 1.8  # 3.22x
  assert (result.params_before, result.params_after) == (423018, 121978)
  assert result.skipped == [{"layer": "predictions", "reason":
                             "reaches the model output 'predictions'"}]
  x = np.random.RandomState(0).rand(2, 96, 96, 3).astype(np.float32)
  expected = _predict(pruning.mask_channels(mobilenet, result.kept), x)
  assert np.abs(expected - _predict(mobilenet, x)).max() > 1e-2
  np.testing.assert_allclose(_predict(result.model, x), expected,
                             rtol=1e-4, atol=1e-4)
  info = export.export_tflite(result.model, str(tmp_path / "m.tflite"),
                              "float32")
  assert info["op_counts"]["CONV_2D"] == 35
  assert info["op_counts"]["DEPTHWISE_CONV_2D"] == 17
  checked = export.verify_tflite(info["path"], x, keras_model=result.model,
                                 isolate=False)
  assert checked["max_abs_diff"] < 1e-3 and checked["agreement"] == 1.0
