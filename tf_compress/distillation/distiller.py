"""`Distiller`: knowledge distillation as a Keras model wrapping two models.

The student learns from the labels (the loss given to `compile`) and from
the teacher's softened outputs (Hinton et al., 2015):

    total = alpha * hard + (1 - alpha) * T^2 * KL(softmax(t / T) ||
                                                  softmax(s / T))
            [+ feature_weight * mean over pairs of MSE(t_feat, proj(s_feat))]

The teacher is frozen and always runs in inference mode. The student may
carry pruning (or QAT) wrappers: it is a sub-model of the `Distiller`, so
`PruningCallback` finds its wrappers and pruning happens in the same `fit`.
What gets saved or exported is `distiller.student`, a plain Keras model.

This module is the tf_keras engine; `Distiller(...)` with Keras 3 models
returns the Keras 3 engine's `Keras3Distiller` (`keras3_distiller`).
"""

import contextlib

from tf_compress._keras import check_model, is_keras3_object, keras
from tf_compress._keras import register, tf
from tf_compress.distillation.compiled_loss import check_compiled_loss
from tf_compress.distillation.compiled_loss import replica_mean_loss
from tf_compress.distillation.distill_checks import check_alpha
from tf_compress.distillation.distill_checks import check_pairs
from tf_compress.distillation.distill_checks import check_temperature
from tf_compress.distillation.distill_checks import TEACHER_OUTPUTS
from tf_compress.distillation.distiller_core import DistillerCore
from tf_compress.distillation.distiller_core import soft_target
from tf_compress.distillation.engine_ops import regularization
from tf_compress.distillation.engine_ops import TF_OPS
from tf_compress.distillation.keras3_distiller import Keras3Distiller
from tf_compress.errors import UserInputError

__all__ = ["Distiller", "soft_target_loss", "TEACHER_OUTPUTS",
           "check_alpha", "check_temperature", "check_compiled_loss",
           "replica_mean_loss"]


def soft_target_loss(teacher_logits, student_logits, temperature,
                     sample_weight=None):
  """KL(softmax(teacher / T) || softmax(student / T)) * T^2, batch mean.

  The T^2 factor keeps the gradients' scale independent of T.

  Args:
    teacher_logits: `[batch, classes]` teacher logits (or log-probabilities).
    student_logits: `[batch, classes]` student logits.
    temperature: the softmax temperature T (> 0), a float or a tensor.
    sample_weight: optional `[batch]` weights.

  Returns:
    A scalar float32 tensor.
  """
  return soft_target(teacher_logits, student_logits, temperature,
                     sample_weight, TF_OPS)


def _check_one_keras(teacher, student):
  """Raises `TypeError` when one model is Keras 3 and the other is not."""
  kinds = {"teacher": is_keras3_object(teacher),
           "student": is_keras3_object(student)}
  if len(set(kinds.values())) == 1:
    return
  keras3_role = "teacher" if kinds["teacher"] else "student"
  other = "student" if keras3_role == "teacher" else "teacher"
  models = {"teacher": teacher, "student": student}
  raise TypeError(
      f"`{keras3_role}` is a Keras 3 model "
      f"({type(models[keras3_role]).__name__}) but `{other}` is not "
      f"({type(models[other]).__module__}.{type(models[other]).__name__}): "
      "the Distiller trains both in one Keras. Build both with `import "
      "keras` (Keras 3), or both with tf_keras; weights can be copied "
      "across with `set_weights(other.get_weights())`.")


class _DistillerType(type):
  """`Distiller(...)` builds the engine of the student's Keras.

  A Keras 3 student gets a `Keras3Distiller` (a Keras 3 model), a tf_keras
  student this tf_keras `Distiller`; `isinstance(obj, Distiller)` and
  `issubclass(cls, Distiller)` hold for both, so callers test one class.
  """

  def __call__(cls, *args, **kwargs):
    if cls is Distiller:
      teacher = kwargs.get("teacher", args[0] if args else None)
      student = kwargs.get("student", args[1] if len(args) > 1 else None)
      _check_one_keras(teacher, student)
      if is_keras3_object(student):
        return Keras3Distiller(*args, **kwargs)
    return super().__call__(*args, **kwargs)

  def __instancecheck__(cls, obj):
    return super().__instancecheck__(obj) or (
        cls is Distiller and isinstance(obj, Keras3Distiller))

  def __subclasscheck__(cls, subclass):
    return super().__subclasscheck__(subclass) or (
        cls is Distiller and isinstance(subclass, type) and
        issubclass(subclass, Keras3Distiller))


@register
class Distiller(DistillerCore, keras.Model, metaclass=_DistillerType):
  """Trains a student on labels and on a frozen teacher's soft targets.

  One class for both Keras engines: with a Keras 3 student (and teacher)
  `Distiller(...)` returns a `Keras3Distiller`, a Keras 3 model with the
  same arguments, losses, logs and methods (TensorFlow backend); with
  tf_keras models, this tf_keras model. `isinstance(d, Distiller)` holds
  for both.

  `compile(optimizer, loss, metrics)` as usual: `loss` is the hard loss on
  labels (for the built-in models
  `SparseCategoricalCrossentropy(from_logits=True)`), the metrics are
  computed on the student's outputs. `fit` reports `loss` (the total),
  `student_loss` (the hard loss), `distillation_loss` (the soft loss,
  before weighting), `feature_loss` with `feature_pairs`, and the metrics;
  `evaluate`, `predict` and `call` use the student.

  The teacher is frozen in place (`teacher.trainable = False`), always runs
  with `training=False`, and its weights never change. `temperature` and
  `alpha` are non-trainable variables, so `DistillationScheduler` can anneal
  them while the compiled train step runs.

  Data may also carry cached teacher outputs, `(x, {"labels": y,
  "teacher_outputs": t})` (see `cache_teacher_logits`), in which case the
  teacher does not run in training.

  Saving: the Distiller saves and loads in the `.keras` format (its config
  holds both sub-models), but that is for resuming; the deployment path is
  `distiller.student` (strip pruning wrappers from it before exporting).

  Args:
    teacher: a tf_keras (or Keras 3) model; outputs logits or
      probabilities, of the same shape as the student's.
    student: a tf_keras (or Keras 3) model outputting logits, of the same
      Keras as the teacher; may be pruned or quantization-aware.
    alpha: weight of the hard loss in [0, 1]; the soft loss gets 1 - alpha.
    temperature: softmax temperature T > 0.
    teacher_outputs: `"logits"`, or `"probabilities"` for a teacher ending in
      a softmax (its log is used as logits, exact up to a constant per row,
      which the softmax ignores). Checked on the first batch of `fit` and
      `evaluate`.
    feature_pairs: optional `[(teacher_layer, student_layer)]` names (a
      wrapped student layer is named as the layer it wraps). Each pair adds
      the MSE between the teacher's feature and the student's, through a
      learned 1x1 projection (Conv2D for images, else Dense) when the
      channel counts differ. Both models must be Functional or Sequential.
    feature_weight: weight of the feature loss (>= 0).
    augmentation: a `ConsistentAugmentation` whose views of each training
      batch both models see (Keras 3 engine only; must be None with
      tf_keras models).
    **kwargs: `keras.Model` arguments such as `name`.

  Raises:
    TypeError: teacher or student is not a Keras model, or one is Keras 3
      and the other tf_keras.
    UserInputError: bad alpha, temperature, teacher_outputs, feature_pairs
      or feature_weight, output shapes that differ, or an augmentation
      with tf_keras models.

  Example:
    >>> distiller = Distiller(teacher, student, alpha=0.1, temperature=4.0)
    >>> distiller.compile("adam", keras.losses.SparseCategoricalCrossentropy(
    ...     from_logits=True), metrics=["accuracy"])
    >>> distiller.fit(splits.train(), epochs=5)
    >>> distiller.student.save("student.keras")
  """

  _KERAS = keras
  _OPS = TF_OPS
  _WRAPPER_OF = keras.layers.Layer  # tfmot's pruning/QAT wrappers
  _check_model = staticmethod(check_model)

  def __init__(self, teacher, student, alpha=0.1, temperature=3.0,
               teacher_outputs="logits", feature_pairs=None,
               feature_weight=1.0, augmentation=None, **kwargs):
    if augmentation is not None:
      raise UserInputError(
          "augmentation is implemented by the Keras 3 Distiller only, got "
          f"{type(augmentation).__name__} with tf_keras models; build the "
          "teacher and student with `import keras` (Keras 3), or augment "
          "the dataset and pass augmentation=None")
    super().__init__(**kwargs)
    alpha, temperature, feature_weight = self._check_arguments(
        teacher, student, alpha, temperature, teacher_outputs,
        feature_weight)
    self._check_output_shapes(teacher, student)
    self._set_models(teacher, student, teacher_outputs, feature_weight,
                     check_pairs(feature_pairs))
    self._set_variables(alpha, temperature)

  @staticmethod
  def _output_shape(model):
    try:
      shape = model.output_shape
    except (AttributeError, RuntimeError):
      return None
    return tuple(shape[1:]) if isinstance(shape, tuple) else None

  @staticmethod
  def _main_output(model):
    return model.output

  # -- Keras hooks ------------------------------------------------------------

  def _step(self, data, training):
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    labels, teacher_logits, teacher_features = self.teacher_targets(x, y)
    with tf.GradientTape() if training else contextlib.nullcontext() as tape:
      logits, features = self.student_outputs(x, training=training)
      terms = self.loss_terms(labels, sample_weight, logits, features,
                              teacher_logits, teacher_features,
                              self.compiled_hard_loss)
      total = terms["total"] + regularization(self.student, TF_OPS)
      # Gradients are summed over replicas: scale each replica's mean.
      scaled = total / tf.distribute.get_strategy().num_replicas_in_sync
    if training:
      self.optimizer.minimize(scaled, self.trainable_variables, tape=tape)
    self._track(total, terms)
    return self.compute_metrics(x, labels, logits, sample_weight)

  def train_step(self, data):
    return self._step(data, training=True)

  def test_step(self, data):
    return self._step(data, training=False)
