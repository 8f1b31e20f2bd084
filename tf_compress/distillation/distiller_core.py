"""What both engines' `Distiller` share: set-up, targets, losses, checks.

The tf_keras `Distiller` and the Keras 3 `Keras3Distiller` differ in their
base `Model` class, their Keras, their tensor ops (TensorFlow's or
`keras.ops`, see `engine_ops`), how they read a model's output, and their
train and test steps. The arguments' checks, the feature views, the teacher
targets, the loss terms, the trackers, the first-batch checks and the config
are written once here, against the engine's Keras (`_KERAS`) and ops
(`_OPS`).
"""

import numpy as np

from tf_compress.distillation import distill_checks as checks
from tf_compress.distillation.compiled_loss import CheckedFit
from tf_compress.distillation.compiled_loss import compiled_metrics
from tf_compress.distillation.compiled_loss import replica_mean_loss
from tf_compress.distillation.teacher_cache import check_teacher_outputs
from tf_compress.distillation.teacher_cache import first_batch
from tf_compress.distillation.teacher_cache import LABELS_KEY
from tf_compress.distillation.teacher_cache import TEACHER_KEY
from tf_compress.errors import UserInputError
from tf_compress.models.graph import is_graph_model

__all__ = ["DistillerCore", "soft_target", "weighted_mean"]


def weighted_mean(per_example, sample_weight, ops):
  """Keras' SUM_OVER_BATCH_SIZE: sum(loss * weight) / batch size."""
  if sample_weight is not None:
    weight = ops.cast(ops.reshape(sample_weight, (-1,)), per_example.dtype)
    per_example = per_example * weight
  return ops.mean(per_example)


def soft_target(teacher_logits, student_logits, temperature, sample_weight,
                ops):
  """KL(softmax(teacher / T) || softmax(student / T)) * T^2 in `ops`."""
  t = ops.cast(temperature, "float32")
  log_p_teacher = ops.log_softmax(ops.cast(teacher_logits, "float32") / t,
                                  axis=-1)
  log_p_student = ops.log_softmax(ops.cast(student_logits, "float32") / t,
                                  axis=-1)
  kl = ops.sum(ops.exp(log_p_teacher) * (log_p_teacher - log_p_student),
               axis=-1)
  return weighted_mean(kl, sample_weight, ops) * t * t


def _find_layer(model, name, role, wrapper_of):
  """The layer `name` of `model`; a wrapper of a `wrapper_of` layer matches
  the layer it wraps (tfmot's pruning/QAT wrappers)."""
  for layer in model.layers:
    inner = getattr(layer, "layer", None)
    if layer.name == name or (wrapper_of is not None and
                              isinstance(inner, wrapper_of) and
                              inner.name == name):
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


def _projection(keras, index, student_shape, teacher_shape):
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


class DistillerCore(CheckedFit):
  """Mixin of a `Distiller` engine (list it before the engine's Model).

  An engine sets the class attributes `_KERAS` (its Keras module), `_OPS`
  (`engine_ops.TF_OPS` or `KERAS3_OPS`), `_WEIGHT_DTYPE` (of `alpha` and
  `temperature`; None for the Keras default) and `_WRAPPER_OF` (the layer
  class a wrapper named by its inner layer wraps, or None), defines
  `_check_model(model, role)`, `_output_shape(model)` (per-sample, or None
  when unknown) and `_main_output(model)` (the output tensor of a graph
  model), and calls `_check_arguments`, `_check_output_shapes`,
  `_set_models` and `_set_variables` from its `__init__`.
  """

  _WEIGHT_DTYPE = None
  _WRAPPER_OF = None

  # -- set-up ----------------------------------------------------------------

  def _check_arguments(self, teacher, student, alpha, temperature,
                       teacher_outputs, feature_weight):
    """Checks the models and numbers; returns alpha, T, weight as floats."""
    self._check_model(teacher, "teacher")
    self._check_model(student, "student")
    if teacher is student:
      raise UserInputError("teacher and student must be different models")
    checks.check_teacher_outputs_kind(teacher_outputs)
    feature_weight = checks.check_feature_weight(feature_weight)
    return (checks.check_alpha(alpha), checks.check_temperature(temperature),
            feature_weight)

  def _check_output_shapes(self, teacher, student):
    teacher_shape, student_shape = (self._output_shape(teacher),
                                    self._output_shape(student))
    if None not in (teacher_shape, student_shape):
      checks.check_shapes(teacher_shape, student_shape)

  def _set_models(self, teacher, student, teacher_outputs, feature_weight,
                  feature_pairs):
    self.teacher = teacher
    self.student = student
    self.teacher.trainable = False
    self.teacher_outputs = teacher_outputs
    self.feature_weight = feature_weight
    self.feature_pairs = feature_pairs

  def _set_variables(self, alpha, temperature):
    """`alpha`, `temperature`, the feature views and the loss trackers."""
    keras = self._KERAS
    self.alpha = self.add_weight(
        name="alpha", shape=(), trainable=False, dtype=self._WEIGHT_DTYPE,
        initializer=keras.initializers.Constant(alpha))
    self.temperature = self.add_weight(
        name="temperature", shape=(), trainable=False,
        dtype=self._WEIGHT_DTYPE,
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
    self.built = self.student.built

  def _build_features(self):
    """Multi-output views of both models sharing their layers (one call)."""
    _graph_model(self.teacher, "teacher")
    _graph_model(self.student, "student")
    teacher_out, student_out = [], []
    for index, (t_name, s_name) in enumerate(self.feature_pairs):
      t_out = _find_layer(self.teacher, t_name, "teacher",
                          self._WRAPPER_OF).output
      s_out = _find_layer(self.student, s_name, "student",
                          self._WRAPPER_OF).output
      self.projections.append(_projection(
          self._KERAS, index, tuple(s_out.shape[1:]),
          tuple(t_out.shape[1:])))
      teacher_out.append(t_out)
      student_out.append(s_out)
    # Untracked: they share every layer with the models already tracked.
    model = self._KERAS.Model
    self._features = checks.Untracked((
        model(self.teacher.inputs,
              [self._main_output(self.teacher)] + teacher_out),
        model(self.student.inputs,
              [self._main_output(self.student)] + student_out)))

  # -- the pieces, also used by AdversarialModel -----------------------------

  def call(self, inputs, training=None):
    return self.student(inputs, training=training)

  def teacher_logits(self, outputs):
    """Teacher outputs as logits (log-probabilities for a softmax teacher)."""
    ops = self._OPS
    outputs = ops.cast(outputs, "float32")
    if self.teacher_outputs == "probabilities":
      return ops.log(ops.maximum(outputs, checks.PROB_FLOOR))
    return outputs

  def teacher_targets(self, x, y):
    """`(labels, teacher_logits, teacher_features)` for a batch.

    Uses cached teacher outputs when `y` carries them, else runs the teacher
    on `x` in inference mode.
    """
    stop = self._OPS.stop_gradient
    if isinstance(y, dict) and TEACHER_KEY in y:
      if self.feature_pairs:
        raise UserInputError(checks.CACHE_WITH_FEATURES)
      return y[LABELS_KEY], stop(self.teacher_logits(y[TEACHER_KEY])), []
    if self._features is not None:
      outputs = self._features.value[0](x, training=False)
      return y, stop(self.teacher_logits(outputs[0])), [
          stop(o) for o in outputs[1:]]
    return y, stop(self.teacher_logits(self.teacher(x, training=False))), []

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
    ops = self._OPS
    hard = ops.cast(hard_loss(labels, student_logits, sample_weight),
                    "float32")
    soft = soft_target(teacher_logits, student_logits, self.temperature,
                       sample_weight, ops)
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
        errors.append(weighted_mean(per_example, sample_weight, ops))
      feature = ops.add_n(errors) / len(errors)
      total = total + self.feature_weight * feature
    return {"total": total, "student_loss": hard, "distillation_loss": soft,
            "feature_loss": feature}

  def compiled_hard_loss(self, labels, logits, sample_weight):
    """The compiled loss as this replica's mean (see `replica_mean_loss`)."""
    return replica_mean_loss(self, labels, logits, sample_weight)

  def _track(self, total, terms):
    """Updates the loss trackers with a step's total and `loss_terms`."""
    self.loss_tracker.update_state(total)
    self.student_loss_tracker.update_state(terms["student_loss"])
    self.distillation_loss_tracker.update_state(terms["distillation_loss"])
    if self.feature_pairs:
      self.feature_loss_tracker.update_state(terms["feature_loss"])

  # -- Keras hooks ------------------------------------------------------------

  @property
  def metrics(self):
    trackers = [self.loss_tracker, self.student_loss_tracker,
                self.distillation_loss_tracker]
    if self.feature_pairs:
      trackers.append(self.feature_loss_tracker)
    return trackers + compiled_metrics(self)

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
    # `predict` rather than a call: it runs in the replica context that
    # tfmot's wrappers need under a distribution strategy.
    if cached:
      outputs = np.asarray(y[TEACHER_KEY])
    else:
      outputs = np.asarray(self.teacher.predict(x, verbose=0))
    student_shape = self._output_shape(self.student)
    if student_shape is None:
      student_shape = self.student.predict(x[:1], verbose=0).shape[1:]
    checks.check_shapes(outputs.shape[1:], student_shape)
    check_teacher_outputs(outputs, self.teacher_outputs)

  def _check_inputs(self, x, y, batch_size, training):
    del training  # The same checks for fit and evaluate.
    self.check_data(x, y, batch_size)

  def get_config(self):
    serialize = self._KERAS.saving.serialize_keras_object
    value = self._OPS.convert_to_numpy
    return {
        "name": self.name,
        "teacher": serialize(self.teacher),
        "student": serialize(self.student),
        "alpha": float(value(self.alpha)),
        "temperature": float(value(self.temperature)),
        "teacher_outputs": self.teacher_outputs,
        "feature_pairs": [list(p) for p in self.feature_pairs] or None,
        "feature_weight": self.feature_weight,
    }

  @classmethod
  def from_config(cls, config, custom_objects=None):
    config = dict(config)
    for key in ("teacher", "student"):
      config[key] = cls._KERAS.saving.deserialize_keras_object(
          config[key], custom_objects=custom_objects)
    return cls(**config)
