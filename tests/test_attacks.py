"""FGSM and PGD: the formula on a linear model, the epsilon ball and input
range, PGD beating FGSM, no side effects on the model, clear errors."""

import numpy as np
import pytest

from tf_compress import adversarial
from tf_compress import keras
from tf_compress import pruning
from tf_compress import UserInputError

from classifiers import attack_target


@pytest.fixture(scope="module")
def model(digits):
  return attack_target(digits)


@pytest.fixture(scope="module")
def batch(digits):
  return digits.x_test[:128], digits.y_test[:128]


def _per_sample_loss(model, x, y):
  logits = model.predict(np.asarray(x), verbose=0)
  return keras.losses.sparse_categorical_crossentropy(
      y, logits, from_logits=True).numpy()


def test_fgsm_is_the_signed_gradient_step_of_a_linear_model():
  rng = np.random.default_rng(0)
  linear = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
  w = rng.normal(size=(6, 4)).astype(np.float32)
  b = rng.normal(size=4).astype(np.float32)
  linear.set_weights([w, b])
  x = rng.uniform(0.2, 0.8, size=(16, 6)).astype(np.float32)
  y = rng.integers(0, 4, size=16)
  logits = x @ w + b
  p = np.exp(logits - logits.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  gradient = (p - np.eye(4)[y]) @ w.T  # d cross-entropy / d x
  expected = np.clip(x + 0.3 * np.sign(gradient), 0.0, 1.0)
  got = adversarial.fgsm(linear, x, y, epsilon=0.3).numpy()
  clear = np.abs(gradient) > 1e-5  # sign() of a near-zero is a coin toss
  assert clear.mean() > 0.99
  np.testing.assert_allclose(got[clear], expected[clear], atol=1e-6)
  # Clipping: the inputs lie in [0.2, 0.8], so +-0.3 hits neither bound.
  assert np.abs(got - x).max() == pytest.approx(0.3, abs=1e-6)


@pytest.mark.parametrize("attack,kwargs,epsilon", [
    ("fgsm", {}, 0.1),
    ("pgd", {"random_start": True}, 0.1),
    ("pgd", {"random_start": False, "steps": 7, "step_size": 0.05}, 0.1),
    ("pgd", {"norm": "l2", "random_start": True}, 1.0),
    ("pgd", {"norm": "l2", "random_start": False, "step_size": 0.6}, 1.0),
], ids=["fgsm", "pgd-linf", "pgd-linf-big-steps", "pgd-l2",
        "pgd-l2-no-start"])
def test_stays_within_epsilon_and_input_range(model, batch, attack, kwargs,
                                              epsilon):
  x, y = batch
  fn = adversarial.fgsm if attack == "fgsm" else adversarial.pgd
  x_adv = fn(model, x, y, epsilon=epsilon, clip_min=0.0, clip_max=1.0,
             **kwargs).numpy()
  assert x_adv.shape == x.shape and x_adv.dtype == np.float32
  assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
  delta = (x_adv - x).reshape(len(x), -1)
  if kwargs.get("norm") == "l2":
    norms = np.linalg.norm(delta, axis=1)
  else:
    norms = np.abs(delta).max(axis=1)
  assert norms.max() <= epsilon + 1e-5
  assert np.median(norms) > 0.5 * epsilon  # it did move


def test_pgd_loss_at_least_fgsm_loss(model, batch):
  x, y = batch
  clean = _per_sample_loss(model, x, y).mean()
  fgsm_loss = _per_sample_loss(
      model, adversarial.fgsm(model, x, y, epsilon=0.1), y).mean()
  pgd_loss = _per_sample_loss(
      model, adversarial.pgd(model, x, y, epsilon=0.1, steps=10, seed=0),
      y).mean()
  assert clean < fgsm_loss < pgd_loss


def test_zero_epsilon_changes_nothing(model, batch):
  x, y = batch
  np.testing.assert_array_equal(adversarial.fgsm(model, x, y, 0.0), x)
  np.testing.assert_array_equal(adversarial.pgd(model, x, y, 0.0, steps=2), x)


def test_seed_makes_pgd_reproducible(model, batch):
  x, y = batch
  first = adversarial.pgd(model, x, y, 0.1, steps=2, seed=3).numpy()
  again = adversarial.pgd(model, x, y, 0.1, steps=2, seed=3).numpy()
  other = adversarial.pgd(model, x, y, 0.1, steps=2, seed=4).numpy()
  np.testing.assert_array_equal(first, again)
  assert not np.array_equal(first, other)


def test_clip_range_other_than_unit(model, batch):
  x, y = batch
  x_adv = adversarial.pgd(model, x, y, 0.3, steps=3, clip_min=0.1,
                          clip_max=0.9, seed=0).numpy()
  assert x_adv.min() >= 0.1 and x_adv.max() <= 0.9


def test_model_untouched_and_pruning_step_not_counted(digits, model, batch):
  pruned = pruning.prune_model(model, pruning.PruningConfig(
      target_sparsity=0.5))
  wrappers = [w for _, w in pruning.find_pruning_wrappers(pruned)]
  for wrapper in wrappers:
    wrapper.pruning_step.assign(5)
  before = [w.copy() for w in pruned.get_weights()]
  x, y = batch
  adversarial.pgd(pruned, x, y, 0.1, steps=3)
  adversarial.fgsm(pruned, x, y, 0.1)
  assert [int(w.pruning_step.numpy()) for w in wrappers] == [5, 5, 5]
  for a, b in zip(before, pruned.get_weights()):
    np.testing.assert_array_equal(a, b)
  del digits


@pytest.mark.parametrize("call,match", [
    (lambda m, x, y: adversarial.fgsm(m, x, y, epsilon=-0.1),
     r"epsilon must be a number >= 0 .*got -0\.1"),
    (lambda m, x, y: adversarial.pgd(m, x, y, epsilon=-1),
     r"epsilon must be a number >= 0 .*got -1"),
    (lambda m, x, y: adversarial.pgd(m, x, y, 0.1, steps=0),
     "steps must be an integer >= 1, got 0"),
    (lambda m, x, y: adversarial.pgd(m, x, y, 0.1, norm="l1"),
     "norm must be one of"),
    (lambda m, x, y: adversarial.pgd(m, x, y, 0.1, step_size=-0.1),
     "step_size must be a number >= 0"),
    (lambda m, x, y: adversarial.fgsm(m, x, y, 0.1, clip_min=1.0,
                                      clip_max=0.0),
     "clip_min must be a number below clip_max"),
    (lambda m, x, y: adversarial.fgsm(m, x, y[:5], 0.1),
     "x and y must hold the same number of samples"),
    (lambda m, x, y: adversarial.fgsm(m, x, y.astype(np.float32), 0.1),
     "y must hold integer class labels"),
], ids=["fgsm-eps", "pgd-eps", "steps", "norm", "step-size", "range",
        "lengths", "float-labels"])
def test_bad_arguments_raise(model, batch, call, match):
  x, y = batch
  with pytest.raises(UserInputError, match=match):
    call(model, x, y)
