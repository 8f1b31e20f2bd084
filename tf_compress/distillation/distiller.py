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

import numpy as np

from tf_compress._keras import check_model, is_keras3_object, keras
from tf_compress._keras import register, tf
from tf_compress.distillation.compiled_loss import check_compiled_loss
from tf_compress.distillation.compiled_loss import replica_mean_loss
from tf_compress.distillation.distill_checks import CACHE_WITH_FEATURES
from tf_compress.distillation.distill_checks import check_alpha
from tf_compress.distillation.distill_checks import check_feature_weight
from tf_compress.distillation.distill_checks import check_pairs
from tf_compress.distillation.distill_checks import check_projection_shapes
from tf_compress.distillation.distill_checks import check_shapes
from tf_compress.distillation.distill_checks import check_teacher_outputs_kind
from tf_compress.distillation.distill_checks import check_temperature
from tf_compress.distillation.distill_checks import PROB_FLOOR
from tf_compress.distillation.distill_checks import TEACHER_OUTPUTS
from tf_compress.distillation.distill_checks import Untracked
from tf_compress.distillation.keras3_distiller import Keras3Distiller
from tf_compress.distillation.teacher_cache import check_teacher_outputs
from tf_compress.distillation.teacher_cache import first_batch
from tf_compress.distillation.teacher_cache import LABELS_KEY
from tf_compress.distillation.teacher_cache import TEACHER_KEY
from tf_compress.errors import UserInputError

__all__ = ["Distiller", "soft_target_loss", "TEACHER_OUTPUTS",
           "check_alpha", "check_temperature", "check_compiled_loss",
           "replica_mean_loss"]

def _weighted_mean(per_example, sample_weight):
  """Keras' SUM_OVER_BATCH_SIZE: sum(loss * weight) / batch size."""
  if sample_weight is not None:
    weight = tf.cast(tf.reshape(sample_weight, [-1]), per_example.dtype)
    per_example = per_example * weight
  return tf.reduce_mean(per_example)


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
  t = tf.cast(temperature, tf.float32)
  log_p_teacher = tf.nn.log_softmax(tf.cast(teacher_logits, tf.float32) / t)
  log_p_student = tf.nn.log_softmax(tf.cast(student_logits, tf.float32) / t)
  kl = tf.reduce_sum(
      tf.exp(log_p_teacher) * (log_p_teacher - log_p_student), axis=-1)
  return _weighted_mean(kl, sample_weight) * t * t


def _output_shape(model):
  try:
    shape = model.output_shape
  except (AttributeError, RuntimeError):
    return None
  return tuple(shape[1:]) if isinstance(shape, tuple) else None


def _find_layer(model, name, role):
  """The layer `name` of `model`; a wrapper matches the layer it wraps."""
  for layer in model.layers:
    inner = getattr(layer, "layer", None)  # pruning/QAT wrappers
    if layer.name == name or (isinstance(inner, keras.layers.Layer) and
                              inner.name == name):
      return layer
  raise UserInputError(
      f"feature_pairs: the {role} {model.name!r} has no layer named "
      f"{name!r}; its layers are {[l.name for l in model.layers]}")


def _graph_model(model, role):
  if not (isinstance(model, keras.Sequential) or
          getattr(model, "_is_graph_network", False)) or not model.inputs:
    raise UserInputError(
        f"feature_pairs needs a built Sequential or Functional {role}, got "
        f"{type(model).__name__} {model.name!r}; build it with the "
        "Functional API or leave feature_pairs out")


def _projection(index, student_shape, teacher_shape):
  """A 1x1 projection from the student's channels to the teacher's, or None."""
  if not check_projection_shapes(index, student_shape, teacher_shape):
    return None
  channels = teacher_shape[-1]
  if len(student_shape) == 3:
    layer = keras.layers.Conv2D(channels, 1, name=f"projection_{index}")
  else:
    layer = keras.layers.Dense(channels, name=f"projection_{index}")
  layer.build((None,) + tuple(student_shape))
  return layer


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
class Distiller(keras.Model, metaclass=_DistillerType):
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
    check_model(teacher, "teacher")
    check_model(student, "student")
    if teacher is student:
      raise UserInputError("teacher and student must be different models")
    check_teacher_outputs_kind(teacher_outputs)
    feature_weight = check_feature_weight(feature_weight)
    alpha = check_alpha(alpha)
    temperature = check_temperature(temperature)
    teacher_shape, student_shape = _output_shape(teacher), _output_shape(
        student)
    if None not in (teacher_shape, student_shape):
      check_shapes(teacher_shape, student_shape)
    self.teacher = teacher
    self.student = student
    self.teacher.trainable = False
    self.teacher_outputs = teacher_outputs
    self.feature_weight = float(feature_weight)
    self.alpha = self.add_weight(
        name="alpha", shape=(), trainable=False,
        initializer=keras.initializers.Constant(alpha))
    self.temperature = self.add_weight(
        name="temperature", shape=(), trainable=False,
        initializer=keras.initializers.Constant(temperature))
    self.feature_pairs = check_pairs(feature_pairs)
    self.projections = []
    self._features = None
    if self.feature_pairs:
      self._build_features()
    self.loss_tracker = keras.metrics.Mean(name="loss")
    self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
    self.distillation_loss_tracker = keras.metrics.Mean(
        name="distillation_loss")
    self.feature_loss_tracker = keras.metrics.Mean(name="feature_loss")
    # Training calls the student, never `self`: built when it is.
    self.built = student.built

  def _build_features(self):
    """Multi-output views of both models sharing their layers (one call)."""
    _graph_model(self.teacher, "teacher")
    _graph_model(self.student, "student")
    teacher_out, student_out = [], []
    for index, (t_name, s_name) in enumerate(self.feature_pairs):
      t_layer = _find_layer(self.teacher, t_name, "teacher")
      s_layer = _find_layer(self.student, s_name, "student")
      t_out, s_out = t_layer.output, s_layer.output
      self.projections.append(_projection(
          index, tuple(s_out.shape[1:]), tuple(t_out.shape[1:])))
      teacher_out.append(t_out)
      student_out.append(s_out)
    # Untracked: they share every layer with the models already tracked.
    self._features = Untracked((
        keras.Model(self.teacher.inputs, [self.teacher.output] + teacher_out),
        keras.Model(self.student.inputs, [self.student.output] + student_out)))

  # -- the pieces, also used by AdversarialModel -----------------------------

  def call(self, inputs, training=None):
    return self.student(inputs, training=training)

  def teacher_logits(self, outputs):
    """Teacher outputs as logits (log-probabilities for a softmax teacher)."""
    outputs = tf.cast(outputs, tf.float32)
    if self.teacher_outputs == "probabilities":
      return tf.math.log(tf.maximum(outputs, PROB_FLOOR))
    return outputs

  def teacher_targets(self, x, y):
    """`(labels, teacher_logits, teacher_features)` for a batch.

    Uses cached teacher outputs when `y` carries them, else runs the teacher
    on `x` in inference mode.
    """
    if isinstance(y, dict) and TEACHER_KEY in y:
      if self.feature_pairs:
        raise UserInputError(CACHE_WITH_FEATURES)
      return (y[LABELS_KEY], tf.stop_gradient(self.teacher_logits(
          y[TEACHER_KEY])), [])
    if self._features is not None:
      outputs = self._features.value[0](x, training=False)
      return y, tf.stop_gradient(self.teacher_logits(outputs[0])), [
          tf.stop_gradient(o) for o in outputs[1:]]
    return y, tf.stop_gradient(self.teacher_logits(
        self.teacher(x, training=False))), []

  def student_outputs(self, x, training):
    """`(student_logits, student_features)`, with one call of the student."""
    if self._features is None:
      return self.student(x, training=training), []
    outputs = self._features.value[1](x, training=training)
    return outputs[0], list(outputs[1:])

  def loss_terms(self, labels, sample_weight, student_logits,
                 student_features, teacher_logits, teacher_features,
                 hard_loss):
    """This replica's mean losses (without regularization), as a dict.

    Args:
      labels: the targets of `hard_loss`.
      sample_weight: `[batch]` weights or None.
      student_logits: the student's outputs on the batch.
      student_features: from `student_outputs`.
      teacher_logits: from `teacher_targets`.
      teacher_features: from `teacher_targets`.
      hard_loss: `fn(labels, logits, sample_weight)` -> replica mean.

    Returns:
      A dict with `total`, `student_loss`, `distillation_loss` and
      `feature_loss` (0 without feature pairs) scalars.
    """
    hard = tf.cast(hard_loss(labels, student_logits, sample_weight),
                   tf.float32)
    soft = soft_target_loss(teacher_logits, student_logits, self.temperature,
                            sample_weight)
    total = self.alpha * hard + (1.0 - self.alpha) * soft
    feature = tf.constant(0.0)
    if self.feature_pairs:
      errors = []
      for proj, s_feat, t_feat in zip(self.projections, student_features,
                                      teacher_features):
        s_feat = proj(s_feat) if proj is not None else s_feat
        diff = tf.cast(t_feat, tf.float32) - tf.cast(s_feat, tf.float32)
        per_example = tf.reduce_mean(
            tf.reshape(tf.square(diff), [tf.shape(diff)[0], -1]), axis=-1)
        errors.append(_weighted_mean(per_example, sample_weight))
      feature = tf.add_n(errors) / len(errors)
      total += self.feature_weight * feature
    return {"total": total, "student_loss": hard, "distillation_loss": soft,
            "feature_loss": feature}

  def compiled_hard_loss(self, labels, logits, sample_weight):
    """The compiled loss as this replica's mean (see `replica_mean_loss`)."""
    return replica_mean_loss(self, labels, logits, sample_weight)

  # -- Keras hooks ------------------------------------------------------------

  @property
  def metrics(self):
    trackers = [self.loss_tracker, self.student_loss_tracker,
                self.distillation_loss_tracker]
    if self.feature_pairs:
      trackers.append(self.feature_loss_tracker)
    if self.compiled_metrics is not None:
      trackers += self.compiled_metrics.metrics
    return trackers

  def _step(self, data, training):
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    labels, teacher_logits, teacher_features = self.teacher_targets(x, y)
    with tf.GradientTape() if training else contextlib.nullcontext() as tape:
      logits, features = self.student_outputs(x, training=training)
      terms = self.loss_terms(labels, sample_weight, logits, features,
                              teacher_logits, teacher_features,
                              self.compiled_hard_loss)
      total = terms["total"] + _regularization(self.student)
      # Gradients are summed over replicas: scale each replica's mean.
      scaled = total / tf.distribute.get_strategy().num_replicas_in_sync
    if training:
      self.optimizer.minimize(scaled, self.trainable_variables, tape=tape)
    self.loss_tracker.update_state(total)
    self.student_loss_tracker.update_state(terms["student_loss"])
    self.distillation_loss_tracker.update_state(terms["distillation_loss"])
    if self.feature_pairs:
      self.feature_loss_tracker.update_state(terms["feature_loss"])
    return self.compute_metrics(x, labels, logits, sample_weight)

  def train_step(self, data):
    return self._step(data, training=True)

  def test_step(self, data):
    return self._step(data, training=False)

  def check_data(self, x, y=None, batch_size=None):
    """Checks `teacher_outputs` and the output shapes on the first batch.

    `fit` and `evaluate` call this; call it yourself for generators.

    Raises:
      UserInputError: the teacher's outputs do not match `teacher_outputs`,
        or its output shape differs from the student's.
    """
    batch = first_batch(x, y, batch_size)
    if batch is None:
      return
    x, y = batch
    if isinstance(y, dict) and TEACHER_KEY in y and self.feature_pairs:
      raise UserInputError(CACHE_WITH_FEATURES)
    # `predict` rather than a call: it runs in the replica context that
    # tfmot's wrappers need under a distribution strategy.
    if isinstance(y, dict) and TEACHER_KEY in y:
      outputs = np.asarray(y[TEACHER_KEY])
    else:
      outputs = np.asarray(self.teacher.predict(x, verbose=0))
    student_shape = _output_shape(self.student)
    if student_shape is None:
      student_shape = self.student.predict(x[:1], verbose=0).shape[1:]
    check_shapes(outputs.shape[1:], student_shape)
    check_teacher_outputs(outputs, self.teacher_outputs)

  # Checks run here, in Python: an error raised while Keras traces the
  # train step would reach the caller wrapped in a TensorFlow StagingError.

  def fit(self, x=None, y=None, batch_size=None, **kwargs):
    # pylint: disable=arguments-differ
    check_compiled_loss(self)
    self.check_data(x, y, batch_size)
    return super().fit(x, y, batch_size=batch_size, **kwargs)

  def evaluate(self, x=None, y=None, batch_size=None, **kwargs):
    # pylint: disable=arguments-differ
    check_compiled_loss(self)
    self.check_data(x, y, batch_size)
    return super().evaluate(x, y, batch_size=batch_size, **kwargs)

  def get_config(self):
    return {
        "name": self.name,
        "teacher": keras.utils.serialize_keras_object(self.teacher),
        "student": keras.utils.serialize_keras_object(self.student),
        "alpha": float(keras.backend.get_value(self.alpha)),
        "temperature": float(keras.backend.get_value(self.temperature)),
        "teacher_outputs": self.teacher_outputs,
        "feature_pairs": [list(p) for p in self.feature_pairs] or None,
        "feature_weight": self.feature_weight,
    }

  @classmethod
  def from_config(cls, config, custom_objects=None):
    config = dict(config)
    for key in ("teacher", "student"):
      config[key] = keras.utils.deserialize_keras_object(
          config[key], custom_objects=custom_objects)
    return cls(**config)


def _regularization(model):
  losses = [tf.cast(l, tf.float32) for l in model.losses]
  return tf.add_n(losses) if losses else tf.constant(0.0)
