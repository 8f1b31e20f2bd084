"""`DistillationScheduler`: anneals a Distiller's temperature and alpha.

One callback for both Keras engines: it subclasses both Keras 3's and
tf_keras' `Callback` (each `fit` finds the hooks it expects), is registered
with both for serialization, and reads and writes the Distiller's variables
through the Distiller's own Keras.
"""

import keras as keras3

from tf_compress._keras import is_keras3_object, keras, register
from tf_compress.distillation.distiller import check_alpha
from tf_compress.distillation.distiller import check_temperature
from tf_compress.distillation.distiller import Distiller
from tf_compress.errors import ModelError, UserInputError
from tf_compress.models.graph import find_model

__all__ = ["DistillationScheduler", "find_distiller", "linear_ramp"]


def find_distiller(model):
  """The `Distiller` in `model` (itself, or nested), or None."""
  return find_model(model, Distiller)


def linear_ramp(start, end, epoch, epochs):
  """`start` at epoch 0, `end` from epoch `epochs - 1` on, linear between.

  With `epochs=1` the end value applies from the first epoch.
  """
  if epochs <= 1:
    return end
  return start + (end - start) * min(1.0, epoch / (epochs - 1))


def _read(distiller, variable):
  if is_keras3_object(distiller):
    return float(keras3.ops.convert_to_numpy(variable))
  return float(keras.backend.get_value(variable))


def _write(distiller, variable, value):
  if is_keras3_object(distiller):
    variable.assign(value)
  else:
    keras.backend.set_value(variable, value)


@keras3.saving.register_keras_serializable(package="tf_compress")
@register
class DistillationScheduler(keras3.callbacks.Callback,
                            keras.callbacks.Callback):
  """Anneals the temperature and alpha of a `Distiller` over epochs.

  Each value moves linearly from its start (at epoch 0) to its end, reached
  at epoch `epochs - 1` (the last of the first `epochs` epochs) and kept
  after; with `epochs=1` the end applies from the first epoch. A start
  left None is the Distiller's value when training begins; a value whose
  end is None is not annealed.
  The values used in an epoch are written to `logs["temperature"]` and
  `logs["alpha"]` at its end. The Distiller may be nested (inside an
  `AdversarialModel`). It drives tf_keras and Keras 3 Distillers alike.

  Args:
    epochs: epochs the annealing lasts (>= 1).
    end_temperature: final temperature (> 0), or None.
    end_alpha: final alpha, in [0, 1], or None.
    start_temperature: temperature at epoch 0, or None.
    start_alpha: alpha at epoch 0, or None.

  Raises:
    UserInputError: bad epochs, temperatures or alphas.
    ModelError: (from `set_model`) the model holds no Distiller.

  Example:
    >>> scheduler = DistillationScheduler(epochs=5, start_temperature=8.0,
    ...                                   end_temperature=2.0, end_alpha=0.5)
    >>> distiller.fit(data, epochs=8, callbacks=[scheduler])
  """

  def __init__(self, epochs, end_temperature=None, end_alpha=None,
               start_temperature=None, start_alpha=None):
    keras3.callbacks.Callback.__init__(self)
    # tf_keras' `Callback.__init__` would assign `model`, a read-only
    # property of Keras 3's; its other state is set here.
    self.validation_data = None
    self._chief_worker_only = None
    self._supports_tf_logs = False
    if (isinstance(epochs, bool) or not isinstance(epochs, int) or
        epochs < 1):
      raise UserInputError(
          f"DistillationScheduler epochs must be an integer >= 1, got "
          f"{epochs!r}")
    if end_temperature is None and end_alpha is None:
      raise UserInputError(
          "DistillationScheduler needs end_temperature or end_alpha (or "
          "both); got neither, so nothing would change")
    check = {"temperature": check_temperature, "alpha": check_alpha}
    for name, value in (("start_temperature", start_temperature),
                        ("end_temperature", end_temperature),
                        ("start_alpha", start_alpha),
                        ("end_alpha", end_alpha)):
      if value is not None:
        check[name.split("_")[1]](value, f"DistillationScheduler.{name}")
    self.epochs = epochs
    self.start_temperature = start_temperature
    self.end_temperature = end_temperature
    self.start_alpha = start_alpha
    self.end_alpha = end_alpha
    self._distiller = None
    self._starts = {}

  def set_model(self, model):
    super().set_model(model)
    self._distiller = find_distiller(model)
    if self._distiller is None:
      raise ModelError(
          f"DistillationScheduler: model {model.name!r} "
          f"({type(model).__name__}) holds no Distiller")

  def on_train_begin(self, logs=None):
    distiller = self._distiller
    self._starts = {
        "temperature": (self.start_temperature
                        if self.start_temperature is not None else
                        _read(distiller, distiller.temperature)),
        "alpha": (self.start_alpha if self.start_alpha is not None else
                  _read(distiller, distiller.alpha)),
    }

  def values(self, epoch):
    """`{"temperature": t, "alpha": a}` for `epoch` (only annealed ones)."""
    values = {}
    if self.end_temperature is not None:
      values["temperature"] = linear_ramp(
          self._starts["temperature"], self.end_temperature, epoch,
          self.epochs)
    if self.end_alpha is not None:
      values["alpha"] = linear_ramp(self._starts["alpha"], self.end_alpha,
                                    epoch, self.epochs)
    return values

  def on_epoch_begin(self, epoch, logs=None):
    for name, value in self.values(epoch).items():
      _write(self._distiller, getattr(self._distiller, name), value)

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None:
      distiller = self._distiller
      logs["temperature"] = _read(distiller, distiller.temperature)
      logs["alpha"] = _read(distiller, distiller.alpha)

  def get_config(self):
    return {"epochs": self.epochs, "end_temperature": self.end_temperature,
            "end_alpha": self.end_alpha,
            "start_temperature": self.start_temperature,
            "start_alpha": self.start_alpha}

  @classmethod
  def from_config(cls, config):
    return cls(**config)
