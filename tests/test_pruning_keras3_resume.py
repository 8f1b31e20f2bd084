"""Resuming Keras 3 pruning: from a saved `.keras` file, and after
`BackupAndRestore`, the masks and the step are those of an uninterrupted run.
"""

import keras
import numpy as np
import pytest

import tf_compress
from tf_compress import pruning
from tf_compress.pruning import keras3_pruning

STEPS = 8  # 256 samples, batch 32
EPOCHS = 4
# The ramp ends at step 24 (epoch 3); updates at even steps, so the first
# step after an epoch boundary (odd) is never an update step.
CONFIG = pruning.PruningConfig(target_sparsity=0.8, schedule="polynomial",
                               end_epoch=3, frequency=2)


def _data():
  rng = np.random.RandomState(0)
  return rng.rand(256, 8, 8, 1).astype("float32"), rng.randint(0, 4, 256)


def _pruned(seed=0):
  keras.utils.set_random_seed(seed)
  model = keras.Sequential([
      keras.Input((8, 8, 1)),
      keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
      keras.layers.Flatten(),
      keras.layers.Dense(16, activation="relu", name="fc"),
      keras.layers.Dense(4, name="logits")])
  pruned = pruning.prune_model(model, CONFIG, steps_per_epoch=STEPS)
  pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(
      from_logits=True))
  return pruned


def _fit(model, callbacks=(), epochs=EPOCHS, **kwargs):
  x, y = _data()
  return model.fit(x, y, batch_size=32, epochs=epochs, verbose=0,
                   shuffle=False, callbacks=list(callbacks), **kwargs)


def _state(model):
  pruner = keras3_pruning.find_pruner(model)
  masks = [keras.ops.convert_to_numpy(m) for *_, m in pruner.targets]
  kernels = [keras.ops.convert_to_numpy(v) for _, _, _, v, _ in
             pruner.targets]
  return masks, kernels


@pytest.fixture(scope="module")
def uninterrupted():
  model = _pruned()
  history = _fit(model, [pruning.PruningCallback()])
  masks, kernels = _state(model)
  return history.history["sparsity"], masks, kernels


def _assert_same_as(uninterrupted, model, sparsity):
  expected_sparsity, expected_masks, expected_kernels = uninterrupted
  masks, kernels = _state(model)
  assert sparsity == pytest.approx(expected_sparsity, abs=1e-9)
  assert expected_sparsity[-1] == pytest.approx(0.8, abs=0.01)
  for mask, expected in zip(masks, expected_masks):
    assert np.array_equal(mask, expected)
  for kernel, expected in zip(kernels, expected_kernels):
    np.testing.assert_allclose(kernel, expected, rtol=0, atol=1e-6)
    assert np.array_equal(kernel == 0, expected == 0)


# ------------------------------------------------------------ .keras files


def test_keras_file_mid_pruning_resumes_masks_and_step(uninterrupted,
                                                        tmp_path):
  model = _pruned()
  first = _fit(model, [pruning.PruningCallback()], epochs=1)
  assert 0 < first.history["sparsity"][0] < 0.79  # mid-ramp
  saved_masks, _ = _state(model)
  path = tmp_path / "mid.keras"
  model.save(path)

  loaded = keras.models.load_model(path)
  resumed = keras3_pruning.resume_keras3_pruning(loaded, CONFIG,
                                                 steps_per_epoch=STEPS)
  assert resumed is loaded  # in place: the compiled optimizer is kept
  masks, _ = _state(resumed)
  assert all(np.array_equal(a, b) for a, b in zip(masks, saved_masks))
  assert int(resumed.optimizer.iterations) == STEPS  # the step is back
  rest = _fit(resumed, [pruning.PruningCallback()], initial_epoch=1)
  assert int(resumed.optimizer.iterations) == EPOCHS * STEPS
  _assert_same_as(uninterrupted, resumed,
                  first.history["sparsity"] + rest.history["sparsity"])


def test_saved_file_is_a_plain_model(tmp_path):
  model = _pruned()
  _fit(model, [pruning.PruningCallback()], epochs=1)
  path = tmp_path / "mid.keras"
  model.save(path)
  loaded = keras.models.load_model(path)
  assert keras3_pruning.find_pruner(loaded) is None
  assert len(loaded.get_weights()) == len(model.get_weights()) == 6
  assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(),
                                                  model.get_weights()))


def test_resume_needs_the_optimizer(tmp_path):
  model = _pruned()
  path = tmp_path / "mid.keras"
  model.save(path)
  loaded = keras.models.load_model(path, compile=False)
  with pytest.raises(tf_compress.ModelError, match="has no optimizer"):
    keras3_pruning.resume_keras3_pruning(loaded, CONFIG, STEPS)


# --------------------------------------------------------- BackupAndRestore


class _Interrupt(keras.callbacks.Callback):

  def __init__(self, epoch):
    super().__init__()
    self.epoch = epoch

  def on_epoch_begin(self, epoch, logs=None):
    if epoch == self.epoch:
      raise RuntimeError(f"interrupted at epoch {epoch}")


@pytest.mark.parametrize("epoch", [1, 3], ids=["mid_ramp", "after_ramp"])
@pytest.mark.parametrize("pruning_first", [True, False],
                         ids=["pruning_first", "backup_first"])
def test_backup_and_restore_gives_the_uninterrupted_masks(
    uninterrupted, tmp_path, epoch, pruning_first):
  backup_dir = str(tmp_path / "backup")

  def callbacks(*extra):
    backup = keras.callbacks.BackupAndRestore(backup_dir)
    pair = [pruning.PruningCallback(), backup]
    return (pair if pruning_first else pair[::-1]) + list(extra)

  with pytest.raises(RuntimeError, match=f"interrupted at epoch {epoch}"):
    _fit(_pruned(), callbacks(_Interrupt(epoch)))
  rerun = _pruned()
  history = _fit(rerun, callbacks())
  assert int(rerun.optimizer.iterations) == EPOCHS * STEPS
  # The restored run's history starts at the epoch it resumed from.
  _assert_same_as(uninterrupted, rerun,
                  uninterrupted[0][:epoch] + history.history["sparsity"])
