"""keras3_backup.BackupAndRestore: resume, crash consistency, chief-only."""

import json
import os

import keras
import numpy as np
import pytest

from tf_compress import keras3_backup

EPOCHS = 4
STOP_AT = 2  # the interrupted fit dies at the start of this epoch


class _Interrupt(keras.callbacks.Callback):

  def on_epoch_begin(self, epoch, logs=None):
    if epoch == STOP_AT:
      raise KeyboardInterrupt("interrupted")


def _data():
  rng = np.random.RandomState(0)
  x = rng.randn(64, 6).astype("float32")
  return x, (x[:, 0] + x[:, 1] > 0).astype("int32")


def _model():
  keras.utils.set_random_seed(0)
  model = keras.Sequential([keras.Input((6,)),
                            keras.layers.Dense(8, activation="relu"),
                            keras.layers.Dense(2)])
  model.compile(keras.optimizers.Adam(0.01),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  return model


def _fit(model, callbacks):
  x, y = _data()
  return model.fit(x, y, batch_size=16, epochs=EPOCHS, shuffle=False,
                   verbose=0, callbacks=callbacks)


@pytest.fixture(scope="module")
def uninterrupted():
  model = _model()
  _fit(model, [])
  return model.get_weights()


def test_interrupted_fit_resumes_to_the_same_weights(tmp_path,
                                                     uninterrupted):
  backup = tmp_path / "backup"
  model = _model()
  with pytest.raises(KeyboardInterrupt):
    _fit(model, [keras3_backup.BackupAndRestore(str(backup)), _Interrupt()])
  metadata = json.loads((backup / "training_metadata.json").read_text())
  assert metadata["epoch"] == STOP_AT
  # One whole weights file: the one the metadata names (older ones gone).
  assert sorted(os.listdir(backup)) == [metadata["weights"],
                                        "training_metadata.json"]
  resumed = _model()
  history = _fit(resumed, [keras3_backup.BackupAndRestore(str(backup))])
  assert history.epoch == list(range(STOP_AT, EPOCHS))
  for got, want in zip(resumed.get_weights(), uninterrupted):
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
  assert not backup.exists()  # deleted when the fit completed


def test_a_save_killed_half_way_restores_the_named_weights(tmp_path,
                                                           uninterrupted):
  backup = tmp_path / "backup"
  with pytest.raises(KeyboardInterrupt):
    _fit(_model(), [keras3_backup.BackupAndRestore(str(backup)),
                    _Interrupt()])
  metadata = json.loads((backup / "training_metadata.json").read_text())
  # A kill during the next save: a torn partial file, or weights renamed
  # into place before the metadata naming them was written.
  saves = metadata["saves"]
  (backup / f"partial-backup-{saves + 1}.weights.h5").write_bytes(b"torn")
  (backup / f"backup-{saves + 1}.weights.h5").write_bytes(b"\x89HDF")
  resumed = _model()
  history = _fit(resumed, [keras3_backup.BackupAndRestore(str(backup))])
  assert history.epoch[0] == STOP_AT
  for got, want in zip(resumed.get_weights(), uninterrupted):
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_a_worker_that_does_not_checkpoint_restores_but_never_writes(
    tmp_path, monkeypatch):
  backup = tmp_path / "backup"
  with pytest.raises(KeyboardInterrupt):
    _fit(_model(), [keras3_backup.BackupAndRestore(str(backup)),
                    _Interrupt()])
  before = {p: (backup / p).read_bytes() for p in os.listdir(backup)}
  monkeypatch.setattr(keras3_backup, "_should_write", lambda model: False)
  history = _fit(_model(), [keras3_backup.BackupAndRestore(str(backup))])
  assert history.epoch[0] == STOP_AT  # restored from the chief's backup
  # Nothing written, nothing deleted.
  assert {p: (backup / p).read_bytes() for p in os.listdir(backup)} == before
  fresh = tmp_path / "fresh"
  _fit(_model(), [keras3_backup.BackupAndRestore(str(fresh))])
  assert not fresh.exists()


def test_foreign_metadata_is_refused_by_name(tmp_path):
  backup = tmp_path / "backup"
  backup.mkdir()
  (backup / "training_metadata.json").write_text('{"epoch": 1}')
  with pytest.raises(ValueError, match="training_metadata.json is not a "
                     "backup's metadata"):
    _fit(_model(), [keras3_backup.BackupAndRestore(str(backup))])


def test_config_round_trips():
  callback = keras3_backup.BackupAndRestore("/tmp/b", save_freq=3,
                                            delete_checkpoint=False)
  again = keras3_backup.BackupAndRestore(**callback.get_config())
  assert (again.backup_dir, again.save_freq, again.delete_checkpoint) == (
      "/tmp/b", 3, False)
