"""`EpsilonWarmup`: ramps an AdversarialModel's epsilon up over the first
epochs (a full-strength attack on an untrained model slows early learning).
"""

import numbers

from tf_compress._keras import keras, register
from tf_compress.adversarial import attacks
from tf_compress.adversarial.model import AdversarialModel
from tf_compress.errors import ModelError, UserInputError
from tf_compress.models.graph import find_model

__all__ = ["EpsilonWarmup", "find_adversarial_model", "warmup_epsilon"]


def find_adversarial_model(model):
  """The `AdversarialModel` in `model` (itself, or nested), or None."""
  return find_model(model, AdversarialModel)


def warmup_epsilon(epoch, epochs, final_epsilon):
  """`final * (epoch + 1) / epochs` during the warm-up, `final` after it."""
  return final_epsilon * min(1.0, (epoch + 1) / epochs)


@register
class EpsilonWarmup(keras.callbacks.Callback):
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
    super().__init__()
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
      self._final = float(keras.backend.get_value(self._adversarial.epsilon))

  def on_epoch_begin(self, epoch, logs=None):
    keras.backend.set_value(self._adversarial.epsilon,
                            warmup_epsilon(epoch, self.epochs, self._final))

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None:
      logs["epsilon"] = float(
          keras.backend.get_value(self._adversarial.epsilon))

  def get_config(self):
    return {"epochs": self.epochs, "final_epsilon": self.final_epsilon}

  @classmethod
  def from_config(cls, config):
    return cls(**config)
