"""Pruning survives save → load and BackupAndRestore interruptions.

The data is fed unshuffled and the models have no dropout, so an
interrupted run and an uninterrupted one see the same batches and the
masks can be compared bit for bit. The runs are pinned to the CPU, whose
kernels are deterministic, should the suite run where a GPU is visible.
"""

import contextlib
import math

import numpy as np
import pytest

import tf_compress
from tf_compress import keras
from tf_compress import pruning
from tf_compress._keras import tf

BATCH = 32

pytestmark = pytest.mark.filterwarnings(
    "ignore:You are saving your model as an HDF5 file")


def _on_cpu():
  return tf.device("/CPU:0") if tf.config.list_logical_devices(
      "GPU") else contextlib.nullcontext()


class _Crash(keras.callbacks.Callback):
  """Simulates a crash at the end of one epoch (after the backup)."""

  def __init__(self, epoch):
    super().__init__()
    self.epoch = epoch

  def on_epoch_end(self, epoch, logs=None):
    if epoch == self.epoch:
      raise RuntimeError("simulated crash")


@pytest.fixture(scope="module")
def base(digits):
  del digits
  tf_compress.set_seed(0)
  return tf_compress.build_model("mlp", (8, 8, 1), 10, seed=0, keras_version=2)


def _pruned(base, digits, scope):
  config = pruning.PruningConfig(target_sparsity=0.8, schedule="polynomial",
                                 end_epoch=2, frequency=7, scope=scope)
  model = pruning.prune_model(base, config,
                              math.ceil(len(digits.x_train) / BATCH))
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True))
  return model


def _fit(model, digits, epochs, *callbacks, initial_epoch=0):
  return model.fit(digits.x_train, digits.y_train, batch_size=BATCH,
                   epochs=epochs, initial_epoch=initial_epoch, verbose=0,
                   shuffle=False,
                   callbacks=[pruning.PruningCallback(), *callbacks])


def _masks(model):
  return [mask.numpy() for _, w in pruning.find_pruning_wrappers(model)
          for _, mask, _ in w.pruning_vars]


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_backup_and_restore_gives_identical_masks(base, digits, tmp_path,
                                                  scope):
  with _on_cpu():
    _check_backup_and_restore(base, digits, tmp_path, scope)


def _check_backup_and_restore(base, digits, tmp_path, scope):
  straight = _pruned(base, digits, scope)
  _fit(straight, digits, 3,
       keras.callbacks.BackupAndRestore(str(tmp_path / "straight")))

  backup = str(tmp_path / "interrupted")
  first = _pruned(base, digits, scope)
  with pytest.raises(RuntimeError, match="simulated crash"):
    _fit(first, digits, 3, keras.callbacks.BackupAndRestore(backup),
         _Crash(epoch=0))
  # A new process would rebuild the model: so do we.
  resumed = _pruned(base, digits, scope)
  history = _fit(resumed, digits, 3, keras.callbacks.BackupAndRestore(backup))
  assert history.epoch == [1, 2]  # really resumed after epoch 0
  assert resumed.optimizer.iterations.numpy() == (
      straight.optimizer.iterations.numpy())
  expected, got = _masks(straight), _masks(resumed)
  assert len(got) == 3
  for want, have in zip(expected, got):
    np.testing.assert_array_equal(have, want)
  for want, have in zip(straight.get_weights(), resumed.get_weights()):
    np.testing.assert_array_equal(have, want)
  assert pruning.overall_sparsity(resumed) == pytest.approx(0.8, abs=0.01)


@pytest.fixture(scope="module")
def saved_mid_pruning(base, digits, tmp_path_factory):
  """A global-scope run saved after 1 of 2 ramp epochs.

  Returns the saved paths, the state at saving, and the masks the same
  model reaches when trained on for 2 more epochs without saving.
  """
  directory = tmp_path_factory.mktemp("saved")
  with _on_cpu():
    return _save_mid_pruning(base, digits, directory)


def _save_mid_pruning(base, digits, directory):
  model = _pruned(base, digits, "global")
  _fit(model, digits, 1)
  state = {"step": int(model.get_layer("prune_low_magnitude_fc1")
                       .pruning_step.numpy()),
           "masks": _masks(model), "weights": model.get_weights(),
           "sparsity": pruning.overall_sparsity(model)}
  paths = {}
  for ext in (".keras", ".h5"):
    paths[ext] = str(directory / f"mid{ext}")
    model.save(paths[ext])
  _fit(model, digits, 3, initial_epoch=1)
  return paths, state, _masks(model)


@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_save_load_mid_pruning_continues_schedule(saved_mid_pruning, digits,
                                                  ext):
  with _on_cpu():
    _check_load(saved_mid_pruning, digits, ext)


def _check_load(saved_mid_pruning, digits, ext):
  paths, state, reference = saved_mid_pruning
  assert 0.3 < state["sparsity"] < 0.79  # saved half-way through the ramp
  # Safe mode refuses full-model .h5 files; these are our own.
  loaded = pruning.load_pruned_model(paths[ext], safe_mode=ext != ".h5")
  wrapper = loaded.get_layer("prune_low_magnitude_fc1")
  assert isinstance(wrapper.pruning_schedule, pruning.GlobalSparsity)
  assert int(wrapper.pruning_step.numpy()) == state["step"] == 40
  assert loaded.optimizer.iterations.numpy() == 40
  for want, have in zip(state["masks"], _masks(loaded)):
    np.testing.assert_array_equal(have, want)
  for want, have in zip(state["weights"], loaded.get_weights()):
    np.testing.assert_array_equal(have, want)
  history = _fit(loaded, digits, 3, initial_epoch=1)
  assert history.history["sparsity"][-1] == pytest.approx(0.8, abs=0.01)
  for want, have in zip(reference, _masks(loaded)):
    np.testing.assert_array_equal(have, want)


def test_recompiled_after_load_the_schedule_still_continues(
    saved_mid_pruning, digits):
  paths, _, _ = saved_mid_pruning
  with _on_cpu():
    loaded = pruning.load_pruned_model(paths[".keras"])
    loaded.compile(optimizer=keras.optimizers.Adam(1e-3),
                   loss=keras.losses.SparseCategoricalCrossentropy(
                       from_logits=True))
    assert loaded.optimizer.iterations.numpy() == 0
    history = _fit(loaded, digits, 1)
  # The wrappers' step went on from 40 to 80, the end of the ramp; counting
  # from the fresh optimizer's 0 would have stopped half-way (about 0.56).
  assert int(loaded.get_layer("prune_low_magnitude_fc1")
             .pruning_step.numpy()) == 80
  assert history.history["sparsity"][-1] == pytest.approx(0.8, abs=0.01)
