"""Keras 3 `fit` under `MultiWorkerMirroredStrategy`: two upstream fixes.

Keras 3.15's TensorFlow trainer fails there in two places (reproduced with
TensorFlow 2.21 on 2 local workers; `MirroredStrategy` is not affected):

* `_maybe_symbolic_build` takes its sample batch as `strategy.reduce(
  "MEAN", batch)` of the whole `(x, y)` structure, which the collective
  all-reduce cannot convert ("Attempt to convert a value (PerReplica...)").
  It only needs the batch's shapes and dtypes: the fix reads the first
  local replica's values.
* `reduce_per_replica(..., "auto")` reduces the step's logs with
  `strategy.reduce("MEAN", v, axis=0)`, which fails on the scalar losses
  and metrics every `train_step` returns. The fix averages a scalar over
  the replicas (`axis=None`), as the other strategies do.

`install` replaces the two functions with wrappers that run the originals
for every other strategy, so nothing changes where Keras already works; it
is called when `make_strategy` creates the multi-worker strategy. Where
Keras' internals differ (another version), it installs nothing.
"""

import threading

from tf_compress._keras import tf

_LOCK = threading.Lock()
_INSTALLED = []


def _trainer_module():
  try:
    # pylint: disable-next=g-import-not-at-top
    from keras.src.backend.tensorflow import trainer
  except ImportError:
    return None
  needed = ("TensorFlowTrainer", "reduce_per_replica",
            "_collective_all_reduce_multi_worker")
  if not all(hasattr(trainer, name) for name in needed) or not hasattr(
      trainer.TensorFlowTrainer, "_maybe_symbolic_build"):
    return None
  return trainer


def _first_local_value(strategy, value):
  if isinstance(value, tf.distribute.DistributedValues):
    return strategy.experimental_local_results(value)[0]
  return value


def install():
  """Patches Keras 3's TensorFlow trainer for multi-worker `fit` (once).

  Returns:
    True when the fixes are in place, False where Keras has no such
    internals to patch.
  """
  with _LOCK:
    if _INSTALLED:
      return True
    trainer = _trainer_module()
    if trainer is None:
      return False
    # pylint: disable-next=protected-access
    multi_worker = trainer._collective_all_reduce_multi_worker
    # pylint: disable-next=protected-access
    original_build = trainer.TensorFlowTrainer._maybe_symbolic_build
    original_reduce = trainer.reduce_per_replica

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
      strategy = self._distribute_strategy  # pylint: disable=protected-access
      if strategy is None or iterator is None or not multi_worker(strategy):
        return original_build(self, iterator=iterator, data_batch=data_batch)
      # As Keras does, one batch of the epoch's iterator is read here.
      for _, _, batches in iterator:
        batch = next(batches)
        data_batch = tf.nest.map_structure(
            lambda v: _first_local_value(strategy, v), batch)
        break
      with strategy.scope():
        # pylint: disable-next=protected-access
        self._symbolic_build(data_batch=data_batch)
      return None

    def reduce_per_replica(values, strategy, reduction):
      if reduction not in ("auto", "mean") or not multi_worker(strategy):
        return original_reduce(values, strategy, reduction)

      def mean(value):
        rank = _first_local_value(strategy, value).shape.rank
        return strategy.reduce("MEAN", value, axis=0 if rank else None)

      return tf.nest.map_structure(mean, values)

    # pylint: disable-next=protected-access
    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer.reduce_per_replica = reduce_per_replica
    _INSTALLED.append(True)
    return True
