"""`TrainingAttack`: the attack settings both `AdversarialModel` engines share.

A frozen dataclass that checks the arguments of `AdversarialModel` (in the
order, and with the messages, the tf_keras model has always used) and
crafts a training batch's adversarial examples with them. The epsilon
used at each step is the model's variable (`EpsilonWarmup` ramps it), so
`epsilon` here is only its initial value.
"""

import dataclasses
import numbers
from typing import Optional

from tf_compress._keras import tf
from tf_compress.adversarial import attacks
from tf_compress.errors import UserInputError

__all__ = ["TrainingAttack"]


def _is_number(value):
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class TrainingAttack:
  """How an `AdversarialModel` perturbs each training batch.

  Attributes:
    attack: `"pgd"` or `"fgsm"` (with `random_start`, RS-FGSM).
    epsilon: the initial radius (>= 0) in input units.
    ratio: weight of the adversarial loss, in (0, 1].
    steps: PGD steps (>= 1); FGSM takes one.
    step_size: step size (>= 0), or None for the attack's default.
    norm: `"linf"` or `"l2"` (PGD only).
    random_start: start from a random point of the ball.
    clip_min: smallest valid input value.
    clip_max: largest valid input value.
    from_logits: whether the attacked model outputs logits.

  Raises:
    UserInputError: a bad attack, epsilon, ratio, steps, step size, norm or
      range.
  """
  attack: str = "pgd"
  epsilon: float = 0.1
  ratio: float = 0.5
  steps: int = 5
  step_size: Optional[float] = None
  norm: str = "linf"
  random_start: bool = True
  clip_min: float = 0.0
  clip_max: float = 1.0
  from_logits: bool = True

  def __post_init__(self):
    if self.attack not in attacks.ATTACKS:
      raise UserInputError(
          f"attack must be one of {attacks.ATTACKS}, got {self.attack!r}")
    epsilon = attacks.check_epsilon(self.epsilon)
    ratio = self.ratio
    if not _is_number(ratio) or not 0.0 < ratio <= 1.0:
      raise UserInputError(
          f"ratio must be in (0, 1] (the weight of the adversarial loss), got "
          f"{ratio!r}; for ratio 0 train the base model directly")
    steps = self.steps
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or (
        steps < 1):
      raise UserInputError(f"steps must be an integer >= 1, got {steps!r}")
    step_size = self.step_size
    if step_size is not None and (not _is_number(step_size) or
                                  step_size < 0):
      raise UserInputError(
          f"step_size must be a number >= 0 or None, got {step_size!r}")
    if self.norm not in attacks.NORMS:
      raise UserInputError(f"norm must be one of {attacks.NORMS}, got "
                           f"{self.norm!r}")
    if self.attack == "fgsm" and self.norm != "linf":
      raise UserInputError(
          f"attack='fgsm' is an L-inf attack, got norm={self.norm!r}; use "
          "attack='pgd' (steps=1 for a single step) for L2")
    attacks.check_value_range(self.clip_min, self.clip_max)
    normalised = {
        "epsilon": epsilon, "ratio": float(ratio), "steps": int(steps),
        "step_size": None if step_size is None else float(step_size),
        "random_start": bool(self.random_start),
        "clip_min": float(self.clip_min), "clip_max": float(self.clip_max),
        "from_logits": bool(self.from_logits)}
    for name, value in normalised.items():
      object.__setattr__(self, name, value)

  def perturb(self, model, x, labels, epsilon):
    """Adversarial examples of a batch against `model`, at `epsilon`.

    Args:
      model: the classifier attacked (in inference mode).
      x: the batch of inputs.
      labels: its integer labels.
      epsilon: the radius, a number or a scalar tensor (the model's
        variable, read inside the compiled step).

    Returns:
      A float32 tensor shaped like `x`, with no gradient.
    """
    x = tf.cast(x, tf.float32)
    epsilon = tf.convert_to_tensor(epsilon)
    if self.attack == "fgsm" and not self.random_start:
      return attacks.fgsm_tensor(model, x, labels, epsilon, self.clip_min,
                                 self.clip_max, self.from_logits)
    steps = 1 if self.attack == "fgsm" else self.steps
    if self.step_size is not None:
      step_size = self.step_size
    elif self.attack == "fgsm":
      step_size = 1.25 * epsilon
    else:
      step_size = attacks.default_step_size(epsilon, steps)
    return attacks.pgd_tensor(model, x, labels, epsilon, step_size, steps,
                              self.norm, self.random_start, self.clip_min,
                              self.clip_max, None, self.from_logits)

  def config(self):
    """The settings as `AdversarialModel` arguments (JSON-safe)."""
    values = dataclasses.asdict(self)
    del values["epsilon"]  # the model's variable holds the current one
    return values
