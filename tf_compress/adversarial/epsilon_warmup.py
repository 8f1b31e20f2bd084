"""`EpsilonWarmup`: ramps an AdversarialModel's epsilon up over the first
epochs (a full-strength attack on an untrained model slows early learning).

One callback for both engines: it is a Keras 3 `keras.callbacks.Callback`
and a tf_keras one (each `fit` calls the hooks its own Keras defines), is
registered for serialization with both, and reads and writes the epsilon
variable of whichever `AdversarialModel` it finds.
"""

import numbers

import keras as keras3

from tf_compress._keras import is_keras3_object, keras, register
from tf_compress.adversarial import attacks
from tf_compress.adversarial.model import AdversarialModel
from tf_compress.errors import ModelError, UserInputError
from tf_compress.models.graph import find_model

__all__ = ["EpsilonWarmup", "find_adversarial_model", "warmup_epsilon"]


def find_adversarial_model(model):
  """The `AdversarialModel` in `model` (itself, or nested), or None.

  Either engine's: a Keras 3 `Keras3AdversarialModel` counts as one.
  """
  return find_model(model, AdversarialModel)


def warmup_epsilon(epoch, epochs, final_epsilon):
  """`final * (epoch + 1) / epochs` during the warm-up, `final` after it."""
  return final_epsilon * min(1.0, (epoch + 1) / epochs)


def _get_epsilon(adversarial):
  if is_keras3_object(adversarial):
    return float(keras3.ops.convert_to_numpy(adversarial.epsilon))
  return float(keras.backend.get_value(adversarial.epsilon))


def _set_epsilon(adversarial, value):
  if is_keras3_object(adversarial):
    adversarial.epsilon.assign(value)
  else:
    keras.backend.set_value(adversarial.epsilon, value)


@keras3.saving.register_keras_serializable(package="tf_compress")
@register
class EpsilonWarmup(keras3.callbacks.Callback, keras.callbacks.Callback):
  """Ramps the attack's epsilon linearly over the first `epochs` epochs.

  Epoch `e` (from 0) trains with `final_epsilon * (e + 1) / epochs`, so the
  first epoch already meets a small attack and epoch `epochs - 1` and later
  ones the full `final_epsilon`. The epoch's epsilon is written to
  `logs["epsilon"]`.

  Args:
    epochs: warm-up length in epochs (>= 1).
    final_epsilon: epsilon after the warm-up (>= 0); None means the
      AdversarialModel's epsilon when training begins.

  Raises:
    UserInputError: bad epochs or final_epsilon.
    ModelError: (from `set_model`) the model is no AdversarialModel.

  Example:
    >>> adv = AdversarialModel(model, epsilon=0.2)
    >>> adv.fit(data, epochs=10, callbacks=[EpsilonWarmup(epochs=3)])
  """

  def __init__(self, epochs, final_epsilon=None):
    super().__init__()  # Keras 3's: its `model` is a read-only property
    # What tf_keras' Callback.__init__ would set (it assigns `self.model`).
    self.validation_data = None
    self._chief_worker_only = None
    self._supports_tf_logs = False
    if (isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral)
        or epochs < 1):
      raise UserInputError(
          f"EpsilonWarmup epochs must be an integer >= 1, got {epochs!r}")
    if final_epsilon is not None:
      final_epsilon = attacks.check_epsilon(final_epsilon,
                                            "EpsilonWarmup.final_epsilon")
    self.epochs = int(epochs)
    self.final_epsilon = final_epsilon
    self._adversarial = None
    self._final = final_epsilon

  def set_model(self, model):
    super().set_model(model)
    self._adversarial = find_adversarial_model(model)
    if self._adversarial is None:
      raise ModelError(
          f"EpsilonWarmup: model {model.name!r} ({type(model).__name__}) is "
          "not an AdversarialModel; wrap it with "
          "tf_compress.adversarial.AdversarialModel")

  def on_train_begin(self, logs=None):
    if self.final_epsilon is None:
      self._final = _get_epsilon(self._adversarial)

  def on_epoch_begin(self, epoch, logs=None):
    _set_epsilon(self._adversarial,
                 warmup_epsilon(epoch, self.epochs, self._final))

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None:
      logs["epsilon"] = _get_epsilon(self._adversarial)

  def get_config(self):
    return {"epochs": self.epochs, "final_epsilon": self.final_epsilon}

  @classmethod
  def from_config(cls, config):
    return cls(**config)
