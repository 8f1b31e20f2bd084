"""A training harness's compiled loss and metrics, for both Keras engines.

The harnesses (`Distiller`, `AdversarialModel`) mix the loss given to
`compile` with other terms. Both Keras engines divide a compiled loss by
the number of replicas in sync (the gradients are summed over replicas):
tf_keras in `compiled_loss`, Keras 3 inside each `Loss` call. The harnesses
report each replica's plain mean and divide their total once, so they take
the compiled loss back to that mean with `replica_mean_loss`.

`compiled_metrics` lists the compiled metrics for a harness's `metrics`,
and `CheckedFit` gives the harnesses a `fit` and an `evaluate` that check
the compile and the data before Keras traces a step.
"""

from tf_compress._keras import is_keras3_object, tf
from tf_compress.errors import UserInputError

__all__ = ["check_compiled_loss", "compiled_metrics", "CheckedFit",
           "replica_mean_loss"]


def _keras3_compile_loss(model):
  # Keras 3 keeps the compiled loss (a `CompileLoss`, which maps outputs to
  # losses and applies `loss_weights`) here; its own `compute_loss` calls it.
  return getattr(model, "_compile_loss", None)


def check_compiled_loss(model):
  """Raises `UserInputError` unless `model` was compiled with a loss.

  An uncompiled model is left to Keras, whose own error says to compile.

  Args:
    model: a tf_keras or Keras 3 model.

  Raises:
    UserInputError: `model` was compiled without a loss.
  """
  if is_keras3_object(model):
    missing = (getattr(model, "compiled", False) and
               _keras3_compile_loss(model) is None)
  else:
    missing = (getattr(model, "compiled_loss", None) is not None and
               not model.loss)
  if missing:
    raise UserInputError(
        f"{type(model).__name__} {model.name!r} was compiled without a loss: "
        "pass the hard loss on labels, e.g. compile(optimizer, "
        "keras.losses.SparseCategoricalCrossentropy(from_logits=True))")


def replica_mean_loss(model, labels, logits, sample_weight):
  """`model`'s compiled loss as this replica's plain mean.

  Call it inside a train or test step (in the replica context).

  Args:
    model: a compiled tf_keras or Keras 3 model (TensorFlow backend).
    labels: the targets of the compiled loss.
    logits: the model's outputs.
    sample_weight: `[batch]` weights or None.

  Returns:
    A scalar tensor: the loss without the division by the replica count
    (losses with a mean reduction, as Keras' defaults are).

  Raises:
    UserInputError: `model` was compiled without a loss.
  """
  check_compiled_loss(model)
  if is_keras3_object(model):
    compiled = _keras3_compile_loss(model)
    if compiled is None:
      raise UserInputError(
          f"{type(model).__name__} {model.name!r} is not compiled: call "
          "compile(optimizer, loss) before training it")
    loss = compiled(labels, logits, sample_weight)
  else:
    loss = model.compiled_loss(labels, logits, sample_weight)
  replicas = tf.distribute.get_strategy().num_replicas_in_sync
  return loss * tf.cast(replicas, loss.dtype)


def compiled_metrics(model):
  """The compiled metrics of `model`, to list in its `metrics` property.

  Keras 3 keeps them in one container, which `compute_metrics` updates;
  listed, `fit` resets and reports them. tf_keras lists each metric.

  Args:
    model: a tf_keras or Keras 3 model, compiled or not.

  Returns:
    A list of metrics (empty before `compile`).
  """
  if is_keras3_object(model):
    compiled = getattr(model, "_compile_metrics", None)
    return [] if compiled is None else [compiled]
  if model.compiled_metrics is None:
    return []
  return list(model.compiled_metrics.metrics)


class CheckedFit:
  """Mixin of a harness `Model` (list it before the Model): checked fit.

  `fit` and `evaluate` check that the model was compiled with a loss, then
  call `_check_inputs`, then Keras'. The checks run here, in Python: an
  error raised while Keras traces the train step would reach the caller
  wrapped in a TensorFlow StagingError.
  """

  def _check_inputs(self, x, y, batch_size, training):
    """Raises for data the harness cannot train (`training`) or evaluate on."""

  def fit(self, x=None, y=None, batch_size=None, **kwargs):
    # pylint: disable=arguments-differ
    check_compiled_loss(self)
    self._check_inputs(x, y, batch_size, training=True)
    return super().fit(x, y, batch_size=batch_size, **kwargs)

  def evaluate(self, x=None, y=None, batch_size=None, **kwargs):
    # pylint: disable=arguments-differ
    check_compiled_loss(self)
    self._check_inputs(x, y, batch_size, training=False)
    return super().evaluate(x, y, batch_size=batch_size, **kwargs)
