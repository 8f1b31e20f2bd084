"""`Keras3Distiller`: the `Distiller` of Keras 3 teachers and students.

`distillation.Distiller(teacher, student, ...)` returns one when the
student is a Keras 3 model (`import keras`); the arguments, the loss, the
logs and the methods are those of the tf_keras `Distiller`:

    total = alpha * hard + (1 - alpha) * T^2 * KL(softmax(t / T) ||
                                                  softmax(s / T))
            [+ feature_weight * mean over pairs of MSE(t_feat, proj(s_feat))]

It is a Keras 3 model whose steps follow Keras 3's own: `compute_loss`
gives the total (divided by the replicas in sync, as Keras 3's losses are),
`compute_metrics` the compiled metrics on the student's outputs, and
`metrics` lists the loss trackers. The train step is TensorFlow's (a
`GradientTape`), so the TensorFlow backend is required; the losses are in
`keras.ops`.

The student may be pruned (`pruning.prune_model`) or quantization-aware
(`quantization.quantize_model`): the Keras 3 engine instruments its layers
in place and the optimizer applies the pruning masks after every update
(`apply_gradients`), so `PruningCallback` and `QATFreezeCallback` drive it
inside the Distiller's `fit`. What gets saved or exported is
`distiller.student`.

Keras 3 has its own `keras.distillation.Distiller` (since 3.12). This one
keeps tf_compress's API and adds: `temperature` and `alpha` as variables
(`DistillationScheduler` anneals them inside the compiled step), cached
teacher outputs (`cache_teacher_logits`), probability teachers, sample
weights in the soft and feature losses, learned 1x1 projections between
features of different widths, one student call per step (features and
logits together), the per-term logs, and `augmentation`: a
`ConsistentAugmentation` (seeded mixup, pixel shifts, noise) drawn in each
training step, whose views both the teacher (run live) and the student see,
with the labels mixed in the hard loss (function matching, Beyer et al.,
2022).
"""

import keras
import tensorflow as tf

from tf_compress.distillation import distill_checks as checks
from tf_compress.distillation.consistent_views import mixed_hard_loss
from tf_compress.distillation.consistent_views import own_augmentation
from tf_compress.distillation.distiller_core import DistillerCore
from tf_compress.distillation.distiller_core import soft_target
from tf_compress.distillation.engine_ops import KERAS3_OPS
from tf_compress.distillation.engine_ops import regularization
from tf_compress.distillation.teacher_cache import first_batch
from tf_compress.distillation.teacher_cache import LABELS_KEY
from tf_compress.distillation.teacher_cache import TEACHER_KEY
from tf_compress.errors import ModelError

__all__ = ["Keras3Distiller", "keras3_soft_target_loss"]


def keras3_soft_target_loss(teacher_logits, student_logits, temperature,
                            sample_weight=None):
  """`soft_target_loss` in `keras.ops`: KL at temperature T, times T^2.

  Args:
    teacher_logits: `[batch, classes]` teacher logits (or log-probabilities).
    student_logits: `[batch, classes]` student logits.
    temperature: the softmax temperature T (> 0), a float or a variable.
    sample_weight: optional `[batch]` weights.

  Returns:
    A scalar float32 tensor, the batch mean.
  """
  return soft_target(teacher_logits, student_logits, temperature,
                     sample_weight, KERAS3_OPS)


def _replicas():
  return tf.distribute.get_strategy().num_replicas_in_sync


def _augmentation_config(augmentation):
  if augmentation is None:
    return None
  config = keras.saving.serialize_keras_object(augmentation)
  # Its arguments only: whether the layer has been called does not matter.
  config.pop("build_config", None)
  return config


@keras.saving.register_keras_serializable(package="tf_compress")
class Keras3Distiller(DistillerCore, keras.Model):
  """The Keras 3 engine of `Distiller` (see it for the arguments).

  Made by `distillation.Distiller(teacher, student, ...)` for Keras 3
  models; `isinstance(d, Distiller)` holds. `fit` reports `loss` (the
  total), `student_loss`, `distillation_loss`, `feature_loss` with
  `feature_pairs`, and the compiled metrics (on the student's outputs).

  Args:
    teacher: a Keras 3 model outputting logits or probabilities.
    student: a Keras 3 model outputting logits, possibly pruned or
      quantization-aware.
    alpha: weight of the hard loss in [0, 1]; the soft loss gets 1 - alpha.
    temperature: softmax temperature T > 0.
    teacher_outputs: `"logits"` or `"probabilities"`.
    feature_pairs: optional `[(teacher_layer, student_layer)]` names.
    feature_weight: weight of the feature loss (>= 0).
    augmentation: optional `ConsistentAugmentation` (the Distiller keeps a
      copy): each training step, teacher and student see the same views
      of the batch, and a mixed example's hard loss is its labels' mix.
      The teacher runs live (cached outputs are refused); evaluation and
      prediction see the plain inputs; training metrics use each example's
      own label. `Distiller(..., alpha=1.0, augmentation=same)` trains the
      student on the same views without the teacher's term: the fair
      control of an augmented run. It applies in this Distiller's own
      `train_step` (an `AdversarialModel` around it does not augment).
    **kwargs: `keras.Model` arguments such as `name`.

  Raises:
    TypeError: teacher or student is not a Keras 3 model.
    ModelError: the Keras backend is not TensorFlow.
    UserInputError: as for `Distiller`.

  Example:
    >>> student = pruning.prune_model(student, pruning.PruningConfig(0.5))
    >>> distiller = distillation.Distiller(teacher, student, alpha=0.1)
    >>> distiller.compile("adam", keras.losses.SparseCategoricalCrossentropy(
    ...     from_logits=True), metrics=["accuracy"])
    >>> distiller.fit(x, y, epochs=4, callbacks=[pruning.PruningCallback()])
    >>> pruning.strip_pruning(distiller.student).save("student.keras")
  """

  _KERAS = keras
  _OPS = KERAS3_OPS
  _WEIGHT_DTYPE = "float32"
  # The Keras 3 engine instruments layers in place: names are unchanged.
  _WRAPPER_OF = None

  def __init__(self, teacher, student, alpha=0.1, temperature=3.0,
               teacher_outputs="logits", feature_pairs=None,
               feature_weight=1.0, augmentation=None, **kwargs):
    if keras.backend.backend() != "tensorflow":
      raise ModelError(
          f"the Keras 3 Distiller trains with the TensorFlow backend, but "
          f"Keras runs {keras.backend.backend()!r}; set KERAS_BACKEND="
          "tensorflow before importing keras")
    alpha, temperature, feature_weight = self._check_arguments(
        teacher, student, alpha, temperature, teacher_outputs,
        feature_weight)
    feature_pairs = checks.check_pairs(feature_pairs)
    augmentation = own_augmentation(augmentation)
    self._check_output_shapes(teacher, student)
    super().__init__(**kwargs)
    self._set_models(teacher, student, teacher_outputs, feature_weight,
                     feature_pairs)
    self.augmentation = augmentation
    self._set_variables(alpha, temperature)

  @staticmethod
  def _check_model(model, role):
    if not isinstance(model, keras.Model):
      raise TypeError(
          f"`{role}` must be a Keras 3 keras.Model, got "
          f"{type(model).__module__}.{type(model).__name__}")
    return model

  @staticmethod
  def _output_shape(model):
    try:
      outputs = model.outputs
    except (AttributeError, ValueError):  # subclassed models
      return None
    if not isinstance(outputs, (list, tuple)) or len(outputs) != 1:
      return None
    return tuple(outputs[0].shape[1:])

  @staticmethod
  def _main_output(model):
    return model.outputs[0]

  @staticmethod
  def labels_of(y):
    """The labels in `y`: itself, or its `"labels"` with cached outputs."""
    if isinstance(y, dict) and TEACHER_KEY in y:
      return y[LABELS_KEY]
    return y

  # -- Keras hooks ------------------------------------------------------------

  def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                   training=True, student_features=None, mixing=None):
    """The total loss of a batch, divided by the replicas in sync.

    Updates the loss trackers with this replica's means.

    Args:
      x: the inputs (the teacher runs on them unless `y` is cached).
      y: the labels, or `{"labels": y, "teacher_outputs": t}`.
      y_pred: the student's logits.
      sample_weight: `[batch]` weights or None.
      training: whether this is a training step.
      student_features: the student's features from `student_outputs`
        (with `feature_pairs`); None computes them from `x`.
      mixing: `(partner, share)` when `x` holds mixed examples (see
        `mixed_hard_loss`), or None.

    Returns:
      A scalar: the total with the student's regularization losses, over
      the number of replicas (Keras 3 sums gradients over replicas).
    """
    labels, teacher_logits, teacher_features = self.teacher_targets(x, y)
    if self.feature_pairs and student_features is None:
      y_pred, student_features = self.student_outputs(x, training=training)
    hard_loss = self.compiled_hard_loss
    if mixing is not None:
      hard_loss = mixed_hard_loss(hard_loss, *mixing)
    terms = self.loss_terms(labels, sample_weight, y_pred,
                            student_features or [], teacher_logits,
                            teacher_features, hard_loss)
    total = terms["total"] + regularization(self.student, KERAS3_OPS)
    self._track(total, terms)
    return total / _replicas()

  def compute_metrics(self, x, y, y_pred, sample_weight=None):
    return super().compute_metrics(x, self.labels_of(y), y_pred,
                                   sample_weight)

  def augmented(self, x):
    """`(views, mixing)` of a training batch: `x` and None without
    augmentation, else the drawn views and `(partner, share)` (None
    without mixup)."""
    if self.augmentation is None or not self.augmentation.active:
      return x, None
    views, partner, share = self.augmentation(x, training=True)
    return views, (None if partner is None else (partner, share))

  def train_step(self, data):
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    x, mixing = self.augmented(x)
    with tf.GradientTape() as tape:
      logits, features = self.student_outputs(x, training=True)
      loss = self.compute_loss(x, y, logits, sample_weight, training=True,
                               student_features=features, mixing=mixing)
      loss = self.optimizer.scale_loss(loss)
    variables = self.trainable_variables
    gradients = tape.gradient(loss, variables)
    # `apply_gradients` applies the variables' constraints after the
    # update: the pruning masks of a pruned student.
    self.optimizer.apply_gradients(zip(gradients, variables))
    return self.compute_metrics(x, y, logits, sample_weight)

  def test_step(self, data):
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    logits, features = self.student_outputs(x, training=False)
    self.compute_loss(x, y, logits, sample_weight, training=False,
                      student_features=features)
    return self.compute_metrics(x, y, logits, sample_weight)

  def _check_inputs(self, x, y, batch_size, training):
    super()._check_inputs(x, y, batch_size, training)
    if training and self.augmentation is not None:
      self.augmentation.check_batch(first_batch(x, y, batch_size))

  def get_config(self):
    config = super().get_config()
    config["augmentation"] = _augmentation_config(self.augmentation)
    return config
