"""SlicingCallback: gradual channel masking, then slicing and fine-tuning."""

import json

import numpy as np
import pytest

import tf_compress
from tf_compress import keras
from tf_compress.errors import UserInputError
from tf_compress.pruning.slicing import slice_masked_model
from tf_compress.pruning.slicing_callback import SlicingCallback


def _compiled(model):
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True),
                metrics=["accuracy"])
  return model


def _removed(count, kept):
  return sorted(set(range(count)) - set(kept))


def _assert_masked(model, kept):
  """The removed channels' weights, and the weights reading them, are 0."""
  conv1 = _removed(32, kept["conv1"])
  conv2 = _removed(64, kept["conv2"])
  assert not model.get_layer("conv1").kernel.numpy()[..., conv1].any()
  assert not model.get_layer("conv1").bias.numpy()[conv1].any()
  assert not model.get_layer("conv2").kernel.numpy()[:, :, conv1].any()
  assert not model.get_layer("conv2").kernel.numpy()[..., conv2].any()
  fc1 = model.get_layer("fc1").kernel.numpy().reshape(9, 64, -1)
  assert not fc1[:, conv2].any()
  assert model.get_layer("conv1").kernel.numpy()[..., kept["conv1"]].all()


def test_ramp_and_hooks():
  model = tf_compress.build_model("cnn", (8, 8, 1), 10, keras_version=2)
  callback = SlicingCallback(0.5, begin_epoch=1, end_epoch=3)
  assert [callback.ratio_at(e) for e in range(6)] == pytest.approx(
      [0, 0.5 / 3, 1 / 3, 0.5, 0.5, 0.5])
  callback.set_model(model)
  callback.on_epoch_begin(0)
  assert callback.ratio == 0.0 and callback.kept == {}
  callback.on_epoch_begin(1)
  first = callback.kept
  # round(32 / 6) = 5, round(64 / 6) = 11, round(128 / 6) = 21 removed.
  assert [len(first[n]) for n in ("conv1", "conv2", "fc1")] == [27, 53, 107]
  _assert_masked(model, first)
  # Masked channels are put back to 0 after each optimizer step.
  kernel = model.get_layer("conv1").kernel
  kernel.assign(kernel + 1.0)
  callback.on_train_batch_end(0)
  _assert_masked(model, first)
  callback.on_epoch_begin(2)
  second = callback.kept
  assert len(second["conv1"]) == 32 - 11
  assert set(second["conv1"]) <= set(first["conv1"])  # masks only grow
  callback.on_epoch_begin(3)
  assert callback.ratio == 0.5
  assert [len(callback.kept[n]) for n in ("conv1", "conv2", "fc1")] == [
      16, 32, 64]
  logs = {}
  callback.on_epoch_end(3, logs)
  assert logs == {"slicing_ratio": 0.5}


def test_frequency_and_bn_gamma():
  model = tf_compress.build_model("cnn_bn", (8, 8, 1), 10, keras_version=2)
  bn1 = model.get_layer("bn1")
  gamma = np.linspace(-1.0, 2.0, 32).astype(np.float32)
  bn1.set_weights([gamma] + bn1.get_weights()[1:])
  callback = SlicingCallback(0.5, begin_epoch=0, end_epoch=3,
                             criterion="bn_gamma", frequency_epochs=2)
  with pytest.warns(RuntimeWarning, match="'fc1', so these are ranked by l1"):
    callback.set_model(model)
  ratios = []
  for epoch in range(5):
    callback.on_epoch_begin(epoch)
    ratios.append(callback.ratio)
  assert ratios == pytest.approx([0.125, 0.125, 0.375, 0.5, 0.5])
  expected = sorted(np.argsort(np.abs(gamma), kind="stable")[16:].tolist())
  assert callback.kept["conv1"] == callback.kept["bn1"] == expected
  removed = _removed(32, expected)
  assert not bn1.gamma.numpy()[removed].any()
  assert not bn1.beta.numpy()[removed].any()


@pytest.fixture(scope="module")
def trained(digits):
  tf_compress.set_seed(0)
  model = _compiled(tf_compress.build_model("cnn", (8, 8, 1), 10,
                                            keras_version=2))
  callback = SlicingCallback(0.5, begin_epoch=0, end_epoch=1)
  history = model.fit(digits.train(batch_size=64, seed=0), epochs=3,
                      callbacks=[callback], verbose=0)
  return model, callback, history


def test_fit_reaches_target_then_slice_and_finetune(trained, digits):
  model, callback, history = trained
  assert history.history["slicing_ratio"] == [0.25, 0.5, 0.5]
  assert callback.ratio == 0.5
  kept = callback.kept
  assert [len(kept[n]) for n in ("conv1", "conv2", "fc1")] == [16, 32, 64]
  _assert_masked(model, kept)
  result = slice_masked_model(model, callback)
  assert result.macs_before / result.macs_after >= 2.0
  np.testing.assert_allclose(result.model.predict(digits.x_test, verbose=0),
                             model.predict(digits.x_test, verbose=0),
                             atol=1e-4)
  smaller = _compiled(result.model)
  smaller.fit(digits.train(batch_size=64, seed=1), epochs=2, verbose=0)
  _, accuracy = smaller.evaluate(digits.test(), verbose=0)
  assert accuracy > 0.5


def test_trains_under_mirrored_strategy(logical_cpus, digits):
  del logical_cpus
  strategy = tf_compress.make_strategy("mirrored", 2)
  assert strategy.num_replicas_in_sync == 2
  with strategy.scope():
    model = _compiled(tf_compress.build_model("cnn", (8, 8, 1), 10,
                                              keras_version=2))
  callback = SlicingCallback(0.5, begin_epoch=0, end_epoch=0)
  history = model.fit(digits.train(batch_size=64, seed=0), epochs=2,
                      steps_per_epoch=6, callbacks=[callback], verbose=0)
  assert history.history["slicing_ratio"] == [0.5, 0.5]
  assert history.history["loss"][1] < history.history["loss"][0]
  _assert_masked(model, callback.kept)
  result = slice_masked_model(model, callback)
  assert result.model.get_layer("conv2").kernel.shape == (3, 3, 16, 32)
  np.testing.assert_allclose(result.model.predict(digits.x_test, verbose=0),
                             model.predict(digits.x_test, verbose=0),
                             atol=1e-4)


def test_config_round_trip():
  callback = SlicingCallback(0.4, begin_epoch=2, end_epoch=5,
                             criterion="l2", frequency_epochs=2,
                             layers=["conv2"])
  serialized = json.loads(json.dumps(
      keras.utils.serialize_keras_object(callback)))
  assert serialized["registered_name"] == "tf_compress>SlicingCallback"
  restored = keras.utils.deserialize_keras_object(serialized)
  assert isinstance(restored, SlicingCallback)
  assert restored.get_config() == callback.get_config() == {
      "target_ratio": 0.4, "begin_epoch": 2, "end_epoch": 5,
      "criterion": "l2", "frequency_epochs": 2, "layers": ["conv2"]}


@pytest.mark.parametrize("kwargs,match", [
    ({"target_ratio": 1.0}, r"`target_ratio` must be a number in \[0, 1\)"),
    ({"target_ratio": -0.5}, r"`target_ratio`"),
    ({"begin_epoch": 3, "end_epoch": 1}, r"`end_epoch` \(1\) must be >="),
    ({"begin_epoch": -1}, r"`begin_epoch` must be an integer >= 0"),
    ({"frequency_epochs": 0}, r"`frequency_epochs` must be an integer >= 1"),
    ({"criterion": "max"}, r"unknown slicing criterion 'max'"),
], ids=["ratio_one", "ratio_negative", "end_before_begin", "begin_negative",
        "frequency_zero", "criterion"])
def test_bad_arguments(kwargs, match):
  arguments = {"target_ratio": 0.5, "begin_epoch": 0, "end_epoch": 1}
  arguments.update(kwargs)
  with pytest.raises(UserInputError, match=match):
    SlicingCallback(**arguments)


def test_bad_model_fit():
  model = tf_compress.build_model("cnn", (8, 8, 1), 10, keras_version=2)
  with pytest.raises(UserInputError, match="'nope' in `layers`"):
    SlicingCallback(0.5, layers=["nope"]).set_model(model)
  with pytest.raises(UserInputError, match="would remove all"):
    SlicingCallback(0.99).set_model(model)
