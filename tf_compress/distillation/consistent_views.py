"""`ConsistentAugmentation`: one augmented view for the teacher and student.

A good teacher is "patient and consistent" (Beyer et al., 2022, function
matching): the teacher runs on the very view of each image that the
student is trained on, so that its soft targets describe the function off
the training images too. On a small dataset the teacher is almost certain
on its own training images, and soft targets there say little more than
the labels; on mixed, shifted or noisy views they say much more.

Each training step draws, per example i of a batch x (seeded, in the
compiled step, with `keras.random`):

    view_i = share_i * x_i + (1 - share_i) * x_partner(i)     (mixup)
    view_i[r, c] <- view_i[r + dy_i, c + dx_i], zeros outside  (shift)
    view_i <- view_i + noise * N(0, 1)                         (noise)

with `partner` a random permutation of the batch, `share_i ~
Beta(mixup, mixup)` and integer offsets `dy_i, dx_i` uniform in
`[-shift, shift]`. `make_views` is that formula on given draws (a pure
function); the layer draws and applies it. The labels of a mixed example
are mixed with the same share (`Keras3Distiller` does this in its hard
loss). The seed state advances once per draw; under a distribution
strategy every replica reads the same state, so each replica draws the
same shares, offsets and noise for its own part of the batch.
"""

import numbers

import keras
from keras import ops

from tf_compress.distillation.teacher_cache import TEACHER_KEY
from tf_compress.errors import UserInputError

__all__ = ["CACHE_WITH_AUGMENTATION", "ConsistentAugmentation",
           "make_views", "mixed_hard_loss", "own_augmentation",
           "shift_images"]

CACHE_WITH_AUGMENTATION = (
    "cached teacher outputs are of the plain inputs, but with augmentation "
    "the teacher must see each augmented view: train on (x, y) without the "
    "cache, or pass augmentation=None")



def shift_images(images, offsets, shift):
  """Shifts each image by whole pixels, filling with zeros.

  Args:
    images: `[batch, height, width, channels]`.
    offsets: `[batch, 2]` integers `(dy, dx)` in `[-shift, shift]`;
      `out[i, r, c] = images[i, r + dy_i, c + dx_i]` (0 outside).
    shift: the largest offset, a Python int.

  Returns:
    A tensor shaped as `images`.
  """
  if shift == 0:
    return images
  batch = ops.shape(images)[0]
  height, width, channels = images.shape[1:]
  padded = ops.pad(images, ((0, 0), (shift, shift), (shift, shift), (0, 0)))
  offsets = ops.cast(offsets, "int32")
  rows = ops.arange(height, dtype="int32")[None, :] + shift + offsets[:, :1]
  rows = ops.broadcast_to(rows[:, :, None, None],
                          (batch, height, width + 2 * shift, channels))
  padded = ops.take_along_axis(padded, rows, axis=1)
  cols = ops.arange(width, dtype="int32")[None, :] + shift + offsets[:, 1:]
  cols = ops.broadcast_to(cols[:, None, :, None],
                          (batch, height, width, channels))
  return ops.take_along_axis(padded, cols, axis=2)


def make_views(x, partner=None, share=None, offsets=None, shift=0,
               noise=None):
  """The views of a batch, from given draws (see the module docstring).

  Args:
    x: `[batch, ...]` inputs (`[batch, height, width, channels]` to shift).
    partner: `[batch]` indices of the examples mixed in, or None.
    share: `[batch]` weights of each example's own input, with `partner`.
    offsets: `[batch, 2]` pixel offsets for `shift_images`, or None.
    shift: the largest offset.
    noise: a tensor shaped as `x` to add, or None.

  Returns:
    The views, shaped as `x` (float).
  """
  views = ops.cast(x, "float32")
  if partner is not None:
    share = ops.reshape(ops.cast(share, "float32"),
                        (-1,) + (1,) * (len(views.shape) - 1))
    views = share * views + (1.0 - share) * ops.take(views, partner, axis=0)
  if offsets is not None:
    views = shift_images(views, offsets, shift)
  if noise is not None:
    views = views + ops.cast(noise, "float32")
  return views


def _check(name, value, integer=False):
  kind = numbers.Integral if integer else numbers.Real
  if (isinstance(value, bool) or not isinstance(value, kind) or
      not value >= 0 or value == float("inf")):
    raise UserInputError(
        f"ConsistentAugmentation: {name} must be a finite "
        f"{'int' if integer else 'number'} >= 0 (0 turns it off), got "
        f"{value!r}")
  return int(value) if integer else float(value)


@keras.saving.register_keras_serializable(package="tf_compress")
class ConsistentAugmentation(keras.layers.Layer):
  """Seeded mixup, pixel shifts and noise, drawn once per training step.

  Give it to `Distiller(..., augmentation=...)`: in each training step both
  the teacher and the student see the same views, and the labels are mixed
  with the same shares. Evaluation sees the plain inputs.

  Args:
    mixup: Beta concentration of the shares (e.g. 1.0: uniform); 0 mixes
      nothing.
    shift: largest shift in pixels along each image axis; 0: none. Needs
      `[batch, height, width, channels]` inputs.
    noise: standard deviation of added Gaussian noise; 0: none.
    seed: the seed of the draws; the same seed gives the same sequence.
    **kwargs: `keras.layers.Layer` arguments such as `name`.

  Raises:
    UserInputError: a negative or non-numeric argument.

  Example:
    >>> augmentation = ConsistentAugmentation(mixup=1.0, shift=1, seed=0)
    >>> views, partner, share = augmentation(x, training=True)
  """

  def __init__(self, mixup=0.0, shift=0, noise=0.0, seed=0, **kwargs):
    super().__init__(**kwargs)
    self.mixup = _check("mixup", mixup)
    self.shift = _check("shift", shift, integer=True)
    self.noise = _check("noise", noise)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
      raise UserInputError(
          f"ConsistentAugmentation: seed must be an int, got {seed!r}")
    self.seed = int(seed)
    self.seed_generator = keras.random.SeedGenerator(self.seed)

  @property
  def active(self):
    """Whether any of mixup, shift and noise is on."""
    return bool(self.mixup or self.shift or self.noise)

  def check_batch(self, batch):
    """Checks a first `(x, y)` batch (None: unknown) before training.

    Raises:
      UserInputError: `y` carries cached teacher outputs while augmenting,
        or `shift` is set and `x` is not a batch of images.
    """
    if batch is None or not self.active:
      return
    x, y = batch
    if isinstance(y, dict) and TEACHER_KEY in y:
      raise UserInputError(CACHE_WITH_AUGMENTATION)
    if self.shift and len(x.shape) != 4:
      raise UserInputError(
          f"ConsistentAugmentation(shift={self.shift}) shifts images of "
          f"shape [batch, height, width, channels], got inputs of shape "
          f"{tuple(x.shape)}; set shift=0 for other inputs")

  def draw(self, x):
    """`(partner, share, offsets, noise)` for the batch `x` (None: off)."""
    batch = ops.shape(x)[0]
    partner = share = offsets = noise = None
    if self.mixup:
      partner = ops.argsort(keras.random.uniform(
          (batch,), seed=self.seed_generator))
      share = keras.random.beta((batch,), self.mixup, self.mixup,
                                seed=self.seed_generator)
    if self.shift:
      offsets = keras.random.randint((batch, 2), -self.shift, self.shift + 1,
                                     seed=self.seed_generator)
    if self.noise:
      noise = self.noise * keras.random.normal(ops.shape(x),
                                               seed=self.seed_generator)
    return partner, share, offsets, noise

  def call(self, inputs, training=False):
    """`(views, partner, share)`; the inputs themselves unless training.

    `partner` and `share` are None without mixup (or outside training).
    """
    if not training or not self.active:
      return inputs, None, None
    partner, share, offsets, noise = self.draw(inputs)
    views = make_views(inputs, partner, share, offsets, self.shift, noise)
    return views, partner, share

  def get_config(self):
    config = super().get_config()
    config.update(mixup=self.mixup, shift=self.shift, noise=self.noise,
                  seed=self.seed)
    return config


def own_augmentation(augmentation):
  """A fresh copy of `augmentation` (None stays None), or raises."""
  if augmentation is None:
    return None
  if isinstance(augmentation, dict):
    augmentation = keras.saving.deserialize_keras_object(augmentation)
  if not isinstance(augmentation, ConsistentAugmentation):
    raise UserInputError(
        "augmentation must be a distillation.ConsistentAugmentation (or "
        f"None), got {type(augmentation).__name__}: {augmentation!r}")
  # A copy of its own: the caller's layer is never advanced, and the seed
  # state is made in the Distiller's distribution scope.
  return ConsistentAugmentation.from_config(augmentation.get_config())


def mixed_hard_loss(hard_loss, partner, share):
  """`hard_loss` of mixed examples: the share-weighted sum over both labels.

  Args:
    hard_loss: `fn(labels, logits, sample_weight)` -> mean over the batch,
      linear in the sample weights (Keras' `sum_over_batch_size`).
    partner: `[batch]` indices of the examples mixed in.
    share: `[batch]` weights of each example's own label.

  Returns:
    `fn(labels, logits, sample_weight)`: `hard(y, w * share) +
    hard(y[partner], w * (1 - share))`.
  """
  def loss(labels, logits, sample_weight):
    share_ = ops.cast(share, "float32")
    own, other = share_, 1.0 - share_
    if sample_weight is not None:
      weight = ops.cast(ops.reshape(sample_weight, (-1,)), "float32")
      own, other = own * weight, other * weight
    return (hard_loss(labels, logits, own) +
            hard_loss(ops.take(labels, partner, axis=0), logits, other))
  return loss
