"""AdversarialModel and EpsilonWarmup: the loss by hand, robustness gained
on digits, pruning and distillation in the same fit, MirroredStrategy,
saving and clear errors (the example script runs in test_examples.py)."""

import json

import numpy as np
import pytest

import tf_compress
from tf_compress import adversarial
from tf_compress import distillation
from tf_compress import keras
from tf_compress import ModelError
from tf_compress import pruning
from tf_compress import UserInputError
from tf_compress._keras import tf

RATIO, EPSILON = 0.3, 0.2


def _loss():
  return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _linear(seed=0):
  rng = np.random.default_rng(seed)
  model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
  model.set_weights([rng.normal(size=(6, 4)).astype(np.float32),
                     rng.normal(size=4).astype(np.float32)])
  return model


def _batch():
  rng = np.random.default_rng(1)
  return (rng.uniform(0, 1, size=(8, 6)).astype(np.float32),
          rng.integers(0, 4, size=8).astype(np.int64))


def _fgsm_model(base, **kwargs):
  return adversarial.AdversarialModel(base, attack="fgsm", epsilon=EPSILON,
                                      ratio=RATIO, random_start=False,
                                      **kwargs)


def _ce(logits, y):
  return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
      y, logits))


def test_loss_equals_hand_computation():
  base = _linear()
  model = _fgsm_model(base)
  model.compile(keras.optimizers.SGD(0.0), _loss(), metrics=["accuracy"])
  x, y = _batch()
  x_adv = adversarial.fgsm(base, x, y, EPSILON)
  clean, adv = float(_ce(base(x), y)), float(_ce(base(x_adv), y))
  history = model.fit(x, y, batch_size=8, epochs=1, verbose=0).history
  assert history["clean_loss"][0] == pytest.approx(clean, rel=1e-5)
  assert history["adversarial_loss"][0] == pytest.approx(adv, rel=1e-5)
  assert history["loss"][0] == pytest.approx(
      (1 - RATIO) * clean + RATIO * adv, rel=1e-5)
  assert adv > clean
  adv_accuracy = np.mean(np.argmax(base(x_adv), -1) == y)
  assert history["adversarial_accuracy"][0] == pytest.approx(adv_accuracy)
  assert history["accuracy"][0] == pytest.approx(
      np.mean(np.argmax(base(x), -1) == y))
  # evaluate is on clean data only.
  assert model.evaluate(x, y, verbose=0, return_dict=True) == {
      "loss": pytest.approx(clean, rel=1e-5),
      "accuracy": pytest.approx(history["accuracy"][0])}


def test_gradient_step_matches_by_hand_and_under_mirrored(logical_cpus):
  del logical_cpus
  reference = _linear()
  x, y = _batch()
  x_adv = adversarial.fgsm(reference, x, y, EPSILON)
  with tf.GradientTape() as tape:
    total = ((1 - RATIO) * _ce(reference(x), y) +
             RATIO * _ce(reference(x_adv), y))
  grads = tape.gradient(total, reference.trainable_variables)
  expected = [v.numpy() - 0.5 * g.numpy()
              for v, g in zip(reference.trainable_variables, grads)]
  for name in ("default", "mirrored"):
    strategy = tf_compress.make_strategy(name, 2)
    with strategy.scope():
      model = _fgsm_model(_linear())
      model.compile(keras.optimizers.SGD(0.5), _loss())
    history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False,
                        verbose=0)
    assert history.history["loss"][0] == pytest.approx(float(total),
                                                       rel=1e-5)
    for want, have in zip(expected, model.base_model.get_weights()):
      np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-6)


# -- robustness gained on digits ---------------------------------------------

EPOCHS = 6


@pytest.fixture(scope="module")
def robust_pair(digits):
  """A baseline MLP and the same MLP trained with PGD-3 at eps 0.2."""
  tf_compress.set_seed(0)
  baseline = tf_compress.build_model("mlp", digits.input_shape, 10,
                                     keras_version=2)
  baseline.compile(keras.optimizers.Adam(3e-3), _loss(), metrics=["accuracy"])
  baseline.fit(digits.train(32), epochs=EPOCHS, verbose=0)
  model = adversarial.AdversarialModel(
      tf_compress.build_model("mlp", digits.input_shape, 10,
                              keras_version=2), attack="pgd",
      epsilon=0.2, steps=3, ratio=0.5, clip_min=digits.value_range[0],
      clip_max=digits.value_range[1])
  model.compile(keras.optimizers.Adam(3e-3), _loss(), metrics=["accuracy"])
  history = model.fit(digits.train(32), epochs=EPOCHS, verbose=0,
                      callbacks=[adversarial.EpsilonWarmup(epochs=2)])
  evaluate = dict(attacks=("pgd",), epsilons=(0.2,), pgd_steps=10)
  return {
      "model": model, "history": history.history,
      "baseline": adversarial.robust_accuracy(
          baseline, digits.x_test, digits.y_test, **evaluate),
      "adversarial": adversarial.robust_accuracy(
          model.base_model, digits.x_test, digits.y_test, **evaluate)}


def test_adversarial_training_raises_pgd_accuracy(robust_pair):
  baseline, robust = robust_pair["baseline"], robust_pair["adversarial"]
  assert baseline["clean"] > 0.9
  assert baseline["pgd@0.2"] < 0.1
  assert robust["clean"] > 0.85
  assert robust["pgd@0.2"] > 0.25
  assert robust["pgd@0.2"] > baseline["pgd@0.2"] + 0.2
  history = robust_pair["history"]
  assert history["epsilon"] == pytest.approx([0.1] + [0.2] * (EPOCHS - 1))
  assert history["adversarial_accuracy"][-1] > history[
      "adversarial_accuracy"][1]
  assert {"loss", "clean_loss", "adversarial_loss", "adversarial_accuracy",
          "accuracy", "epsilon"} == set(history)


def test_save_load_round_trip(robust_pair, digits, tmp_path):
  model = robust_pair["model"]
  config = model.get_config()
  assert json.loads(json.dumps(config))["epsilon"] == pytest.approx(0.2)
  assert keras.utils.get_registered_name(
      adversarial.AdversarialModel) == "tf_compress>AdversarialModel"
  model.save(tmp_path / "adversarial.keras")
  loaded = keras.models.load_model(tmp_path / "adversarial.keras")
  assert isinstance(loaded, adversarial.AdversarialModel)
  assert (loaded.attack, loaded.steps, loaded.ratio) == ("pgd", 3, 0.5)
  expected = model.predict(digits.x_test, verbose=0)
  np.testing.assert_array_equal(loaded.predict(digits.x_test, verbose=0),
                                expected)
  # The deployment path: the base model alone.
  tf_compress.save_model(model.base_model, tmp_path / "base.keras")
  base = tf_compress.load_model(tmp_path / "base.keras")
  np.testing.assert_array_equal(base.predict(digits.x_test, verbose=0),
                                expected)


# -- composition with pruning and distillation --------------------------------


def test_pruned_base_counts_one_step_per_batch(digits):
  base = pruning.prune_model(
      tf_compress.build_model("mlp", digits.input_shape, 10, width=0.5,
                              keras_version=2),
      pruning.PruningConfig(target_sparsity=0.6, schedule="polynomial",
                            end_step=20))
  model = adversarial.AdversarialModel(base, attack="pgd", epsilon=0.1,
                                       steps=3)
  model.compile(keras.optimizers.Adam(3e-3), _loss(), metrics=["accuracy"])
  history = model.fit(digits.train(32), epochs=2, steps_per_epoch=15,
                      verbose=0, callbacks=[pruning.PruningCallback()])
  steps = [int(w.pruning_step.numpy())
           for _, w in pruning.find_pruning_wrappers(model)]
  assert steps == [30, 30, 30]  # not 4 per batch: attacks run training=False
  assert int(model.optimizer.iterations.numpy()) == 30
  assert history.history["sparsity"][-1] == pytest.approx(0.6, abs=1e-3)
  export = pruning.strip_pruning(model.base_model)
  assert pruning.overall_sparsity(export) == pytest.approx(0.6, abs=1e-3)


def test_distillation_pruning_and_adversarial_in_one_mirrored_fit(
    logical_cpus, digits):
  del logical_cpus
  strategy = tf_compress.make_strategy("mirrored", 2)
  with strategy.scope():
    teacher = tf_compress.build_model("mlp", digits.input_shape, 10, seed=3,
                                      keras_version=2)
    student = pruning.prune_model(
        tf_compress.build_model("mlp", digits.input_shape, 10, width=0.25,
                                keras_version=2),
        pruning.PruningConfig(target_sparsity=0.5, end_step=10))
    distiller = distillation.Distiller(teacher, student, alpha=0.5)
    model = adversarial.AdversarialModel(distiller, attack="fgsm",
                                         epsilon=0.1)
    model.compile(keras.optimizers.Adam(3e-3), _loss(), metrics=["accuracy"])
  teacher_weights = [w.copy() for w in teacher.get_weights()]
  assert model.target_model is student
  data = distillation.cache_teacher_logits(teacher, digits.x_train,
                                           digits.y_train)
  history = model.fit(
      data, epochs=2, steps_per_epoch=10, verbose=0, callbacks=[
          pruning.PruningCallback(), adversarial.EpsilonWarmup(2),
          distillation.DistillationScheduler(2, end_temperature=1.0)])
  logs = history.history
  assert {"loss", "clean_loss", "adversarial_loss", "student_loss",
          "distillation_loss", "adversarial_accuracy", "accuracy",
          "sparsity", "epsilon", "temperature", "alpha"} <= set(logs)
  assert logs["epsilon"] == pytest.approx([0.05, 0.1])
  assert logs["temperature"] == pytest.approx([3.0, 1.0])
  assert logs["loss"][1] < logs["loss"][0]
  assert logs["sparsity"][-1] == pytest.approx(0.5, abs=1e-3)
  steps = [int(w.pruning_step.numpy())
           for _, w in pruning.find_pruning_wrappers(model)]
  assert steps == [20, 20, 20]
  for a, b in zip(teacher_weights, teacher.get_weights()):
    np.testing.assert_array_equal(a, b)


# -- EpsilonWarmup -------------------------------------------------------------


def test_warmup_hooks_and_config():
  model = adversarial.AdversarialModel(_linear(), epsilon=0.3)
  warmup = adversarial.EpsilonWarmup(epochs=3)
  warmup.set_model(model)
  warmup.on_train_begin()
  values, logs = [], {}
  for epoch in range(5):
    warmup.on_epoch_begin(epoch)
    values.append(float(model.epsilon.numpy()))
  warmup.on_epoch_end(4, logs)
  assert values == pytest.approx([0.1, 0.2, 0.3, 0.3, 0.3])
  assert logs == {"epsilon": pytest.approx(0.3)}
  explicit = adversarial.EpsilonWarmup(epochs=2, final_epsilon=0.5)
  explicit.set_model(model)
  explicit.on_train_begin()
  explicit.on_epoch_begin(0)
  assert float(model.epsilon.numpy()) == pytest.approx(0.25)
  config = explicit.get_config()
  assert config == {"epochs": 2, "final_epsilon": 0.5}
  restored = keras.utils.deserialize_keras_object(
      keras.utils.serialize_keras_object(explicit))
  assert isinstance(restored, adversarial.EpsilonWarmup)
  assert restored.get_config() == config


def test_warmup_errors():
  with pytest.raises(UserInputError, match="epochs must be an integer >= 1"):
    adversarial.EpsilonWarmup(epochs=0)
  with pytest.raises(UserInputError, match="final_epsilon must be a number "
                     ">= 0"):
    adversarial.EpsilonWarmup(epochs=2, final_epsilon=-0.1)
  with pytest.raises(ModelError, match="is not an AdversarialModel"):
    adversarial.EpsilonWarmup(epochs=2).set_model(_linear())


# -- clear errors -------------------------------------------------------------


@pytest.mark.parametrize("kwargs,match", [
    ({"epsilon": -0.1}, r"epsilon must be a number >= 0 .*got -0\.1"),
    ({"ratio": 0.0}, r"ratio must be in \(0, 1\]"),
    ({"ratio": 1.5}, r"ratio must be in \(0, 1\]"),
    ({"attack": "cw"}, "attack must be one of"),
    ({"attack": "fgsm", "norm": "l2"}, "attack='fgsm' is an L-inf attack"),
    ({"steps": 0}, "steps must be an integer >= 1"),
    ({"step_size": -1.0}, "step_size must be a number >= 0"),
    ({"clip_min": 1.0, "clip_max": 0.0}, "clip_min must be a number below"),
], ids=["epsilon", "ratio-0", "ratio-big", "attack", "fgsm-l2", "steps",
        "step-size", "range"])
def test_bad_arguments_raise(kwargs, match):
  with pytest.raises(UserInputError, match=match):
    adversarial.AdversarialModel(_linear(), **kwargs)


def test_compile_without_loss_raises():
  model = adversarial.AdversarialModel(_linear())
  model.compile("sgd")
  x, y = _batch()
  with pytest.raises(UserInputError, match="AdversarialModel .* was compiled "
                     "without a loss"):
    model.fit(x, y, epochs=1, verbose=0)
