"""Gradual structured slicing: mask more channels each epoch, slice at the end.

`SlicingCallback` ramps a removal ratio from 0 to `target_ratio` between two
epochs. At each step it ranks the channels on the current weights and zeroes
the lowest-ranked ones (and every weight that reads them), keeping channels
that were masked before masked; after every optimizer step it zeroes them
again. When training ends, `slice_masked_model(model, callback)` cuts the
masked channels out and the smaller model is fine-tuned.
"""

import numbers
import warnings

import keras as keras3

from tf_compress._keras import is_keras3_object
from tf_compress._keras import keras
from tf_compress._keras import register
from tf_compress._keras import tf
from tf_compress.errors import UserInputError
from tf_compress.pruning import channel_groups
from tf_compress.pruning import keras3_slicing
from tf_compress.pruning import rebuild
from tf_compress.pruning import slicing

__all__ = ["SlicingCallback"]


def _check_int(value, name, lowest):
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (
      value < lowest):
    raise UserInputError(
        f"`{name}` must be an integer >= {lowest}, got {value!r}")
  return int(value)


# Registered with both Keras: one class drives `fit` of either.
@keras3.saving.register_keras_serializable(package="tf_compress")
@register
class SlicingCallback(keras.callbacks.Callback):
  """Masks the lowest-ranked channels progressively during training.

  The ratio at epoch `e` (0-based) is `target_ratio * (e - begin_epoch + 1)
  / (end_epoch - begin_epoch + 1)`, clipped to [0, target_ratio]: the first
  channels are masked at the start of `begin_epoch`, and the target is
  reached at the start of `end_epoch`. Masks are updated every
  `frequency_epochs` epochs from `begin_epoch` (and at `end_epoch`), and
  applied again after every training batch. `logs["slicing_ratio"]` holds
  the ratio in force at the end of each epoch. It trains Keras 3 and
  tf_keras Functional/Sequential models alike.

  Args:
    target_ratio: final fraction in [0, 1) of each layer's channels to mask.
    begin_epoch: the first epoch that masks channels.
    end_epoch: the epoch that reaches `target_ratio` (>= begin_epoch).
    criterion: `l1`, `l2` or `bn_gamma` (see `slice_model`).
    frequency_epochs: epochs between two mask updates.
    layers: names of the Conv/Dense layers to slice, or None for all.

  Raises:
    UserInputError: for values out of range, and (when the model is set)
      for layer names the model lacks or a ratio that masks all of a layer.

  Example:
    >>> callback = SlicingCallback(0.5, begin_epoch=0, end_epoch=2)
    >>> model.fit(data, epochs=4, callbacks=[callback])
    >>> smaller = slice_masked_model(model, callback).model
  """

  def __init__(self, target_ratio, begin_epoch=0, end_epoch=0,
               criterion="l1", frequency_epochs=1, layers=None):
    super().__init__()
    self.target_ratio = slicing.check_ratio(target_ratio, "target_ratio")
    self.begin_epoch = _check_int(begin_epoch, "begin_epoch", 0)
    self.end_epoch = _check_int(end_epoch, "end_epoch", 0)
    if self.end_epoch < self.begin_epoch:
      raise UserInputError(
          f"`end_epoch` ({end_epoch}) must be >= `begin_epoch` "
          f"({begin_epoch})")
    self.criterion = slicing.check_criterion(criterion)
    self.frequency_epochs = _check_int(frequency_epochs, "frequency_epochs",
                                       1)
    if isinstance(layers, str):
      layers = [layers]
    self.layers = None if layers is None else [str(n) for n in layers]
    self.ratio = 0.0
    self._graph = None
    self._analyzed = None
    self._keep = {}
    self._masks = []
    self._apply_fn = None

  def ratio_at(self, epoch):
    """The scheduled ratio at the start of `epoch`."""
    if epoch < self.begin_epoch:
      return 0.0
    span = self.end_epoch - self.begin_epoch + 1
    return self.target_ratio * min(1.0, (epoch - self.begin_epoch + 1) / span)

  def _updates_at(self, epoch):
    return epoch >= self.begin_epoch and (
        (epoch - self.begin_epoch) % self.frequency_epochs == 0 or
        epoch >= self.end_epoch)

  def set_model(self, model):
    keras3_slicing.check_slicing_model(model, "SlicingCallback")
    super().set_model(model)
    if model is self._analyzed:
      return
    self._graph = channel_groups.analyze_channels(model)
    self._analyzed = model
    self._keep, self._masks, self.ratio = {}, [], 0.0
    # Fail before training for bad layer names or a target that would
    # remove every channel of a layer (and warn once about bn_gamma
    # falling back to l1).
    slicing.plan_keep(self._graph, self.target_ratio, self.criterion,
                      self.layers)

  @property
  def kept(self):
    """`{layer name: kept output channels}` of the masks now in force."""
    if self._graph is None:
      return {}
    return slicing.kept_by_layer(self._graph, self._keep)[0]

  def _apply_masks(self):
    if self._masks:
      self._apply_fn()

  def _build_apply_fn(self):
    if is_keras3_object(self.model):
      self._apply_fn = keras3_slicing.KerasMasks(self.model, self._masks)
      return
    masks = [(variable, tf.constant(mask, variable.dtype))
             for variable, mask in self._masks]

    # One traced call instead of one eager op per variable: this runs after
    # every batch, and mirrored variables make eager updates slow.
    @tf.function
    def apply():
      for variable, mask in masks:
        variable.assign(variable * mask)

    self._apply_fn = apply

  def on_train_begin(self, logs=None):
    self._apply_masks()

  def on_epoch_begin(self, epoch, logs=None):
    ratio = self.ratio_at(epoch)
    if ratio <= self.ratio or not self._updates_at(epoch):
      return
    # JAX keeps the weights in the trainer's state mid-fit: write it back
    # before ranking them (a no-op on other backends and on tf_keras).
    getattr(self.model, "jax_state_sync", lambda: None)()
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", RuntimeWarning)  # said in set_model
      self._keep, _, _ = slicing.plan_keep(
          self._graph, ratio, self.criterion, self.layers,
          previous=self._keep or None)
    self._masks = rebuild.channel_masks(self._graph, self._keep)
    self.ratio = ratio
    self._build_apply_fn()
    self._apply_masks()

  def on_train_batch_end(self, batch, logs=None):
    self._apply_masks()

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None:
      logs["slicing_ratio"] = self.ratio

  def get_config(self):
    return {"target_ratio": self.target_ratio,
            "begin_epoch": self.begin_epoch, "end_epoch": self.end_epoch,
            "criterion": self.criterion,
            "frequency_epochs": self.frequency_epochs,
            "layers": self.layers}

  @classmethod
  def from_config(cls, config):
    return cls(**config)
