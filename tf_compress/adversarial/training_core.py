"""What both engines' `AdversarialModel` share: settings, targets, losses.

The tf_keras `AdversarialModel` and the Keras 3 `Keras3AdversarialModel`
differ only in their base `Model` class, their Keras and their `Distiller`
class; the attack settings, the trackers, the teacher targets (for a
`Distiller` base), the forward passes, the loss terms, the tracking, the
`metrics` and the checks that `fit` and `evaluate` run first are written
once here. Both engines require TensorFlow (the attacks use
`tf.GradientTape`); the loss terms are in TensorFlow, the forward passes in
the engine's ops (`_OPS`: `engine_ops.TF_OPS` or `KERAS3_OPS`).
"""

from tf_compress._keras import tf
from tf_compress.distillation.compiled_loss import CheckedFit
from tf_compress.distillation.compiled_loss import compiled_metrics
from tf_compress.distillation.compiled_loss import replica_mean_loss
from tf_compress.distillation.engine_ops import regularization

__all__ = ["AdversarialCore"]

_DISTILL_TERMS = ("student_loss", "distillation_loss", "feature_loss")
_SETTINGS = ("attack", "ratio", "steps", "step_size", "norm", "random_start",
             "clip_min", "clip_max", "from_logits")


class AdversarialCore(CheckedFit):
  """Mixin of an adversarial-training `Model` (list it before the Model).

  `_set_up` is called from the model's `__init__`, after the Model's own;
  the model sets the class attribute `_OPS` to its engine's ops.
  """

  def _set_up(self, base_model, settings, keras_module, distiller_type):
    """Stores the settings, the epsilon variable and the loss trackers.

    Args:
      base_model: the model trained (maybe a `Distiller`).
      settings: the `TrainingAttack` of the arguments.
      keras_module: the Keras of the model (`keras` or `tf_keras`).
      distiller_type: that Keras' `Distiller` class.
    """
    self._settings = settings
    self.base_model = base_model
    for name in _SETTINGS:
      setattr(self, name, getattr(settings, name))
    self.epsilon = self.add_weight(
        name="epsilon", shape=(), trainable=False, dtype="float32",
        initializer=keras_module.initializers.Constant(settings.epsilon))
    self._distiller = (base_model if isinstance(base_model, distiller_type)
                       else None)
    names = ["loss", "clean_loss", "adversarial_loss"]
    if self._distiller is not None:
      names += ["student_loss", "distillation_loss"]
      if self._distiller.feature_pairs:
        names.append("feature_loss")
    self._trackers = {n: keras_module.metrics.Mean(name=n) for n in names}
    self.adversarial_accuracy = (
        keras_module.metrics.SparseCategoricalAccuracy(
            name="adversarial_accuracy"))
    # Training calls the base model, never `self`: built when it is.
    self.built = base_model.built

  @property
  def target_model(self):
    """The model the attack is crafted against (a Distiller's student)."""
    if self._distiller is not None:
      return self._distiller.student
    return self.base_model

  def call(self, inputs, training=None):
    return self.base_model(inputs, training=training)

  @property
  def metrics(self):
    return (list(self._trackers.values()) + [self.adversarial_accuracy] +
            compiled_metrics(self))

  def _check_inputs(self, x, y, batch_size, training):
    del training  # The same checks for fit and evaluate.
    if self._distiller is not None:
      self._distiller.check_data(x, y, batch_size)

  def perturb(self, x, labels):
    """Adversarial examples for a batch, with the current epsilon."""
    return self._settings.perturb(self.target_model, x, labels, self.epsilon)

  def _attacked(self, x, y):
    """`(targets, x_adv)`: a batch's `_targets` and adversarial examples."""
    targets = self._targets(x, y)
    return targets, self.perturb(x, targets[0])

  # -- losses ----------------------------------------------------------------

  def _hard_loss(self, labels, logits, sample_weight):
    return replica_mean_loss(self, labels, logits, sample_weight)

  def _targets(self, x, y):
    if self._distiller is not None:
      return self._distiller.teacher_targets(x, y)
    return y, None, []

  def _forward(self, inputs, training):
    if self._distiller is not None:
      return self._distiller.student_outputs(inputs, training=training)
    return self.base_model(inputs, training=training), []

  def _terms(self, targets, sample_weight, logits, features):
    labels, teacher_logits, teacher_features = targets
    if self._distiller is None:
      return {"total": tf.cast(
          self._hard_loss(labels, logits, sample_weight), tf.float32)}
    return self._distiller.loss_terms(labels, sample_weight, logits,
                                      features, teacher_logits,
                                      teacher_features, self._hard_loss)

  def _mixed_loss(self, x, x_adv, targets, sample_weight):
    """The clean and adversarial halves through one training call.

    One call for both: tfmot's pruning wrappers count one step per training
    call, and batch norm sees one batch.

    Args:
      x: the clean batch.
      x_adv: its adversarial examples (from `perturb`).
      targets: from `_targets` on the clean batch.
      sample_weight: `[batch]` weights or None.

    Returns:
      `(clean_logits, adv_logits, clean, adv, total)`: each half's logits
      and `_terms`, and the mixed total with the regularization losses.
    """
    ops = self._OPS
    batch = ops.shape(x)[0]
    logits, features = self._forward(
        ops.concatenate([ops.cast(x, x_adv.dtype), x_adv], axis=0),
        training=True)
    clean = self._terms(targets, sample_weight, logits[:batch],
                        [f[:batch] for f in features])
    adv = self._terms(targets, sample_weight, logits[batch:],
                      [f[batch:] for f in features])
    total = ((1.0 - self.ratio) * clean["total"] +
             self.ratio * adv["total"] +
             regularization(self.target_model, ops))
    return logits[:batch], logits[batch:], clean, adv, total

  def _clean_loss(self, x, targets, sample_weight):
    """`(logits, terms, total)` of a test batch, total with regularization."""
    logits, features = self._forward(x, training=False)
    terms = self._terms(targets, sample_weight, logits, features)
    return logits, terms, terms["total"] + regularization(self.target_model,
                                                          self._OPS)

  def _track_train(self, total, clean, adv, labels, adv_logits,
                   sample_weight):
    """Updates the trackers after a train step (see `_mixed_loss`)."""
    self._trackers["loss"].update_state(total)
    self._trackers["clean_loss"].update_state(clean["total"])
    self._trackers["adversarial_loss"].update_state(adv["total"])
    for name in _DISTILL_TERMS:
      if name in self._trackers:
        self._trackers[name].update_state(
            (1.0 - self.ratio) * clean[name] + self.ratio * adv[name])
    self.adversarial_accuracy.update_state(labels, adv_logits, sample_weight)

  def _track_test(self, total, terms):
    """Updates the trackers after a test step; returns the names updated."""
    self._trackers["loss"].update_state(total)
    names = ["loss"]
    for name in _DISTILL_TERMS:
      if name in self._trackers:
        self._trackers[name].update_state(terms[name])
        names.append(name)
    return names
