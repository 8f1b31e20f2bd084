"""PruningCallback: hooks called directly, config round trip, one real fit."""

import glob
import json
import os

import numpy as np
import pytest

import tf_compress
from tf_compress import keras
from tf_compress import ModelError
from tf_compress import pruning
from tf_compress import UserInputError
from tf_compress._keras import tf


def _mlp(seed=0):
  tf_compress.set_seed(seed)
  return tf_compress.build_model("mlp", (8, 8, 1), 10, seed=seed,
                                 keras_version=2)


def _wrappers(model):
  return [w for _, w in pruning.find_pruning_wrappers(model)]


def _zeros(wrappers):
  return sum(int(np.sum(w.pruning_vars[0][1].numpy() == 0)) for w in wrappers)


def test_set_model_needs_wrappers():
  callback = pruning.PruningCallback()
  with pytest.raises(ModelError, match=r"model 'mlp' has no pruning "
                     r"wrappers; prune it first"):
    callback.set_model(_mlp())


def test_hooks_start_steps_and_run_global_updates_between_executions():
  config = pruning.PruningConfig(target_sparsity=0.5, frequency=10,
                                 scope="global")
  model = pruning.prune_model(_mlp(), config)
  wrappers = _wrappers(model)
  callback = pruning.PruningCallback()
  callback.set_model(model)
  assert callback.prunable_layers == wrappers
  wrappers[2].pruning_step.assign(7)  # restored from a checkpoint
  callback.on_train_begin()
  assert [int(w.pruning_step.numpy()) for w in wrappers] == [0, 0, 7]

  def run_execution(begin, end):
    for wrapper in wrappers:
      wrapper.pruning_step.assign(begin)
    callback.on_train_batch_begin(0)
    for wrapper in wrappers:  # what tfmot's wrappers do in the graph
      wrapper.pruning_step.assign(end)
    callback.on_train_batch_end(0)

  run_execution(4, 8)  # no update step in (4, 8]
  assert _zeros(wrappers) == 0
  run_execution(8, 12)  # the update of step 10 was jumped over
  total = sum(int(np.prod(w.layer.kernel.shape)) for w in wrappers)
  assert total == 64 * 128 + 128 * 64 + 64 * 10
  assert _zeros(wrappers) == total - round(total * 0.5)
  masks = [w.pruning_vars[0][1].numpy().copy() for w in wrappers]
  for wrapper in wrappers:  # new weights, but no update is due in (12, 16]
    kernel = wrapper.layer.kernel
    kernel.assign(tf.random.normal(kernel.shape))
  callback.on_train_batch_end(0)
  run_execution(12, 16)
  for wrapper, mask in zip(wrappers, masks):
    np.testing.assert_array_equal(wrapper.pruning_vars[0][1].numpy(), mask)

  logs = {"loss": 1.0}
  callback.on_epoch_end(0, logs)
  assert logs["sparsity"] == pytest.approx(0.5, abs=1e-4)
  assert set(logs) == {"loss", "sparsity", "sparsity/fc1", "sparsity/fc2",
                       "sparsity/logits"}
  # The epoch end re-applies the masks to the kernels (tfmot's job).
  for wrapper in wrappers:
    kernel, mask, _ = (v.numpy() for v in wrapper.pruning_vars[0])
    assert np.all(kernel[mask == 0] == 0)


def test_layer_scope_hooks_leave_masks_to_tfmot():
  model = pruning.prune_model(_mlp(), pruning.PruningConfig(
      target_sparsity=0.5, frequency=1))
  callback = pruning.PruningCallback()
  callback.set_model(model)
  callback.on_train_begin()
  callback.on_train_batch_begin(0)
  for wrapper in _wrappers(model):
    wrapper.pruning_step.assign(5)
  callback.on_train_batch_end(0)
  assert _zeros(_wrappers(model)) == 0


@pytest.mark.parametrize("scope,expected", [("layer", False),
                                            ("global", True)])
def test_batch_hooks_only_for_global_scope(scope, expected):
  model = pruning.prune_model(_mlp(), pruning.PruningConfig(
      target_sparsity=0.5, scope=scope))
  callback = pruning.PruningCallback()
  callback.set_model(model)
  # Keras asks this once per fit; False lets it skip every batch callback.
  assert callback._implements_train_batch_hooks() is expected
  callbacks = keras.callbacks.CallbackList([callback], model=model)
  assert callbacks._should_call_train_batch_hooks is expected


def test_config_round_trip():
  callback = pruning.PruningCallback(log_dir="/tmp/tb")
  config = json.loads(json.dumps(callback.get_config()))
  assert config == {"log_dir": "/tmp/tb"}
  assert pruning.PruningCallback.from_config(config).get_config() == config
  serialized = keras.utils.serialize_keras_object(callback)
  assert serialized["registered_name"] == "tf_compress>PruningCallback"
  loaded = keras.utils.deserialize_keras_object(
      json.loads(json.dumps(serialized)))
  assert isinstance(loaded, pruning.PruningCallback)
  assert loaded.log_dir == "/tmp/tb"
  assert pruning.PruningCallback().get_config() == {"log_dir": None}


@pytest.mark.parametrize("log_dir", ["", 3], ids=["empty", "int"])
def test_bad_log_dir(log_dir):
  with pytest.raises(UserInputError, match="log_dir must be a non-empty"):
    pruning.PruningCallback(log_dir=log_dir)


class _Harness(keras.Model):
  """A training harness holding the student as an attribute (Distiller-like)."""

  def __init__(self, student, **kwargs):
    super().__init__(**kwargs)
    self.student = student

  def call(self, inputs, training=None):
    return self.student(inputs, training=training)


def _scalars(log_dir):
  values = {}
  for path in glob.glob(os.path.join(log_dir, "pruning", "events.out.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        values.setdefault(value.tag, []).append(
            (event.step, float(tf.make_ndarray(value.tensor))))
  return values


def test_fit_nested_student_history_and_tensorboard(digits, tmp_path):
  config = pruning.PruningConfig(target_sparsity=0.7, schedule="polynomial",
                                 begin_step=0, end_step=40, frequency=5)
  student = pruning.prune_model(_mlp(), config)
  harness = _Harness(student, name="harness")
  harness.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
  log_dir = str(tmp_path / "logs")
  history = harness.fit(digits.x_train, digits.y_train, batch_size=32,
                        epochs=2, verbose=0,
                        callbacks=[pruning.PruningCallback(log_dir=log_dir)])
  sparsity = history.history["sparsity"]
  assert len(sparsity) == 2
  assert sparsity[-1] == pytest.approx(0.7, abs=0.01)
  assert history.history["sparsity/mlp/fc1"][-1] == pytest.approx(
      0.7, abs=0.01)
  assert pruning.overall_sparsity(student) == pytest.approx(sparsity[-1])
  scalars = _scalars(log_dir)
  assert [step for step, _ in scalars["sparsity"]] == [0, 1]
  assert scalars["sparsity"][-1][1] == pytest.approx(sparsity[-1], abs=1e-6)
  assert scalars["sparsity/mlp/logits"][-1][1] == pytest.approx(
      history.history["sparsity/mlp/logits"][-1], abs=1e-6)
