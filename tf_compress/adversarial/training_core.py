"""What both engines' `AdversarialModel` share: settings, targets, losses.

The tf_keras `AdversarialModel` and the Keras 3 `Keras3AdversarialModel`
differ only in their base `Model` class, their Keras and their `Distiller`
class; the attack settings, the trackers, the teacher targets (for a
`Distiller` base), the forward pass and the loss terms are written once
here. Both engines require TensorFlow (the attacks use `tf.GradientTape`),
so the ops are TensorFlow's.
"""

from tf_compress._keras import tf
from tf_compress.distillation.compiled_loss import replica_mean_loss

__all__ = ["AdversarialCore"]

_SETTINGS = ("attack", "ratio", "steps", "step_size", "norm", "random_start",
             "clip_min", "clip_max", "from_logits")


class AdversarialCore:
  """Mixin of an adversarial-training `Model` (list it before the Model).

  `_set_up` is called from the model's `__init__`, after the Model's own.
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

  def perturb(self, x, labels):
    """Adversarial examples for a batch, with the current epsilon."""
    return self._settings.perturb(self.target_model, x, labels, self.epsilon)

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
