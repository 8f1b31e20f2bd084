"""A Keras 3 `BackupAndRestore` safe with several workers and with crashes.

Keras 3.15's `keras.callbacks.BackupAndRestore` knows nothing of workers:
under `MultiWorkerMirroredStrategy` every worker writes the same
`latest.weights.h5` and `training_metadata.json`, and each one deletes the
directory when its fit ends. It also writes both files in place, one after
the other, so a kill during a save leaves a torn weights file (which the
restore cannot read) or weights one epoch ahead of the epoch it records.

`BackupAndRestore` here keeps Keras' behaviour and arguments, and:

* only the worker whose strategy says it checkpoints (the chief; the one
  process without distribution) writes and deletes; every worker restores
  from that directory, so with workers on several machines it must be
  shared storage (as for tf_keras' callback);
* each save writes the weights under a new name (`backup-<n>.weights.h5`,
  by renaming a finished file), then the metadata naming it (atomically),
  then removes the older weights; at any moment the metadata names whole
  weights of the epoch it records.
"""

import json
import os

import keras

from tf_compress._keras import tf
from tf_compress.io_utils import atomic_write_json

METADATA_NAME = "training_metadata.json"


def _should_write(model):
  strategy = getattr(model, "distribute_strategy", None)
  if strategy is None:
    strategy = tf.distribute.get_strategy()
  return bool(strategy.extended.should_checkpoint)


@keras.saving.register_keras_serializable(package="tf_compress")
class BackupAndRestore(keras.callbacks.BackupAndRestore):
  """`keras.callbacks.BackupAndRestore` for Keras 3: chief-only, atomic.

  Args:
    backup_dir: the directory of the backup (shared by all workers).
    save_freq: `"epoch"` or a number of batches between saves.
    delete_checkpoint: remove the backup when the fit completes.

  >>> model.fit(data, epochs=10, callbacks=[BackupAndRestore("/tmp/bk")])
  """

  def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
    super().__init__(backup_dir, save_freq=save_freq,
                     double_checkpoint=False,
                     delete_checkpoint=delete_checkpoint)
    self._metadata_path = os.path.join(backup_dir, METADATA_NAME)
    self._saves = 0
    self._weights_name = None  # the whole weights the metadata names

  def get_config(self):
    return {"backup_dir": self.backup_dir, "save_freq": self.save_freq,
            "delete_checkpoint": self.delete_checkpoint}

  def _read_metadata(self):
    try:
      with open(self._metadata_path, encoding="utf-8") as f:
        metadata = json.load(f)
    except FileNotFoundError:
      return None
    if not isinstance(metadata, dict) or not isinstance(
        metadata.get("weights"), str) or not isinstance(
            metadata.get("epoch"), int):
      raise ValueError(f"{self._metadata_path} is not a backup's metadata "
                       f"written by tf_compress: {metadata!r}")
    return metadata

  def on_train_begin(self, logs=None):
    self._load_model()

  def _load_model(self):
    if not self.model.built:
      raise ValueError(
          "BackupAndRestore needs a built model: call it on a batch of data "
          "before fit")
    metadata = self._read_metadata()
    if metadata is None:
      return
    optimizer = self.model.optimizer
    if optimizer is not None and not optimizer.built:
      optimizer.build(self.model.trainable_variables)
    self.model.load_weights(
        os.path.join(self.backup_dir, os.path.basename(metadata["weights"])))
    self._saves = int(metadata.get("saves", 0))
    # pylint: disable-next=protected-access
    self.model._initial_epoch = metadata["epoch"]

  def _save_model(self):
    if not _should_write(self.model):
      return
    os.makedirs(self.backup_dir, exist_ok=True)
    previous = self._weights_name
    self._saves += 1
    name = f"backup-{self._saves}.weights.h5"
    partial = os.path.join(self.backup_dir, f"partial-{name}")
    self.model.save_weights(partial, overwrite=True)
    os.replace(partial, os.path.join(self.backup_dir, name))
    atomic_write_json(self._metadata_path, {
        "weights": name, "epoch": self._current_epoch,
        "batch": self._last_batch_seen, "saves": self._saves})
    self._weights_name = name
    if previous is not None and previous != name:
      try:
        os.remove(os.path.join(self.backup_dir, previous))
      except FileNotFoundError:
        pass

  def on_train_end(self, logs=None):
    if _should_write(self.model):
      super().on_train_end(logs)
