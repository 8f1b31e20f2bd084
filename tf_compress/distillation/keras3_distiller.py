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
from keras import ops
import numpy as np
import tensorflow as tf

from tf_compress.distillation import distill_checks as checks
from tf_compress.distillation.compiled_loss import check_compiled_loss
from tf_compress.distillation.compiled_loss import replica_mean_loss
from tf_compress.distillation.consistent_views import mixed_hard_loss
from tf_compress.distillation.consistent_views import own_augmentation
from tf_compress.distillation.teacher_cache import check_teacher_outputs
from tf_compress.distillation.teacher_cache import first_batch
from tf_compress.distillation.teacher_cache import LABELS_KEY
from tf_compress.distillation.teacher_cache import TEACHER_KEY
from tf_compress.errors import ModelError, UserInputError
from tf_compress.models.graph import is_graph_model

__all__ = ["Keras3Distiller", "keras3_soft_target_loss"]


def _weighted_mean(per_example, sample_weight):
  """Keras' `sum_over_batch_size`: sum(loss * weight) / batch size."""
  if sample_weight is not None:
    weight = ops.cast(ops.reshape(sample_weight, (-1,)), per_example.dtype)
    per_example = per_example * weight
  return ops.mean(per_example)


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
  t = ops.cast(temperature, "float32")
  log_p_teacher = ops.log_softmax(ops.cast(teacher_logits, "float32") / t,
                                  axis=-1)
  log_p_student = ops.log_softmax(ops.cast(student_logits, "float32") / t,
                                  axis=-1)
  kl = ops.sum(ops.exp(log_p_teacher) * (log_p_teacher - log_p_student),
               axis=-1)
  return _weighted_mean(kl, sample_weight) * t * t


def _check_model(model, role):
  if not isinstance(model, keras.Model):
    raise TypeError(
        f"`{role}` must be a Keras 3 keras.Model, got "
        f"{type(model).__module__}.{type(model).__name__}")
  return model


def _output_shape(model):
  try:
    outputs = model.outputs
  except (AttributeError, ValueError):  # subclassed models
    return None
  if not isinstance(outputs, (list, tuple)) or len(outputs) != 1:
    return None
  return tuple(outputs[0].shape[1:])


def _find_layer(model, name, role):
  # The Keras 3 engine instruments layers in place: names are unchanged.
  for layer in model.layers:
    if layer.name == name:
      return layer
  raise UserInputError(
      f"feature_pairs: the {role} {model.name!r} has no layer named "
      f"{name!r}; its layers are {[l.name for l in model.layers]}")


def _graph_model(model, role):
  if not is_graph_model(model) or not model.inputs:
    raise UserInputError(
        f"feature_pairs needs a built Sequential or Functional {role}, got "
        f"{type(model).__name__} {model.name!r}; build it with the "
        "Functional API or leave feature_pairs out")


def _projection(index, student_shape, teacher_shape):
  """A 1x1 projection from the student's channels to the teacher's, or None."""
  if not checks.check_projection_shapes(index, student_shape, teacher_shape):
    return None
  channels = teacher_shape[-1]
  if len(student_shape) == 3:
    layer = keras.layers.Conv2D(channels, 1, name=f"projection_{index}")
  else:
    layer = keras.layers.Dense(channels, name=f"projection_{index}")
  layer.build((None,) + tuple(student_shape))
  return layer


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
class Keras3Distiller(keras.Model):
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

  def __init__(self, teacher, student, alpha=0.1, temperature=3.0,
               teacher_outputs="logits", feature_pairs=None,
               feature_weight=1.0, augmentation=None, **kwargs):
    if keras.backend.backend() != "tensorflow":
      raise ModelError(
          f"the Keras 3 Distiller trains with the TensorFlow backend, but "
          f"Keras runs {keras.backend.backend()!r}; set KERAS_BACKEND="
          "tensorflow before importing keras")
    _check_model(teacher, "teacher")
    _check_model(student, "student")
    if teacher is student:
      raise UserInputError("teacher and student must be different models")
    checks.check_teacher_outputs_kind(teacher_outputs)
    feature_weight = checks.check_feature_weight(feature_weight)
    alpha = checks.check_alpha(alpha)
    temperature = checks.check_temperature(temperature)
    feature_pairs = checks.check_pairs(feature_pairs)
    augmentation = own_augmentation(augmentation)
    teacher_shape, student_shape = (_output_shape(teacher),
                                    _output_shape(student))
    if None not in (teacher_shape, student_shape):
      checks.check_shapes(teacher_shape, student_shape)
    super().__init__(**kwargs)
    self.teacher = teacher
    self.student = student
    self.teacher.trainable = False
    self.teacher_outputs = teacher_outputs
    self.feature_weight = feature_weight
    self.feature_pairs = feature_pairs
    self.augmentation = augmentation
    self.alpha = self.add_weight(
        name="alpha", shape=(), trainable=False, dtype="float32",
        initializer=keras.initializers.Constant(alpha))
    self.temperature = self.add_weight(
        name="temperature", shape=(), trainable=False, dtype="float32",
        initializer=keras.initializers.Constant(temperature))
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
      t_out = _find_layer(self.teacher, t_name, "teacher").output
      s_out = _find_layer(self.student, s_name, "student").output
      self.projections.append(_projection(
          index, tuple(s_out.shape[1:]), tuple(t_out.shape[1:])))
      teacher_out.append(t_out)
      student_out.append(s_out)
    # Untracked: they share every layer with the models already tracked.
    self._features = checks.Untracked((
        keras.Model(self.teacher.inputs,
                    [self.teacher.outputs[0]] + teacher_out),
        keras.Model(self.student.inputs,
                    [self.student.outputs[0]] + student_out)))

  # -- the pieces, also used by AdversarialModel -----------------------------

  def call(self, inputs, training=None):
    return self.student(inputs, training=training)

  def teacher_logits(self, outputs):
    """Teacher outputs as logits (log-probabilities for a softmax teacher)."""
    outputs = ops.cast(outputs, "float32")
    if self.teacher_outputs == "probabilities":
      return ops.log(ops.maximum(outputs, checks.PROB_FLOOR))
    return outputs

  @staticmethod
  def labels_of(y):
    """The labels in `y`: itself, or its `"labels"` with cached outputs."""
    if isinstance(y, dict) and TEACHER_KEY in y:
      return y[LABELS_KEY]
    return y

  def teacher_targets(self, x, y):
    """`(labels, teacher_logits, teacher_features)` for a batch.

    Uses cached teacher outputs when `y` carries them, else runs the teacher
    on `x` in inference mode.
    """
    if isinstance(y, dict) and TEACHER_KEY in y:
      if self.feature_pairs:
        raise UserInputError(checks.CACHE_WITH_FEATURES)
      return (y[LABELS_KEY],
              ops.stop_gradient(self.teacher_logits(y[TEACHER_KEY])), [])
    if self._features is not None:
      outputs = self._features.value[0](x, training=False)
      return y, ops.stop_gradient(self.teacher_logits(outputs[0])), [
          ops.stop_gradient(o) for o in outputs[1:]]
    return y, ops.stop_gradient(self.teacher_logits(
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
    hard = ops.cast(hard_loss(labels, student_logits, sample_weight),
                    "float32")
    soft = keras3_soft_target_loss(teacher_logits, student_logits,
                                   self.temperature, sample_weight)
    alpha = ops.cast(self.alpha, "float32")
    total = alpha * hard + (1.0 - alpha) * soft
    feature = ops.zeros((), "float32")
    if self.feature_pairs:
      errors = []
      for proj, s_feat, t_feat in zip(self.projections, student_features,
                                      teacher_features):
        s_feat = proj(s_feat) if proj is not None else s_feat
        diff = ops.cast(t_feat, "float32") - ops.cast(s_feat, "float32")
        per_example = ops.mean(
            ops.reshape(ops.square(diff), (ops.shape(diff)[0], -1)), axis=-1)
        errors.append(_weighted_mean(per_example, sample_weight))
      feature = ops.sum(ops.stack(errors)) / len(errors)
      total = total + self.feature_weight * feature
    return {"total": total, "student_loss": hard, "distillation_loss": soft,
            "feature_loss": feature}

  def compiled_hard_loss(self, labels, logits, sample_weight):
    """The compiled loss as this replica's mean (see `replica_mean_loss`)."""
    return replica_mean_loss(self, labels, logits, sample_weight)

  def _regularization(self):
    losses = [ops.cast(l, "float32") for l in self.student.losses]
    return ops.sum(ops.stack(losses)) if losses else ops.zeros((), "float32")

  # -- Keras hooks ------------------------------------------------------------

  @property
  def metrics(self):
    trackers = [self.loss_tracker, self.student_loss_tracker,
                self.distillation_loss_tracker]
    if self.feature_pairs:
      trackers.append(self.feature_loss_tracker)
    compiled = getattr(self, "_compile_metrics", None)
    if compiled is not None:
      trackers.append(compiled)
    return trackers

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
    total = terms["total"] + self._regularization()
    self.loss_tracker.update_state(total)
    self.student_loss_tracker.update_state(terms["student_loss"])
    self.distillation_loss_tracker.update_state(terms["distillation_loss"])
    if self.feature_pairs:
      self.feature_loss_tracker.update_state(terms["feature_loss"])
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
    cached = isinstance(y, dict) and TEACHER_KEY in y
    if cached and self.feature_pairs:
      raise UserInputError(checks.CACHE_WITH_FEATURES)

    if cached:
      outputs = np.asarray(y[TEACHER_KEY])
    else:
      outputs = np.asarray(self.teacher.predict(x, verbose=0))
    student_shape = _output_shape(self.student)
    if student_shape is None:
      student_shape = self.student.predict(x[:1], verbose=0).shape[1:]
    checks.check_shapes(outputs.shape[1:], student_shape)
    check_teacher_outputs(outputs, self.teacher_outputs)

  # Checks run here, in Python: an error raised while Keras traces the
  # train step would reach the caller wrapped in a TensorFlow error.

  def fit(self, x=None, y=None, batch_size=None, **kwargs):
    # pylint: disable=arguments-differ
    check_compiled_loss(self)
    self.check_data(x, y, batch_size)
    if self.augmentation is not None:
      self.augmentation.check_batch(first_batch(x, y, batch_size))
    return super().fit(x, y, batch_size=batch_size, **kwargs)

  def evaluate(self, x=None, y=None, batch_size=None, **kwargs):
    # pylint: disable=arguments-differ
    check_compiled_loss(self)
    self.check_data(x, y, batch_size)
    return super().evaluate(x, y, batch_size=batch_size, **kwargs)

  def get_config(self):
    return {
        "name": self.name,
        "teacher": keras.saving.serialize_keras_object(self.teacher),
        "student": keras.saving.serialize_keras_object(self.student),
        "alpha": float(ops.convert_to_numpy(self.alpha)),
        "temperature": float(ops.convert_to_numpy(self.temperature)),
        "teacher_outputs": self.teacher_outputs,
        "feature_pairs": [list(p) for p in self.feature_pairs] or None,
        "feature_weight": self.feature_weight,
        "augmentation": _augmentation_config(self.augmentation),
    }

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    for key in ("teacher", "student"):
      config[key] = keras.saving.deserialize_keras_object(config[key])
    return cls(**config)
