"""Adversarial attacks, training and robustness of Keras 3 models: FGSM by
hand, the PGD ball, PGD beating FGSM, the training loss and step by hand
(also under MirroredStrategy), EpsilonWarmup, a natively pruned base keeping
its sparsity, a Keras 3 Distiller base (its loss by hand; with pruning and
the schedulers in one mirrored fit), robust accuracy on Keras and LiteRT,
saving, clear errors; all with the way to tfmot shut."""

import json

import keras
import numpy as np
import pytest

import tf_compress
from tf_compress import adversarial
from tf_compress import distillation
from tf_compress import export
from tf_compress import ModelError
from tf_compress import pruning
from tf_compress import UserInputError
from tf_compress import _tfmot
from tf_compress._keras import tf

RATIO, EPSILON = 0.3, 0.2
EVAL = dict(attacks=("fgsm", "pgd"), epsilons=(0.1,), pgd_steps=5)
N = 200


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


def _softmax(logits):
  p = np.exp(logits - logits.max(-1, keepdims=True))
  return p / p.sum(-1, keepdims=True)


def _ce(logits, y):
  """Mean sparse cross-entropy of numpy logits."""
  return float(np.mean(-np.log(_softmax(logits)[np.arange(len(y)), y])))


def _fgsm_model(base, **kwargs):
  return adversarial.AdversarialModel(base, attack="fgsm", epsilon=EPSILON,
                                      ratio=RATIO, random_start=False,
                                      **kwargs)


@pytest.fixture(scope="module", autouse=True)
def no_tfmot():
  """Every test here runs with the one door to tfmot shut.

  conftest imported tfmot already, so `sys.modules` cannot tell; instead
  the proxies' import fails and tfmot reads as not imported, as in a fresh
  Keras 3 process.
  """

  def refuse():
    raise AssertionError("a Keras 3 adversarial run reached tfmot")

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(_tfmot, "import_tfmot", refuse)
    patch.setattr(_tfmot, "tfmot_is_imported", lambda: False)
    yield


def test_the_guard_refuses_tfmot():
  with pytest.raises(AssertionError, match="reached tfmot"):
    _tfmot.tfmot.sparsity  # pylint: disable=pointless-statement


@pytest.fixture(scope="module")
def trained(digits):
  """A Keras 3 MLP trained on digits: 5 epochs, Adam 3e-3."""
  tf_compress.set_seed(0)
  net = tf_compress.build_model("mlp", digits.input_shape, digits.num_classes)
  net.compile(keras.optimizers.Adam(3e-3), _loss(), metrics=["accuracy"])
  net.fit(digits.x_train, digits.y_train, batch_size=32, epochs=5, verbose=0)
  return net


@pytest.fixture(scope="module")
def data(digits):
  return digits.x_test[:N], digits.y_test[:N]


@pytest.fixture(scope="module")
def examples(trained, data):
  return adversarial.craft_examples(trained, *data, **EVAL)


@pytest.fixture(scope="module")
def results(trained, data, examples):
  return adversarial.robust_accuracy(trained, *data, examples=examples,
                                     **EVAL)


# -- attacks -----------------------------------------------------------------


def test_fgsm_is_the_signed_gradient_step_of_a_linear_model():
  linear = _linear()
  w, b = linear.get_weights()
  rng = np.random.default_rng(2)
  x = rng.uniform(0.2, 0.8, size=(16, 6)).astype(np.float32)
  y = rng.integers(0, 4, size=16)
  gradient = (_softmax(x @ w + b) - np.eye(4)[y]) @ w.T  # d CE / d x
  expected = np.clip(x + 0.3 * np.sign(gradient), 0.0, 1.0)
  got = adversarial.fgsm(linear, x, y, epsilon=0.3).numpy()
  clear = np.abs(gradient) > 1e-5  # sign() of a near-zero is a coin toss
  assert clear.mean() > 0.99
  np.testing.assert_allclose(got[clear], expected[clear], atol=1e-6)
  # The inputs lie in [0.2, 0.8], so +-0.3 hits neither bound.
  assert np.abs(got - x).max() == pytest.approx(0.3, abs=1e-6)


@pytest.mark.parametrize("norm,epsilon,clip", [
    ("linf", 0.1, (0.0, 1.0)), ("linf", 0.3, (0.1, 0.9)),
    ("l2", 1.0, (0.0, 1.0))], ids=["linf", "linf-clip", "l2"])
def test_pgd_stays_within_epsilon_and_clip_range(trained, data, norm,
                                                 epsilon, clip):
  x, y = data
  x = np.clip(x[:64], *clip)
  x_adv = adversarial.pgd(trained, x, y[:64], epsilon, steps=5, norm=norm,
                          clip_min=clip[0], clip_max=clip[1], seed=3).numpy()
  delta = (x_adv - x).reshape(len(x), -1)
  size = (np.abs(delta).max(-1) if norm == "linf"
          else np.linalg.norm(delta, axis=-1))
  assert size.max() <= epsilon + 1e-5
  assert size.mean() > 0.5 * epsilon  # it moved
  assert x_adv.min() >= clip[0] and x_adv.max() <= clip[1]


def test_pgd_lowers_accuracy_more_than_fgsm(trained, data, results):
  x, y = data
  clean = np.mean(np.argmax(trained.predict(x, verbose=0), -1) == y)
  assert results["clean"] == pytest.approx(clean)
  assert results["clean"] > 0.9
  assert results["pgd@0.1"] < results["fgsm@0.1"] < results["clean"]
  assert results["catastrophic_overfitting"] is False


# -- the model ---------------------------------------------------------------


def test_the_same_call_builds_the_keras3_engine():
  model = _fgsm_model(_linear())
  assert type(model) is adversarial.Keras3AdversarialModel
  assert isinstance(model, keras.Model)
  assert isinstance(model, adversarial.AdversarialModel)
  assert issubclass(adversarial.Keras3AdversarialModel,
                    adversarial.AdversarialModel)
  assert adversarial.find_adversarial_model(model) is model
  assert (model.attack, model.ratio, model.steps) == ("fgsm", RATIO, 5)
  tf_keras_base = tf_compress.keras.Sequential([
      tf_compress.keras.Input((6,)), tf_compress.keras.layers.Dense(4)])
  tf_keras_model = adversarial.AdversarialModel(tf_keras_base)
  assert type(tf_keras_model) is adversarial.AdversarialModel
  assert not isinstance(tf_keras_model, adversarial.Keras3AdversarialModel)


def test_loss_equals_hand_computation():
  base = _linear()
  w, b = base.get_weights()
  model = _fgsm_model(base)
  model.compile(keras.optimizers.SGD(0.0), _loss(), metrics=["accuracy"])
  x, y = _batch()
  x_adv = adversarial.fgsm(base, x, y, EPSILON).numpy()
  clean, adv = _ce(x @ w + b, y), _ce(x_adv @ w + b, y)
  history = model.fit(x, y, batch_size=8, epochs=1, verbose=0).history
  assert history["clean_loss"][0] == pytest.approx(clean, rel=1e-5)
  assert history["adversarial_loss"][0] == pytest.approx(adv, rel=1e-5)
  assert history["loss"][0] == pytest.approx(
      (1 - RATIO) * clean + RATIO * adv, rel=1e-5)
  assert adv > clean + 0.1
  assert history["adversarial_accuracy"][0] == pytest.approx(
      np.mean(np.argmax(x_adv @ w + b, -1) == y))
  assert history["accuracy"][0] == pytest.approx(
      np.mean(np.argmax(x @ w + b, -1) == y))
  # evaluate is on clean data only.
  assert model.evaluate(x, y, verbose=0, return_dict=True) == {
      "loss": pytest.approx(clean, rel=1e-5),
      "accuracy": pytest.approx(history["accuracy"][0])}


def test_both_engines_train_the_same_weights(digits):
  """Same weights, batches and seed: PGD training with random starts gives
  the same model in Keras 3 as in tf_keras (tfmot's engine)."""
  tf_keras = tf_compress.keras
  start = tf_compress.build_model("mlp", digits.input_shape, 10,
                                  keras_version=2).get_weights()
  trained_weights, logs = {}, {}
  for version, module in ((2, tf_keras), (3, keras)):
    base = tf_compress.build_model("mlp", digits.input_shape, 10,
                                   keras_version=version)
    base.set_weights(start)
    tf_compress.set_seed(7)
    model = adversarial.AdversarialModel(base, attack="pgd", steps=2,
                                         epsilon=0.2)
    model.compile(module.optimizers.Adam(1e-3),
                  module.losses.SparseCategoricalCrossentropy(True))
    # One iterator (repeat + steps): both engines read the same batches.
    logs[version] = model.fit(
        digits.train(32, seed=3).repeat(), epochs=2, steps_per_epoch=4,
        verbose=0, callbacks=[adversarial.EpsilonWarmup(2)]).history
    trained_weights[version] = base.get_weights()
  assert type(model) is adversarial.Keras3AdversarialModel
  for key in ("loss", "clean_loss", "adversarial_loss", "epsilon"):
    np.testing.assert_allclose(logs[3][key], logs[2][key], rtol=1e-6)
  for a, b in zip(trained_weights[2], trained_weights[3]):
    np.testing.assert_allclose(b, a, atol=1e-6)
  assert not np.allclose(trained_weights[3][0], start[0])


def test_gradient_step_matches_by_hand_and_under_mirrored(logical_cpus):
  del logical_cpus
  reference = _linear()
  x, y = _batch()
  x_adv = adversarial.fgsm(reference, x, y, EPSILON)
  with tf.GradientTape() as tape:
    ce = lambda z: tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(y, reference(z)))
    total = (1 - RATIO) * ce(x) + RATIO * ce(x_adv)
  grads = tape.gradient(total, reference.trainable_variables)
  expected = [v.numpy() - 0.5 * g.numpy()
              for v, g in zip(reference.trainable_variables, grads)]
  robust = {}
  for name in ("default", "mirrored"):
    strategy = tf_compress.make_strategy(name, 2)
    with strategy.scope():
      model = _fgsm_model(_linear())
      model.compile(keras.optimizers.SGD(0.5), _loss())
    assert model.distribute_strategy.num_replicas_in_sync == (
        2 if name == "mirrored" else 1)
    history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False,
                        verbose=0)
    assert history.history["loss"][0] == pytest.approx(float(total),
                                                       rel=1e-5)
    for want, have in zip(expected, model.base_model.get_weights()):
      np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-6)
    robust[name] = adversarial.robust_accuracy(
        model.base_model, x, y, epsilons=(0.2,), pgd_steps=3)
  # The attack runs inside the strategy of a model built under one.
  assert robust["mirrored"] == robust["default"]


def test_epsilon_warmup_sets_epsilon_per_epoch():
  model = adversarial.AdversarialModel(_linear(), attack="pgd", steps=2,
                                       epsilon=0.3)
  callback = adversarial.EpsilonWarmup(epochs=3)
  assert isinstance(callback, keras.callbacks.Callback)
  callback.set_model(model)
  callback.on_train_begin()
  seen = []
  for epoch in range(4):
    callback.on_epoch_begin(epoch)
    logs = {}
    callback.on_epoch_end(epoch, logs)
    seen.append(logs["epsilon"])
  np.testing.assert_allclose(seen, [0.1, 0.2, 0.3, 0.3], rtol=1e-6)
  # A real fit, with the final epsilon given.
  model.compile(keras.optimizers.SGD(0.1), _loss())
  history = model.fit(*_batch(), batch_size=4, epochs=3, verbose=0,
                      callbacks=[adversarial.EpsilonWarmup(2, 0.2)]).history
  np.testing.assert_allclose(history["epsilon"], [0.1, 0.2, 0.2], rtol=1e-6)
  # Serialized by Keras 3, under the package name.
  config = keras.saving.serialize_keras_object(callback)
  assert config["registered_name"] == "tf_compress>EpsilonWarmup"
  again = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)))
  assert again.get_config() == {"epochs": 3, "final_epsilon": None}
  with pytest.raises(ModelError, match="not an AdversarialModel"):
    adversarial.EpsilonWarmup(2).set_model(_linear())


def test_pruned_base_keeps_its_sparsity_and_gains_robustness(
    digits, trained, data, results):
  steps = int(np.ceil(len(digits.x_train) / 32))
  base = pruning.prune_model(trained, pruning.PruningConfig(
      target_sparsity=0.5, frequency=steps), steps_per_epoch=steps)
  model = adversarial.AdversarialModel(base, attack="pgd", steps=3,
                                       epsilon=0.2)
  model.compile(keras.optimizers.Adam(3e-3), _loss(), metrics=["accuracy"])
  history = model.fit(digits.x_train, digits.y_train, batch_size=32,
                      epochs=2, verbose=0, callbacks=[
                          pruning.PruningCallback(),
                          adversarial.EpsilonWarmup(1)]).history
  np.testing.assert_allclose(history["sparsity"], 0.5, atol=0.01)
  stripped = pruning.strip_pruning(model.base_model)
  kernels = [v.numpy() for v in stripped.trainable_variables
             if "kernel" in v.path]
  zeros = sum(int((k == 0).sum()) for k in kernels)
  assert zeros / sum(k.size for k in kernels) == pytest.approx(0.5, abs=0.01)
  x, y = data
  before = adversarial.robust_accuracy(trained, x, y, attacks=("pgd",),
                                       epsilons=(0.2,), pgd_steps=5)
  after = adversarial.robust_accuracy(stripped, x, y, attacks=("pgd",),
                                      epsilons=(0.2,), pgd_steps=5)
  assert before["clean"] == results["clean"]  # the original is untouched
  assert after["pgd@0.2"] > before["pgd@0.2"] + 0.15  # measured 0.015 -> 0.22
  assert after["clean"] > 0.85


def test_robust_accuracy_on_litert_agrees_in_direction(
    digits, trained, data, examples, results, tmp_path):
  for mode, kwargs in (("float32", {}),
                       ("int8", {"representative_data": digits.x_train})):
    path = tmp_path / f"{mode}.tflite"
    export.export_tflite(trained, path, mode, **kwargs)
    out = adversarial.robust_accuracy_tflite(path, trained, *data,
                                             examples=examples, **EVAL)
    assert out["keras_clean"] == pytest.approx(results["clean"])
    assert out["pgd@0.1"] < out["fgsm@0.1"] < out["clean"], mode
    if mode == "float32":
      assert out["agreement"] >= 0.99
      for key in ("clean", "fgsm@0.1", "pgd@0.1"):
        assert out[key] == pytest.approx(results[key], abs=0.02), key
    else:
      assert out["clean"] > 0.85 and out["agreement"] > 0.9
      assert out["pgd@0.1"] == pytest.approx(results["pgd@0.1"], abs=0.15)


def test_save_load_round_trip(trained, data, tmp_path):
  base = keras.models.clone_model(trained)
  base.set_weights(trained.get_weights())
  model = adversarial.AdversarialModel(base, attack="pgd", steps=3,
                                       ratio=0.5, epsilon=0.15)
  model.compile(keras.optimizers.Adam(1e-3), _loss())
  x, y = data
  model.fit(x[:64], y[:64], batch_size=64, epochs=1, verbose=0)
  want = np.asarray(model.base_model(x))
  assert not np.allclose(want, np.asarray(trained(x)))  # it trained
  json.dumps(model.get_config())  # JSON-safe
  model.base_model.save(tmp_path / "base.keras")
  inner = keras.models.load_model(tmp_path / "base.keras")
  np.testing.assert_allclose(np.asarray(inner(x)), want, rtol=1e-6,
                             atol=1e-6)
  model.save(tmp_path / "adversarial.keras")
  loaded = keras.models.load_model(tmp_path / "adversarial.keras")
  assert type(loaded) is adversarial.Keras3AdversarialModel
  assert (loaded.attack, loaded.steps, loaded.ratio) == ("pgd", 3, 0.5)
  assert float(loaded.epsilon.numpy()) == pytest.approx(0.15)
  np.testing.assert_allclose(np.asarray(loaded(x)), want, rtol=1e-6,
                             atol=1e-6)


# -- a Distiller base ----------------------------------------------------------


def _log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_distiller_base_loss_equals_hand_computation():
  alpha, temperature = 0.4, 2.0
  teacher, student = _linear(seed=5), _linear(seed=6)
  distiller = distillation.Distiller(teacher, student, alpha=alpha,
                                     temperature=temperature)
  model = _fgsm_model(distiller)
  assert type(model) is adversarial.Keras3AdversarialModel
  assert model.target_model is student
  model.compile(keras.optimizers.SGD(0.0), _loss(), metrics=["accuracy"])
  x, y = _batch()
  x_adv = adversarial.fgsm(student, x, y, EPSILON).numpy()  # on the student
  (tw, tb), (sw, sb) = teacher.get_weights(), student.get_weights()
  log_pt = _log_softmax((x @ tw + tb) / temperature)  # clean inputs only

  def terms(inputs):
    logits = inputs @ sw + sb
    log_ps = _log_softmax(logits / temperature)
    soft = np.mean(np.sum(np.exp(log_pt) * (log_pt - log_ps), -1))
    soft *= temperature**2
    hard = _ce(logits, y)
    return hard, soft, alpha * hard + (1 - alpha) * soft

  clean, adv = terms(x), terms(x_adv)
  mix = lambda i: (1 - RATIO) * clean[i] + RATIO * adv[i]
  logs = model.fit(x, y, batch_size=8, epochs=1, verbose=0).history
  assert logs["clean_loss"][0] == pytest.approx(clean[2], rel=1e-5)
  assert logs["adversarial_loss"][0] == pytest.approx(adv[2], rel=1e-5)
  assert logs["loss"][0] == pytest.approx(mix(2), rel=1e-5)
  assert logs["student_loss"][0] == pytest.approx(mix(0), rel=1e-5)
  assert logs["distillation_loss"][0] == pytest.approx(mix(1), rel=1e-5)
  assert adv[2] > clean[2]
  evaluated = model.evaluate(x, y, verbose=0, return_dict=True)
  assert set(evaluated) == {"loss", "student_loss", "distillation_loss",
                            "accuracy"}
  assert evaluated["loss"] == pytest.approx(clean[2], rel=1e-5)


def test_distillation_pruning_and_adversarial_in_one_mirrored_fit(
    logical_cpus, digits):
  del logical_cpus
  strategy = tf_compress.make_strategy("mirrored", 2)
  with strategy.scope():
    teacher = tf_compress.build_model("mlp", digits.input_shape, 10, seed=3)
    student = pruning.prune_model(
        tf_compress.build_model("mlp", digits.input_shape, 10, width=0.25),
        pruning.PruningConfig(target_sparsity=0.5, end_step=10))
    distiller = distillation.Distiller(teacher, student, alpha=0.5)
    model = adversarial.AdversarialModel(distiller, attack="fgsm",
                                         epsilon=0.1)
    model.compile(keras.optimizers.Adam(3e-3), _loss(), metrics=["accuracy"])
  teacher_weights = [w.copy() for w in teacher.get_weights()]
  assert model.target_model is student
  assert distillation.find_distiller(model) is distiller
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
  assert logs["sparsity"][-1] == pytest.approx(0.5, abs=1e-2)
  assert int(model.optimizer.iterations.numpy()) == 20
  for a, b in zip(teacher_weights, teacher.get_weights()):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs,match", [
    ({"attack": "cw"}, "attack must be one of"),
    ({"epsilon": -0.1}, "epsilon must be a number >= 0"),
    ({"ratio": 0.0}, r"ratio must be in \(0, 1\]"),
    ({"steps": 0}, "steps must be an integer >= 1"),
    ({"attack": "fgsm", "norm": "l2"}, "attack='fgsm' is an L-inf attack"),
    ({"clip_min": 1.0, "clip_max": 0.0}, "clip_min must be a number below"),
], ids=["attack", "epsilon", "ratio", "steps", "fgsm-l2", "range"])
def test_bad_arguments_raise(kwargs, match):
  with pytest.raises(UserInputError, match=match):
    adversarial.AdversarialModel(_linear(), **kwargs)


def test_compile_without_loss_raises():
  model = adversarial.AdversarialModel(_linear())
  model.compile("sgd")
  with pytest.raises(UserInputError, match="AdversarialModel .* was compiled "
                     "without a loss"):
    model.fit(*_batch(), epochs=1, verbose=0)
