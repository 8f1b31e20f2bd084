"""QATFreezeCallback: ranges and BatchNorm statistics stop, weights train on.

The model is the digits CNN with BatchNormalization (`cnn_bn`), trained
briefly in float, then made quantization-aware.
"""

import json

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot

import tf_compress
from tf_compress import keras
from tf_compress import ModelError
from tf_compress import quantization
from tf_compress import UserInputError

from classifiers import compile_classifier
from classifiers import trained_classifier

BATCH = 32
tq = tfmot.quantization.keras


def _groups(model):
  """(range variables, BatchNorm variables, kernels) of a QAT model."""
  ranges, stats, kernels = [], [], []
  for variable in model.weights:
    name = variable.name.split(":")[0]
    if name.endswith(("_min", "_max")):
      ranges.append(variable)
    elif name.startswith("bn"):
      stats.append(variable)
    elif name.endswith("/kernel"):
      kernels.append(variable)
  return ranges, stats, kernels


class _Recorder(keras.callbacks.Callback):
  """Snapshots the variable groups at train begin and at each epoch end."""

  def __init__(self, save_path=None, probe=None):
    super().__init__()
    self.snapshots = []
    self.save_path = save_path
    self.probe = probe
    self.saved_predictions = None

  def _snap(self):
    self.snapshots.append([[v.numpy().copy() for v in group]
                           for group in _groups(self.model)])

  def on_train_begin(self, logs=None):
    self._snap()

  def on_epoch_end(self, epoch, logs=None):
    self._snap()
    if self.save_path and epoch == 1:  # frozen since epoch 1's start
      tf_compress.save_model(self.model, self.save_path)
      self.saved_predictions = self.model.predict(self.probe, verbose=0)


def _same(a, b):
  return all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def baseline(digits):
  return trained_classifier(digits, "cnn_bn", epochs=3, batch_size=BATCH)


@pytest.fixture(scope="module")
def frozen_run(baseline, digits, tmp_path_factory):
  """3 QAT epochs, frozen from epoch 1; a checkpoint saved while frozen."""
  tf_compress.set_seed(1)
  qat = compile_classifier(quantization.quantize_model(baseline), 1e-4)
  path = str(tmp_path_factory.mktemp("frozen") / "frozen.h5")
  recorder = _Recorder(path, digits.x_test[:64])
  history = qat.fit(digits.x_train, digits.y_train, batch_size=BATCH,
                    epochs=3, verbose=0,
                    callbacks=[quantization.QATFreezeCallback(1), recorder])
  return qat, history, recorder


def test_ranges_change_then_freeze(frozen_run):
  qat, _, recorder = frozen_run
  ranges = _groups(qat)[0]
  # Input, 4 kernels, 2 ReLU outputs, 2 Dense post-activations: min and max.
  assert len(ranges) == 18
  start, end0, end1, end2 = (s[0] for s in recorder.snapshots)
  assert not _same(start, end0)
  assert _same(end0, end1)
  assert _same(end1, end2)


def test_batchnorm_freezes(frozen_run):
  # Moving statistics, and gamma and beta too.
  qat, _, recorder = frozen_run
  assert sorted(v.name for v in _groups(qat)[1]) == [
      f"bn{i}/{n}:0" for i in (1, 2)
      for n in ("beta", "gamma", "moving_mean", "moving_variance")]
  start, end0, end1, end2 = (s[1] for s in recorder.snapshots)
  assert not _same(start, end0)
  assert _same(end0, end1)
  assert _same(end1, end2)


def test_weights_keep_training(frozen_run, digits):
  qat, history, recorder = frozen_run
  _, _, end1, end2 = (s[2] for s in recorder.snapshots)
  for before, after in zip(end1, end2):
    assert not np.array_equal(before, after)
  # After 3 float epochs the moving statistics lag behind the batch ones, so
  # the loss jumps when BatchNorm switches to them, then falls again.
  loss = history.history["loss"]
  assert loss[1] > loss[0]
  assert loss[2] < loss[1]
  # Training now matches inference (moving statistics): the test accuracy
  # in inference mode is high.
  assert qat.evaluate(digits.x_test, digits.y_test, verbose=0)[1] >= 0.9


def test_logs_say_when_frozen(frozen_run):
  _, history, _ = frozen_run
  assert history.history["qat_frozen"] == [0.0, 1.0, 1.0]


def test_model_restored_after_fit(frozen_run):
  qat, _, _ = frozen_run
  wrappers, inputs = quantization.find_quantizers(qat)
  assert type(inputs[0].quantizer).__name__ == "AllValuesQuantizer"
  # pylint: disable=protected-access
  for wrapper in wrappers:
    for _, quantizer, _ in wrapper._weight_vars:
      assert not isinstance(quantizer, quantization.FrozenRangeQuantizer)
    for activation in wrapper._quantize_activations:
      assert not isinstance(activation.quantizer,
                            quantization.FrozenRangeQuantizer)
  assert qat.get_layer("quant_bn1").layer.trainable
  assert qat.train_function is None


def test_checkpoint_saved_while_frozen_loads(frozen_run, digits):
  _, _, recorder = frozen_run
  loaded = quantization.load_qat_model(recorder.save_path, safe_mode=False)
  _, inputs = quantization.find_quantizers(loaded)
  assert isinstance(inputs[0].quantizer, quantization.FrozenRangeQuantizer)
  np.testing.assert_array_equal(
      loaded.predict(digits.x_test[:64], verbose=0),
      recorder.saved_predictions)
  # Trained again with the callback: live ranges until the freeze epoch.
  callback = quantization.QATFreezeCallback(1)
  callback.set_model(compile_classifier(loaded, 1e-4))
  callback.on_train_begin()
  assert type(inputs[0].quantizer).__name__ == "AllValuesQuantizer"


def test_config_round_trip():
  callback = quantization.QATFreezeCallback(2, verbose=True)
  config = callback.get_config()
  assert json.loads(json.dumps(config)) == {"freeze_epoch": 2,
                                            "verbose": True}
  assert quantization.QATFreezeCallback.from_config(
      config).get_config() == config
  serialized = keras.utils.serialize_keras_object(callback)
  assert serialized["registered_name"] == "tf_compress>QATFreezeCallback"
  restored = keras.utils.deserialize_keras_object(serialized)
  assert isinstance(restored, quantization.QATFreezeCallback)
  assert restored.get_config() == config


def test_frozen_quantizer_config_round_trip():
  inner = tq.quantizers.MovingAverageQuantizer(
      num_bits=8, per_axis=False, symmetric=False, narrow_range=False)
  frozen = quantization.FrozenRangeQuantizer(inner)
  serialized = keras.utils.serialize_keras_object(frozen)
  json.dumps(serialized)
  assert serialized["registered_name"] == "tf_compress>FrozenRangeQuantizer"
  restored = keras.utils.deserialize_keras_object(serialized)
  assert restored == frozen
  assert restored.quantizer == inner


def test_hooks_called_directly(baseline, capsys):
  qat = compile_classifier(quantization.quantize_model(baseline), 1e-4)
  callback = quantization.QATFreezeCallback(2, verbose=True)
  callback.set_model(qat)
  callback.on_train_begin()
  _, inputs = quantization.find_quantizers(qat)
  logs = {}
  callback.on_epoch_begin(1)
  callback.on_epoch_end(1, logs)
  assert logs == {"qat_frozen": 0.0}
  assert not callback.frozen
  callback.on_epoch_begin(2)
  callback.on_epoch_end(2, logs)
  assert logs == {"qat_frozen": 1.0}
  assert isinstance(inputs[0].quantizer, quantization.FrozenRangeQuantizer)
  assert not qat.get_layer("quant_bn2").layer.trainable
  assert qat.train_function is not None
  assert "froze quantization ranges and BatchNorm statistics at epoch 2" in (
      capsys.readouterr().out)
  callback.on_train_end()
  assert type(inputs[0].quantizer).__name__ == "AllValuesQuantizer"
  assert qat.get_layer("quant_bn2").layer.trainable


@pytest.mark.parametrize("value", [-1, 1.5, True, "2", None],
                         ids=["negative", "float", "bool", "str", "none"])
def test_bad_freeze_epoch(value):
  with pytest.raises(UserInputError, match="freeze_epoch must be an integer"):
    quantization.QATFreezeCallback(value)


def test_needs_a_qat_model(baseline):
  with pytest.raises(ModelError, match="quantize_model"):
    quantization.QATFreezeCallback(1).set_model(baseline)


def test_freezes_under_mirrored_strategy(baseline, digits, logical_cpus):
  del logical_cpus  # the 2 devices the strategy mirrors over
  strategy = tf_compress.make_strategy("mirrored", 2)
  with strategy.scope():
    qat = compile_classifier(quantization.quantize_model(baseline), 1e-4)
  recorder = _Recorder()
  history = qat.fit(digits.x_train[:320], digits.y_train[:320],
                    batch_size=BATCH, epochs=2, verbose=0,
                    callbacks=[quantization.QATFreezeCallback(1), recorder])
  assert history.history["qat_frozen"] == [0.0, 1.0]
  start, end0, end1 = recorder.snapshots
  for group in (0, 1):  # ranges, BatchNorm statistics
    assert not _same(start[group], end0[group])
    assert _same(end0[group], end1[group])
  assert not _same(end0[2], end1[2])  # kernels
