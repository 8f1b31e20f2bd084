"""Gradient attacks on classifiers: FGSM and PGD (L-inf and L2).

Pure functions: a model and a batch in, adversarial inputs out; the model
is never changed and runs in inference mode (`training=False`: no dropout,
frozen batch-norm statistics, and pruning wrappers do not count a step).
The loss is sparse categorical cross-entropy of the model's outputs
(logits by default) against integer labels. Adversarial inputs are clipped
to the valid input range `[clip_min, clip_max]`, which for inputs inside
the range keeps them inside the epsilon ball too.

The `*_tensor` variants skip argument checks and accept tensors for every
number (e.g. a `tf.Variable` epsilon), for use inside compiled train steps.

Both engines: the model may be a tf_keras model or a Keras 3 model on the
TensorFlow backend (callable on TF tensors, so one `GradientTape` serves
both); the loss is each Keras' own sparse cross-entropy.
"""

import numbers

import keras as keras3
import numpy as np

from tf_compress._keras import check_model, is_keras3_object, keras, tf
from tf_compress.errors import ModelError
from tf_compress.errors import UserInputError

__all__ = ["fgsm", "pgd", "fgsm_tensor", "pgd_tensor", "NORMS", "ATTACKS",
           "default_step_size", "check_epsilon", "check_value_range",
           "check_attack_model"]

NORMS = ("linf", "l2")
ATTACKS = ("fgsm", "pgd")
# Keeps divisions by a norm finite for an all-zero gradient or perturbation.
_TINY = 1e-12


def _is_number(value):
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_epsilon(epsilon, where="epsilon"):
  """Returns `epsilon` as a float; raises `UserInputError` unless >= 0."""
  if not _is_number(epsilon) or not np.isfinite(epsilon) or epsilon < 0:
    raise UserInputError(
        f"{where} must be a number >= 0 (the attack's radius in input "
        f"units), got {epsilon!r}")
  return float(epsilon)


def check_value_range(clip_min, clip_max):
  """Raises `UserInputError` unless `clip_min < clip_max`, both numbers."""
  if not (_is_number(clip_min) and _is_number(clip_max)) or (
      clip_min >= clip_max):
    raise UserInputError(
        f"clip_min must be a number below clip_max (the valid input range), "
        f"got clip_min={clip_min!r}, clip_max={clip_max!r}; use "
        "DatasetSplits.value_range")


def check_attack_model(model, argument="model"):
  """Checks that the attacks can take gradients through `model`.

  Args:
    model: a tf_keras model, or a Keras 3 model on the TensorFlow backend.
    argument: the caller's argument name, for the message.

  Returns:
    `model`, unchanged.

  Raises:
    TypeError: for an object that is not a Keras model.
    ModelError: for a Keras 3 model on another backend than TensorFlow.
  """
  if not is_keras3_object(model):
    return check_model(model, argument)
  if not isinstance(model, keras3.Model):
    raise TypeError(f"`{argument}` must be a Keras 3 or tf_keras Model, got "
                    f"{type(model).__name__}.")
  if keras3.backend.backend() != "tensorflow":
    raise ModelError(
        f"`{argument}` {model.name!r} is a Keras 3 model on the "
        f"{keras3.backend.backend()!r} backend, but the attacks take "
        "gradients with tf.GradientTape: run with KERAS_BACKEND=tensorflow")
  return model


def _check_inputs(model, x, y):
  check_attack_model(model)
  x = tf.convert_to_tensor(x, tf.float32)
  y = tf.convert_to_tensor(y)
  if x.shape.rank is None or x.shape.rank < 1 or y.shape.rank != 1 or (
      x.shape[0] != y.shape[0]):
    raise UserInputError(
        f"x and y must hold the same number of samples, with y 1-D integer "
        f"labels; got x of shape {tuple(x.shape)} and y of shape "
        f"{tuple(y.shape)}")
  if not y.dtype.is_integer:
    raise UserInputError(
        f"y must hold integer class labels, got dtype {y.dtype.name}")
  return x, y


def default_step_size(epsilon, steps):
  """PGD's usual step: 2.5 * epsilon / steps (Madry et al., 2018)."""
  return 2.5 * epsilon / steps


def _loss_and_gradient(model, x, y, from_logits):
  losses = keras3.losses if is_keras3_object(model) else keras.losses
  with tf.GradientTape() as tape:
    tape.watch(x)
    outputs = model(x, training=False)
    loss = losses.sparse_categorical_crossentropy(
        y, tf.cast(outputs, tf.float32), from_logits=from_logits)
  return loss, tape.gradient(loss, x)


def _l2_norm(v):
  axes = list(range(1, v.shape.rank))
  return tf.sqrt(tf.maximum(tf.reduce_sum(tf.square(v), axes, keepdims=True),
                            _TINY))


def _project(delta, epsilon, norm):
  if norm == "linf":
    return tf.clip_by_value(delta, -epsilon, epsilon)
  return delta * tf.minimum(1.0, epsilon / _l2_norm(delta))


def _direction(gradient, norm):
  if norm == "linf":
    return tf.sign(gradient)
  return gradient / _l2_norm(gradient)


def _random_start(x, epsilon, norm, seed):
  shape = tf.shape(x)
  if seed is None:
    uniform = lambda s, lo, hi: tf.random.uniform(s, lo, hi)
    normal = tf.random.normal
  else:
    pair = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
    uniform = lambda s, lo, hi: tf.random.stateless_uniform(s, pair, lo, hi)
    normal = lambda s: tf.random.stateless_normal(s, pair + 1)
  if norm == "linf":
    return uniform(shape, -1.0, 1.0) * epsilon
  # Uniform in the L2 ball: a random direction, radius eps * u^(1/d).
  direction = normal(shape)
  direction /= _l2_norm(direction)
  dims = tf.cast(tf.reduce_prod(shape[1:]), tf.float32)
  radius = uniform(tf.concat([shape[:1], tf.ones_like(shape[1:])], 0), 0.0,
                   1.0) ** (1.0 / dims)
  return direction * radius * epsilon


def fgsm_tensor(model, x, y, epsilon, clip_min, clip_max, from_logits=True):
  """`fgsm` without checks; every number may be a tensor."""
  _, gradient = _loss_and_gradient(model, x, y, from_logits)
  x_adv = x + tf.cast(epsilon, x.dtype) * tf.sign(gradient)
  return tf.stop_gradient(tf.clip_by_value(x_adv, clip_min, clip_max))


def pgd_tensor(model, x, y, epsilon, step_size, steps, norm="linf",
               random_start=True, clip_min=0.0, clip_max=1.0, seed=None,
               from_logits=True):
  """`pgd` without checks; epsilon, step_size and seed may be tensors."""
  epsilon = tf.cast(epsilon, x.dtype)
  step_size = tf.cast(step_size, x.dtype)
  delta = tf.zeros_like(x)
  if random_start:
    delta = _random_start(x, epsilon, norm, seed)
  x_adv = tf.clip_by_value(x + delta, clip_min, clip_max)
  for _ in range(int(steps)):
    _, gradient = _loss_and_gradient(model, x_adv, y, from_logits)
    delta = _project(x_adv + step_size * _direction(gradient, norm) - x,
                     epsilon, norm)
    x_adv = tf.clip_by_value(x + delta, clip_min, clip_max)
  return tf.stop_gradient(x_adv)


def fgsm(model, x, y, epsilon, clip_min=0.0, clip_max=1.0, from_logits=True):
  """Fast gradient sign method: one L-inf step of size epsilon.

  Args:
    model: a tf_keras or Keras 3 (TensorFlow backend) classifier (logits
      output unless `from_logits=False`).
    x: a batch of inputs inside `[clip_min, clip_max]`.
    y: 1-D integer labels.
    epsilon: L-inf radius (>= 0), in input units.
    clip_min: smallest valid input value.
    clip_max: largest valid input value.
    from_logits: whether the model outputs logits (else probabilities).

  Returns:
    A float32 tensor shaped like `x`: `clip(x + epsilon * sign(grad))`.

  Raises:
    TypeError: `model` is not a Keras model.
    ModelError: a Keras 3 model on another backend than TensorFlow.
    UserInputError: epsilon < 0, a bad range, or mismatched x and y.
  """
  epsilon = check_epsilon(epsilon)
  check_value_range(clip_min, clip_max)
  x, y = _check_inputs(model, x, y)
  return fgsm_tensor(model, x, y, epsilon, clip_min, clip_max, from_logits)


def pgd(model, x, y, epsilon, step_size=None, steps=10, norm="linf",
        random_start=True, clip_min=0.0, clip_max=1.0, seed=None,
        from_logits=True):
  """Projected gradient descent (ascent on the loss), L-inf or L2.

  From a random point of the epsilon ball (or from `x`), each step moves by
  `step_size` along the gradient's sign (L-inf) or its normalised direction
  (L2), then projects back onto the ball and into the input range.

  Args:
    model: a tf_keras or Keras 3 (TensorFlow backend) classifier (logits
      output unless `from_logits=False`).
    x: a batch of inputs inside `[clip_min, clip_max]`.
    y: 1-D integer labels.
    epsilon: radius of the ball (>= 0), in input units.
    step_size: size of each step; None means 2.5 * epsilon / steps.
    steps: number of steps (>= 1).
    norm: `"linf"` or `"l2"`.
    random_start: start from a uniform random point of the ball.
    clip_min: smallest valid input value.
    clip_max: largest valid input value.
    seed: integer seed of the random start (stateless); None uses the
      global generator.
    from_logits: whether the model outputs logits (else probabilities).

  Returns:
    A float32 tensor shaped like `x`, within epsilon of `x` (in `norm`) and
    inside `[clip_min, clip_max]`.

  Raises:
    TypeError: `model` is not a Keras model.
    ModelError: a Keras 3 model on another backend than TensorFlow.
    UserInputError: epsilon < 0, bad steps, step size, norm or range, or
      mismatched x and y.
  """
  epsilon = check_epsilon(epsilon)
  if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or (
      steps < 1):
    raise UserInputError(f"steps must be an integer >= 1, got {steps!r}")
  if norm not in NORMS:
    raise UserInputError(f"norm must be one of {NORMS}, got {norm!r}")
  if step_size is None:
    step_size = default_step_size(epsilon, steps)
  elif not _is_number(step_size) or step_size < 0:
    raise UserInputError(
        f"step_size must be a number >= 0 or None, got {step_size!r}")
  if seed is not None and (isinstance(seed, bool) or
                           not isinstance(seed, numbers.Integral)):
    raise UserInputError(f"seed must be an integer or None, got {seed!r}")
  check_value_range(clip_min, clip_max)
  x, y = _check_inputs(model, x, y)
  return pgd_tensor(model, x, y, epsilon, float(step_size), int(steps), norm,
                    bool(random_start), clip_min, clip_max, seed, from_logits)
