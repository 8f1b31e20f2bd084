"""The Keras 3 engine of `AdversarialModel`: adversarial training, no tfmot.

`AdversarialModel(base)` builds a `Keras3AdversarialModel` when `base` is a
Keras 3 model; `isinstance(model, AdversarialModel)` holds for it too. It
trains as the tf_keras model does: each batch is perturbed by the attack
against the current weights (inference mode), then the clean and the
adversarial examples go through the base model in one `training=True`
call, and the loss is `(1 - ratio) * clean + ratio * adversarial`.

Keras 3 specifics:

* The attacks take gradients with `tf.GradientTape`, so the TensorFlow
  backend is required.
* Each half's loss is the compiled loss as this replica's mean
  (`replica_mean_loss`: Keras 3 divides a loss by the replicas in sync);
  the regularization losses of the trained model are added once, and the
  total is divided by the replicas once, before the gradients (which are
  summed over replicas). The logs are per-replica means, as Keras' own.
* The optimizer applies variable constraints after each update, so a base
  pruned by the native engine (masks as kernel constraints) keeps its
  sparsity, and `PruningCallback` steps with the optimizer's iterations.
* The base may be a Keras 3 `Distiller`: the attack targets its student,
  and the distillation loss applies to both halves with the teacher's
  targets on the clean inputs (cached teacher outputs work), as the
  tf_keras engine does.
"""

import keras
from keras import ops

from tf_compress._keras import tf
from tf_compress.adversarial import attacks
from tf_compress.adversarial.training_attack import TrainingAttack
from tf_compress.adversarial.training_core import AdversarialCore
from tf_compress.distillation.engine_ops import KERAS3_OPS
from tf_compress.distillation.keras3_distiller import Keras3Distiller

__all__ = ["Keras3AdversarialModel"]

# What `test_step` does not report.
_TRAIN_ONLY = ("clean_loss", "adversarial_loss", "adversarial_accuracy")


def _replicas():
  return tf.distribute.get_strategy().num_replicas_in_sync


@keras.saving.register_keras_serializable(package="tf_compress")
class Keras3AdversarialModel(AdversarialCore, keras.Model):
  """Trains a Keras 3 `base_model` on a mix of clean and adversarial batches.

  Built by `AdversarialModel(base_model, ...)` for a Keras 3 base; the
  arguments, logs and behaviour are `AdversarialModel`'s (see there).
  `fit` reports `loss` (the mixed total), `clean_loss`, `adversarial_loss`,
  `adversarial_accuracy`, the compiled metrics (on the clean half), and
  with a `Distiller` base also `student_loss`, `distillation_loss` (and
  `feature_loss`), mixed in the same ratio; `evaluate` reports `loss` (and
  the distillation terms) and the metrics on clean data. Save or export
  `.base_model` (or the Distiller's student).

  Args:
    base_model: a Keras 3 classifier on the TensorFlow backend (logits
      unless `from_logits=False`), possibly pruned by
      `tf_compress.pruning.prune_model`, or a Keras 3 `Distiller`.
    attack: `"pgd"` or `"fgsm"`.
    epsilon: the attack's radius (>= 0) in input units.
    ratio: weight of the adversarial loss, in (0, 1].
    steps: PGD steps (>= 1); ignored by FGSM.
    step_size: step size (>= 0), or None for the attack's default.
    norm: `"linf"` or `"l2"` (PGD only).
    random_start: start the attack from a random point of the ball.
    clip_min: smallest valid input value.
    clip_max: largest valid input value.
    from_logits: whether the base model outputs logits.
    **kwargs: `keras.Model` arguments such as `name`.

  Raises:
    TypeError: `base_model` is not a Keras 3 model.
    ModelError: the backend is not TensorFlow.
    UserInputError: a bad attack, epsilon, ratio, steps, step size, norm or
      range.

  Example:
    >>> adv = AdversarialModel(keras3_model, attack="pgd", epsilon=0.1)
    >>> adv.compile("adam", keras.losses.SparseCategoricalCrossentropy(
    ...     from_logits=True), metrics=["accuracy"])
    >>> adv.fit(x, y, epochs=10, callbacks=[EpsilonWarmup(3)])
    >>> adv.base_model.save("robust.keras")
  """

  _OPS = KERAS3_OPS

  def __init__(self, base_model, attack="pgd", epsilon=0.1, ratio=0.5,
               steps=5, step_size=None, norm="linf", random_start=True,
               clip_min=0.0, clip_max=1.0, from_logits=True, **kwargs):
    super().__init__(**kwargs)
    if not isinstance(base_model, keras.Model):
      raise TypeError(f"`base_model` must be a Keras 3 Model, got "
                      f"{type(base_model).__name__}.")
    attacks.check_attack_model(base_model, "base_model")
    settings = TrainingAttack(attack, epsilon, ratio, steps, step_size, norm,
                              random_start, clip_min, clip_max, from_logits)
    self._set_up(base_model, settings, keras, Keras3Distiller)

  def _labels(self, y):
    if self._distiller is not None:
      return self._distiller.labels_of(y)
    return y

  # -- Keras hooks -----------------------------------------------------------

  # Keras 3 builds the compiled loss and metrics by calling these two on the
  # data's own `y`, which with cached teacher outputs is a dict: hand them
  # the labels. (The steps mix their losses themselves.)

  def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                   training=True):
    return super().compute_loss(x, self._labels(y), y_pred, sample_weight,
                                training=training)

  def compute_metrics(self, x, y, y_pred, sample_weight=None):
    return super().compute_metrics(x, self._labels(y), y_pred, sample_weight)

  def train_step(self, data):
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    targets, x_adv = self._attacked(x, y)
    labels = targets[0]
    with tf.GradientTape() as tape:
      clean_logits, adv_logits, clean, adv, total = self._mixed_loss(
          x, x_adv, targets, sample_weight)
      # Gradients are summed over replicas: scale each replica's mean.
      scaled = self.optimizer.scale_loss(total / _replicas())
    variables = self.trainable_variables
    gradients = tape.gradient(scaled, variables)
    # `apply_gradients` applies the variables' constraints after the
    # update: the pruning masks of a pruned base.
    self.optimizer.apply_gradients(zip(gradients, variables))
    self._track_train(total, clean, adv, labels, adv_logits, sample_weight)
    return self.compute_metrics(x, labels, clean_logits, sample_weight)

  def test_step(self, data):
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    targets = self._targets(x, y)
    logits, terms, total = self._clean_loss(x, targets, sample_weight)
    self._track_test(total, terms)
    logs = self.compute_metrics(x, targets[0], logits, sample_weight)
    return {k: v for k, v in logs.items() if k not in _TRAIN_ONLY}

  def get_config(self):
    config = {"name": self.name,
              "base_model": keras.saving.serialize_keras_object(
                  self.base_model),
              "epsilon": float(ops.convert_to_numpy(self.epsilon))}
    config.update(self._settings.config())
    return config

  @classmethod
  def from_config(cls, config, custom_objects=None):
    config = dict(config)
    config["base_model"] = keras.saving.deserialize_keras_object(
        config["base_model"], custom_objects=custom_objects)
    return cls(**config)
