"""Scores and loss of a Keras model on arrays, without tracing a function.

`model.predict` and `model.evaluate` trace a `tf.function` for each new
model, which costs far more than the inference itself on the small test
splits tf_compress measures every variant on: measured on the 2-core
machine, 1.6-2.9 s for `predict` and `evaluate` of the digits CNN against
0.07 s for the same scores and loss computed eagerly, batch by batch. The
functions here compute them eagerly, for either Keras (3 or tf_keras),
wherever the model's `predict_step`/`test_step` are Keras' own; a model
that overrides one is left to `predict`/`evaluate`.
"""

import numpy as np

from tf_compress._keras import keras as tf_keras
from tf_compress._keras import keras_version_of
from tf_compress._keras import tf

__all__ = ["predict_scores", "test_loss"]


def _keras3():
  import keras  # pylint: disable=g-import-not-at-top
  return keras


def _base_model(model):
  return _keras3().Model if keras_version_of(model) == 3 else tf_keras.Model


def _standard(model, step):
  """True when `model`'s `step` is the one its Keras' `Model` defines."""
  return getattr(type(model), step, None) is getattr(_base_model(model),
                                                     step, None)


def _first_output(scores):
  if isinstance(scores, (list, tuple)):
    scores = scores[0]
  return scores


def predict_scores(model, x, batch_size=256):
  """`model.predict(x)`'s first output, as float32 numpy.

  Computed eagerly in batches of `batch_size` (`model(batch,
  training=False)`, what Keras' own `predict_step` does), or through
  `model.predict` when the model overrides `predict_step`.
  """
  batch_size = max(1, int(batch_size))
  if not _standard(model, "predict_step") or len(x) == 0:
    return np.asarray(_first_output(model.predict(
        x, batch_size=batch_size, verbose=0)), dtype=np.float32)
  parts = []
  for start in range(0, len(x), batch_size):
    out = _first_output(model(x[start:start + batch_size], training=False))
    parts.append(np.asarray(out, dtype=np.float32))
  return np.concatenate(parts)


def test_loss(model, x, y, scores=None, batch_size=256):
  """The loss `model.evaluate(x, y)` reports: compiled loss plus the
  model's own losses, averaged over the samples.

  Args:
    model: a compiled model.
    x, y: the inputs and labels.
    scores: `predict_scores(model, x)` when already computed.
    batch_size: as for `evaluate`.

  Returns:
    The loss as a float; through `model.evaluate` when the model overrides
    `test_step`.
  """
  outputs = getattr(model, "outputs", None) or ()
  if not _standard(model, "test_step") or len(x) == 0 or len(outputs) > 1:
    return _evaluated_loss(model, x, y, batch_size)
  if scores is None:
    scores = predict_scores(model, x, batch_size)
  y_pred = tf.constant(scores)
  y_true = tf.constant(np.asarray(y))
  if keras_version_of(model) == 3:
    loss = model.compute_loss(x=None, y=y_true, y_pred=y_pred,
                              training=False)
    # Inside a strategy's scope Keras 3 divides each loss by the replicas
    # (for a sum over them); this is the whole split's loss.
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return float(np.asarray(loss)) * replicas
  # tf_keras' compute_loss also updates its loss metric, which a model made
  # under a distribution strategy refuses outside a replica: the same mean,
  # from per-sample losses (a reduction a strategy's scope allows).
  per_sample = _per_sample_loss(model.loss)
  if per_sample is None:  # one loss per output: Keras' own container
    return _evaluated_loss(model, x, y, batch_size)
  loss = tf.reduce_mean(per_sample(y_true, y_pred))
  if model.losses:
    loss += tf.add_n([tf.cast(l, loss.dtype) for l in model.losses])
  return float(np.asarray(loss))


def _evaluated_loss(model, x, y, batch_size):
  return float(model.evaluate(x, y, batch_size=int(batch_size), verbose=0,
                              return_dict=True)["loss"])


def _per_sample_loss(loss):
  """tf_keras `loss` (a name, function or `Loss`) without reduction."""
  if isinstance(loss, str):
    loss = tf_keras.losses.get(loss)
  if isinstance(loss, tf_keras.losses.Loss):
    try:
      return type(loss).from_config(dict(
          loss.get_config(), reduction=tf_keras.losses.Reduction.NONE))
    except (TypeError, ValueError, NotImplementedError):
      return None
  return loss if callable(loss) else None
