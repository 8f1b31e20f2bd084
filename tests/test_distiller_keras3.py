"""The Keras 3 Distiller: the loss by hand, a frozen teacher, cached teacher
outputs, pruned and QAT students in one fit, the scheduler, saving, and
MirroredStrategy."""

import contextlib
import json

import keras
import numpy as np
import pytest
import tf_keras
from ai_edge_litert.interpreter import Interpreter

import tf_compress as tfc
from tf_compress import distillation
from tf_compress import pruning
from tf_compress import quantization
from tf_compress import UserInputError
from tf_compress._keras import tf

ALPHA, TEMPERATURE, FEATURE_WEIGHT = 0.3, 2.5, 0.5


def _loss():
  return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _dense_model(name, sizes, seed, softmax=False):
  rng = np.random.default_rng(seed)
  layers = [keras.Input((4,))]
  for index, units in enumerate(sizes):
    layers.append(keras.layers.Dense(units, name=f"{name}_{index}"))
  if softmax:
    layers.append(keras.layers.Softmax(name=f"{name}_softmax"))
  model = keras.Sequential(layers, name=name)
  model.set_weights([rng.normal(size=w.shape).astype(np.float32)
                     for w in model.get_weights()])
  return model


def _tiny_distiller(teacher_outputs="logits", features=True):
  teacher = _dense_model("teacher", (3, 3), 1,
                         softmax=teacher_outputs == "probabilities")
  student = _dense_model("student", (2, 3), 2)
  distiller = distillation.Distiller(
      teacher, student, alpha=ALPHA, temperature=TEMPERATURE,
      teacher_outputs=teacher_outputs,
      feature_pairs=[("teacher_0", "student_0")] if features else None,
      feature_weight=FEATURE_WEIGHT)
  if features:  # a 2 -> 3 channel projection, with known weights
    projection = distiller.projections[0]
    rng = np.random.default_rng(3)
    projection.set_weights([rng.normal(size=w.shape).astype(np.float32)
                            for w in projection.get_weights()])
  return distiller


def _batch():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(8, 4)).astype(np.float32)
  y = np.array([0, 1, 2, 0, 1, 2, 2, 1], np.int64)
  w = np.array([1.0, 0.5, 2.0, 1.0, 0.0, 1.5, 1.0, 1.0], np.float32)
  return x, y, w


def _log_softmax(z):
  z = z - z.max(axis=-1, keepdims=True)
  return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _soft(t_logits, s_logits, temperature, w=None):
  log_pt = _log_softmax(t_logits / temperature)
  log_ps = _log_softmax(s_logits / temperature)
  kl = np.sum(np.exp(log_pt) * (log_pt - log_ps), axis=-1)
  w = np.ones(len(kl)) if w is None else w
  return np.mean(kl * w) * temperature**2


def _expected(distiller, x, y, w):
  """The Distiller's losses, in numpy from the models' weights."""
  t1, tb1, t2, tb2 = distiller.teacher.get_weights()
  s1, sb1, s2, sb2 = distiller.student.get_weights()
  t_feat = x @ t1 + tb1
  # A softmax teacher's log-probabilities differ from its logits by a
  # constant per row, which the soft loss ignores.
  t_logits = t_feat @ t2 + tb2
  s_feat = x @ s1 + sb1
  s_logits = s_feat @ s2 + sb2
  hard = np.mean(-_log_softmax(s_logits)[np.arange(len(y)), y] * w)
  soft = _soft(t_logits, s_logits, TEMPERATURE, w)
  p, pb = distiller.projections[0].get_weights()
  feature = np.mean(np.mean((t_feat - (s_feat @ p + pb))**2, axis=-1) * w)
  total = ALPHA * hard + (1 - ALPHA) * soft + FEATURE_WEIGHT * feature
  return {"loss": total, "student_loss": hard, "distillation_loss": soft,
          "feature_loss": feature}


# -- the engine --------------------------------------------------------------


def test_distiller_call_builds_the_keras3_engine():
  distiller = _tiny_distiller(features=False)
  assert isinstance(distiller, distillation.Keras3Distiller)
  assert isinstance(distiller, keras.Model)
  assert isinstance(distiller, distillation.Distiller)
  assert issubclass(distillation.Keras3Distiller, distillation.Distiller)
  assert not isinstance(distiller.student, distillation.Distiller)
  assert distillation.find_distiller(distiller) is distiller
  x, _, _ = _batch()
  np.testing.assert_array_equal(distiller.predict(x, verbose=0),
                                distiller.student.predict(x, verbose=0))


@pytest.mark.parametrize("teacher_outputs", ["logits", "probabilities"])
def test_loss_equals_hand_computation(teacher_outputs):
  distiller = _tiny_distiller(teacher_outputs)
  distiller.compile(keras.optimizers.SGD(0.0), _loss(), jit_compile=False)
  x, y, w = _batch()
  expected = _expected(distiller, x, y, w)
  got = distiller.evaluate(x, y, sample_weight=w, batch_size=8, verbose=0,
                           return_dict=True)
  assert set(got) == set(expected)
  for key, value in expected.items():
    assert got[key] == pytest.approx(value, rel=1e-5), key
  # The train step computes the same losses (learning rate 0).
  history = distiller.fit(x, y, sample_weight=w, batch_size=8, epochs=1,
                          verbose=0)
  for key, value in expected.items():
    assert history.history[key][0] == pytest.approx(value, rel=1e-5), key


def _one_sgd_step(strategy):
  with strategy.scope():
    distiller = _tiny_distiller()
    distiller.compile(keras.optimizers.SGD(0.5), _loss(), jit_compile=False)
  x, y, w = _batch()
  expected = _expected(distiller, x, y, w)["loss"]
  teacher_before = distiller.teacher.get_weights()
  student_before = distiller.student.get_weights()
  history = distiller.fit(x, y, sample_weight=w, batch_size=8, epochs=1,
                          shuffle=False, verbose=0)
  assert history.history["loss"][0] == pytest.approx(expected, rel=1e-5)
  for before, after in zip(teacher_before, distiller.teacher.get_weights()):
    np.testing.assert_array_equal(before, after)  # the teacher is frozen
  moved = [np.abs(b - a).max() for b, a in
           zip(student_before, distiller.student.get_weights())]
  assert min(moved) > 1e-3, moved
  return distiller


def test_one_step_freezes_teacher_and_matches_under_mirrored(logical_cpus):
  """Gradients are summed over replicas: the same step on 2 replicas."""
  del logical_cpus
  default = _one_sgd_step(tfc.make_strategy("default"))
  mirrored = _one_sgd_step(tfc.make_strategy("mirrored", 2))
  for a, b in zip(default.get_weights(), mirrored.get_weights()):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_cached_teacher_gives_the_live_first_step_loss():
  x = np.random.default_rng(5).normal(size=(32, 4)).astype(np.float32)
  y = np.arange(32) % 3
  teacher = _dense_model("teacher", (3, 3), 1)
  cached = distillation.cache_teacher_logits(teacher, x, y, batch_size=16,
                                             shuffle=False)
  outputs = np.concatenate([t[distillation.TEACHER_KEY].numpy()
                            for _, t in cached])
  np.testing.assert_allclose(outputs, teacher.predict(x, verbose=0),
                             rtol=1e-6)

  def first_step_loss(data, **fit_args):
    distiller = distillation.Distiller(
        teacher, _dense_model("student", (2, 3), 2), alpha=ALPHA,
        temperature=TEMPERATURE)
    distiller.compile(keras.optimizers.SGD(0.1), _loss(), jit_compile=False)
    history = distiller.fit(data, epochs=1, steps_per_epoch=1, verbose=0,
                            **fit_args)
    return history.history["distillation_loss"][0]

  live = first_step_loss(x, y=y, batch_size=16, shuffle=False)
  # Zero the teacher: were it run, the soft targets would be uniform.
  teacher.set_weights([np.zeros_like(v) for v in teacher.get_weights()])
  assert first_step_loss(cached, shuffle=False) == pytest.approx(
      live, rel=1e-6)
  assert first_step_loss(x, y=y, batch_size=16, shuffle=False) != (
      pytest.approx(live, rel=1e-2))


# -- pruned and QAT students -------------------------------------------------


def _cnn(name, filters, seed):
  keras.utils.set_random_seed(seed)
  inputs = keras.Input((8, 8, 1))
  x = keras.layers.Conv2D(filters, 3, activation="relu",
                          name=f"{name}_conv")(inputs)
  x = keras.layers.Flatten()(x)
  x = keras.layers.Dense(16, activation="relu", name=f"{name}_fc")(x)
  outputs = keras.layers.Dense(10, name=f"{name}_logits")(x)
  return keras.Model(inputs, outputs, name=name)


@pytest.fixture(scope="module")
def teacher(digits):
  model = _cnn("teacher", 8, 0)
  model.compile(keras.optimizers.Adam(3e-3), _loss(), jit_compile=False)
  model.fit(digits.x_train[:512], digits.y_train[:512], batch_size=32,
            epochs=2, verbose=0)
  return model


@pytest.fixture(scope="module")
def pruned_run(teacher, digits):
  """A 50%-pruned student distilled for 3 epochs, with the scheduler."""
  config = pruning.PruningConfig(0.5, schedule="polynomial", end_epoch=2,
                                 frequency=4)
  student = pruning.prune_model(_cnn("student", 4, 1), config,
                                steps_per_epoch=16)
  distiller = distillation.Distiller(teacher, student, alpha=0.2,
                                     temperature=4.0)
  distiller.compile(keras.optimizers.Adam(3e-3), _loss(),
                    metrics=["accuracy"], jit_compile=False)
  teacher_before = teacher.get_weights()
  history = distiller.fit(
      digits.x_train[:512], digits.y_train[:512], batch_size=32, epochs=3,
      verbose=0, callbacks=[
          pruning.PruningCallback(),
          distillation.DistillationScheduler(
              3, start_temperature=4.0, end_temperature=2.0,
              end_alpha=0.6)])
  return distiller, history, teacher_before


def test_pruned_student_reaches_half_sparsity(pruned_run, digits):
  distiller, history, teacher_before = pruned_run
  assert history.history["sparsity"][-1] == pytest.approx(0.5, abs=1e-3)
  stripped = pruning.strip_pruning(distiller.student)
  assert pruning.overall_sparsity(stripped) == pytest.approx(0.5, abs=1e-3)
  np.testing.assert_allclose(stripped.predict(digits.x_test, verbose=0),
                             distiller.predict(digits.x_test, verbose=0),
                             rtol=1e-5, atol=1e-5)
  for before, after in zip(teacher_before, distiller.teacher.get_weights()):
    np.testing.assert_array_equal(before, after)
  accuracy = np.mean(stripped.predict(digits.x_test, verbose=0).argmax(1) ==
                     digits.y_test)
  assert accuracy > 0.3, accuracy  # chance is 0.1


def test_scheduler_anneals_per_epoch_in_fit(pruned_run):
  _, history, _ = pruned_run
  assert history.history["temperature"] == pytest.approx([4.0, 3.0, 2.0])
  assert history.history["alpha"] == pytest.approx([0.2, 0.4, 0.6])


def test_saved_student_loads_and_predicts_the_same(pruned_run, digits,
                                                   tmp_path):
  stripped = pruning.strip_pruning(pruned_run[0].student)
  path = tmp_path / "student.keras"
  stripped.save(path)
  loaded = keras.saving.load_model(path)
  assert not isinstance(loaded, distillation.Distiller)
  np.testing.assert_array_equal(loaded.predict(digits.x_test, verbose=0),
                                stripped.predict(digits.x_test, verbose=0))
  assert pruning.overall_sparsity(loaded) == pytest.approx(0.5, abs=1e-3)


def _litert_logits(path, x):
  interpreter = Interpreter(model_path=str(path))
  detail = interpreter.get_input_details()[0]
  interpreter.resize_tensor_input(detail["index"], x.shape)
  interpreter.allocate_tensors()
  interpreter.set_tensor(detail["index"], x.astype(np.float32))
  interpreter.invoke()
  return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def test_qat_student_exports_to_all_int8(teacher, digits, tmp_path):
  qat = quantization.quantize_model(_cnn("qat_student", 4, 2))
  distiller = distillation.Distiller(teacher, qat, alpha=0.2,
                                     temperature=3.0)
  distiller.compile(keras.optimizers.Adam(3e-3), _loss(), jit_compile=False)
  history = distiller.fit(digits.x_train[:512], digits.y_train[:512],
                          batch_size=32, epochs=2, verbose=0,
                          callbacks=[quantization.QATFreezeCallback(1)])
  assert history.history["qat_frozen"] == [0.0, 1.0]
  path = tmp_path / "student_int8.tflite"
  info = tfc.export.export_tflite(distiller.student, str(path), "int8")
  assert info["kernel_dtypes"] == {"int8": 3}
  ops = set(info["ops"])
  assert {"CONV_2D", "FULLY_CONNECTED"} <= ops
  assert ops <= {"CONV_2D", "FULLY_CONNECTED", "RESHAPE", "SHAPE",
                 "STRIDED_SLICE", "PACK", "QUANTIZE", "DEQUANTIZE"}, ops
  lite = _litert_logits(path, digits.x_test).argmax(1)
  keras_top = distiller.predict(digits.x_test, verbose=0).argmax(1)
  assert np.mean(lite == keras_top) >= 0.95
  assert np.mean(keras_top == digits.y_test) > 0.3  # chance is 0.1


# -- the scheduler -----------------------------------------------------------


def test_scheduler_is_a_callback_of_both_kerases_and_round_trips():
  scheduler = distillation.DistillationScheduler(
      epochs=4, end_temperature=1.5, start_alpha=0.2, end_alpha=0.6)
  assert isinstance(scheduler, keras.callbacks.Callback)
  assert isinstance(scheduler, tf_keras.callbacks.Callback)
  config = scheduler.get_config()
  assert json.loads(json.dumps(config)) == config
  restored = keras.saving.deserialize_keras_object(
      keras.saving.serialize_keras_object(scheduler))
  assert isinstance(restored, distillation.DistillationScheduler)
  assert restored.get_config() == config
  assert keras.saving.get_registered_name(
      distillation.DistillationScheduler) == (
          "tf_compress>DistillationScheduler")


def test_annealed_temperature_reaches_the_compiled_step():
  """Learning rate 0: each epoch's soft loss is at that epoch's T."""
  distiller = _tiny_distiller(features=False)
  distiller.compile(keras.optimizers.SGD(0.0), _loss(), jit_compile=False)
  x, y, _ = _batch()
  history = distiller.fit(
      x, y, batch_size=8, epochs=3, shuffle=False, verbose=0,
      callbacks=[distillation.DistillationScheduler(
          epochs=3, start_temperature=1.0, end_temperature=5.0,
          end_alpha=0.9)])
  teacher = distiller.teacher.predict(x, verbose=0)
  student = distiller.student.predict(x, verbose=0)
  expected = [_soft(teacher, student, t) for t in (1.0, 3.0, 5.0)]
  assert history.history["temperature"] == [1.0, 3.0, 5.0]
  assert history.history["alpha"] == pytest.approx([ALPHA, 0.6, 0.9])
  np.testing.assert_allclose(history.history["distillation_loss"], expected,
                             rtol=1e-5)
  assert len(set(np.round(expected, 4))) == 3  # the temperature matters


# -- saving, errors, the helpers AdversarialModel uses -----------------------


def test_distiller_save_load_round_trip(tmp_path):
  distiller = _tiny_distiller()
  distiller.compile(keras.optimizers.SGD(0.1), _loss(), jit_compile=False)
  x, y, w = _batch()
  distiller.fit(x, y, sample_weight=w, batch_size=8, epochs=1, verbose=0)
  distiller.temperature.assign(1.75)
  config = json.loads(json.dumps(distiller.get_config()))  # JSON-safe
  assert config["temperature"] == 1.75
  assert config["alpha"] == pytest.approx(ALPHA)
  path = tmp_path / "distiller.keras"
  distiller.save(path)
  loaded = keras.saving.load_model(path)
  assert isinstance(loaded, distillation.Distiller)
  assert json.loads(json.dumps(loaded.get_config())) == config
  assert float(loaded.temperature.numpy()) == 1.75
  for a, b in zip(distiller.get_weights(), loaded.get_weights()):
    np.testing.assert_array_equal(a, b)
  got = loaded.evaluate(x, y, sample_weight=w, batch_size=8, verbose=0,
                        return_dict=True)
  want = distiller.evaluate(x, y, sample_weight=w, batch_size=8, verbose=0,
                            return_dict=True)
  assert got == pytest.approx(want, rel=1e-6)


def test_clear_errors():
  x, y, _ = _batch()
  with pytest.raises(UserInputError, match="alpha must be in"):
    distillation.Distiller(_dense_model("t", (3,), 0),
                           _dense_model("s", (3,), 1), alpha=1.5)
  with pytest.raises(UserInputError, match="output shape .3,. differs from "
                     "the student's .4,."):
    distillation.Distiller(_dense_model("t", (3,), 0),
                           _dense_model("s", (4,), 1))
  with pytest.raises(UserInputError, match="has no layer named 'nope'"):
    distillation.Distiller(_dense_model("t", (3,), 0),
                           _dense_model("s", (3,), 1),
                           feature_pairs=[("t_0", "nope")])
  distiller = _tiny_distiller()
  distiller.compile("sgd", _loss())
  cached = distillation.cache_teacher_logits(distiller.teacher, x, y)
  with pytest.raises(UserInputError, match="cached teacher outputs hold no "
                     "features"):
    distiller.fit(cached, epochs=1, verbose=0)
  distiller = _tiny_distiller("probabilities", features=False)
  distiller.teacher_outputs = "logits"
  distiller.compile("sgd", _loss())
  with pytest.raises(UserInputError, match="pass teacher_outputs="
                     "'probabilities'"):
    distiller.fit(x, y, epochs=1, verbose=0)
  distiller = _tiny_distiller(features=False)
  distiller.compile("sgd")
  with pytest.raises(UserInputError, match="compiled without a loss"):
    distiller.fit(x, y, epochs=1, verbose=0)


def test_replica_mean_loss_undoes_keras3_replica_scaling(logical_cpus):
  del logical_cpus
  x, y, w = _batch()
  model = _dense_model("s", (3,), 1)
  logits = model.predict(x, verbose=0)
  plain = float(np.mean(-_log_softmax(logits)[np.arange(len(y)), y] * w))
  strategy = tfc.make_strategy("mirrored", 2)
  with strategy.scope():
    model.compile("sgd", _loss())
  distillation.check_compiled_loss(model)
  assert float(distillation.replica_mean_loss(model, y, logits, w)) == (
      pytest.approx(plain, rel=1e-6))
  per_replica = strategy.run(lambda: distillation.replica_mean_loss(
      model, tf.constant(y), tf.constant(logits), tf.constant(w)))
  values = [float(v) for v in strategy.experimental_local_results(
      per_replica)]
  assert values == pytest.approx([plain, plain], rel=1e-6)


# -- ConsistentAugmentation: the same views for teacher and student ----------


def test_make_views_by_hand():
  x = np.arange(18, dtype=np.float32).reshape(2, 3, 3, 1)
  noise = np.zeros_like(x)
  noise[1, 2, 2, 0] = 0.5
  views = np.asarray(distillation.make_views(
      x, partner=np.array([1, 0]), share=np.array([0.25, 1.0], np.float32),
      offsets=np.array([[1, 0], [0, -1]]), shift=1, noise=noise))[..., 0]
  # Image 0: 0.25 * x0 + 0.75 * x1, then out[r, c] = in[r + 1, c].
  np.testing.assert_array_equal(views[0], [[9.75, 10.75, 11.75],
                                           [12.75, 13.75, 14.75],
                                           [0.0, 0.0, 0.0]])
  # Image 1: itself (share 1), out[r, c] = in[r, c - 1], plus the noise.
  np.testing.assert_array_equal(views[1], [[0.0, 9.0, 10.0],
                                           [0.0, 12.0, 13.0],
                                           [0.0, 15.0, 16.5]])


def test_augmentation_is_seeded_and_draws_valid_views():
  x = np.random.default_rng(0).uniform(size=(16, 5, 5, 1)).astype(
      np.float32)
  config = dict(mixup=1.0, shift=2, noise=0.1, seed=7)
  a = distillation.ConsistentAugmentation(**config)
  b = distillation.ConsistentAugmentation(**config)
  partner, share, offsets, noise = (np.asarray(t) for t in a.draw(x))
  assert sorted(partner) == list(range(16))  # a permutation of the batch
  assert 0 <= share.min() and share.max() <= 1 and share.std() > 0.1
  assert offsets.min() == -2 and offsets.max() == 2
  assert noise.shape == x.shape and 0.05 < noise.std() < 0.15
  b.draw(x)  # b's state now equals a's
  first_a, first_b = a(x, training=True), b(x, training=True)
  for got, want in zip(first_a, first_b):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  second = np.asarray(a(x, training=True)[0])
  assert np.abs(second - np.asarray(first_a[0])).max() > 0.1  # advances
  other = distillation.ConsistentAugmentation(**dict(config, seed=8))
  other.draw(x)
  assert np.abs(np.asarray(other(x, training=True)[0]) -
                np.asarray(first_a[0])).max() > 0.1
  # Outside training: the inputs themselves, no draw.
  state = np.asarray(a.seed_generator.state)
  views, partner, share = a(x, training=False)
  np.testing.assert_array_equal(np.asarray(views), x)
  assert partner is None and share is None
  np.testing.assert_array_equal(np.asarray(a.seed_generator.state), state)


def _augmented_expected(distiller, x, y, w, partner, share, noise):
  """Losses of one augmented step in numpy (mixup and noise, no shift)."""
  views = share[:, None] * x + (1 - share[:, None]) * x[partner] + noise
  t1, tb1, t2, tb2 = distiller.teacher.get_weights()
  s1, sb1, s2, sb2 = distiller.student.get_weights()
  t_logits = (views @ t1 + tb1) @ t2 + tb2
  s_logits = (views @ s1 + sb1) @ s2 + sb2
  log_p = _log_softmax(s_logits)
  rows = np.arange(len(y))
  hard = np.mean(w * (share * -log_p[rows, y] +
                      (1 - share) * -log_p[rows, y[partner]]))
  soft = _soft(t_logits, s_logits, TEMPERATURE, w)
  return hard, soft


def _augmented_distiller(alpha, augmentation, strategy=None):
  with strategy.scope() if strategy else contextlib.nullcontext():
    distiller = distillation.Distiller(
        _dense_model("teacher", (3, 3), 1), _dense_model("student", (2, 3), 2),
        alpha=alpha, temperature=TEMPERATURE, augmentation=augmentation)
    distiller.compile(keras.optimizers.SGD(0.0), _loss(), jit_compile=False)
  return distiller


def test_augmented_step_loss_equals_hand_computation():
  """Teacher and student see the views; the hard loss mixes the labels."""
  augmentation = distillation.ConsistentAugmentation(mixup=0.5, noise=0.3,
                                                     seed=4)
  x, y, w = _batch()
  reference = distillation.ConsistentAugmentation.from_config(
      augmentation.get_config())
  partner, share, _, noise = (np.asarray(t) for t in reference.draw(x))
  assert (partner != np.arange(8)).sum() >= 4 and share.std() > 0.1
  hard, soft = _augmented_expected(_augmented_distiller(ALPHA, None), x, y,
                                   w, partner, share, noise)
  logs = {}
  for alpha in (ALPHA, 1.0):  # 1.0: the control without the teacher
    distiller = _augmented_distiller(alpha, augmentation)
    history = distiller.fit(x, y, sample_weight=w, batch_size=8, epochs=1,
                            shuffle=False, verbose=0)
    logs[alpha] = {k: v[0] for k, v in history.history.items()}
  assert logs[ALPHA]["student_loss"] == pytest.approx(hard, rel=1e-5)
  assert logs[ALPHA]["distillation_loss"] == pytest.approx(soft, rel=1e-5)
  assert logs[ALPHA]["loss"] == pytest.approx(
      ALPHA * hard + (1 - ALPHA) * soft, rel=1e-5)
  # The same views for the control; its loss is the hard loss alone.
  assert logs[1.0]["student_loss"] == pytest.approx(hard, rel=1e-5)
  assert logs[1.0]["loss"] == pytest.approx(hard, rel=1e-5)
  # The caller's layer was copied, not advanced: it draws the first views.
  np.testing.assert_array_equal(np.asarray(augmentation.draw(x)[0]),
                                partner)
  # Evaluation sees the plain inputs.
  plain = _augmented_distiller(ALPHA, None)
  got = distiller.evaluate(x, y, sample_weight=w, batch_size=8, verbose=0,
                           return_dict=True)
  want = plain.evaluate(x, y, sample_weight=w, batch_size=8, verbose=0,
                        return_dict=True)
  assert got["student_loss"] == pytest.approx(want["student_loss"],
                                              rel=1e-6)
  assert got["student_loss"] != pytest.approx(hard, rel=1e-2)


def test_augmented_step_under_mirrored(logical_cpus):
  """Each replica draws the same shares for its own half of the batch."""
  del logical_cpus
  augmentation = distillation.ConsistentAugmentation(mixup=0.5, noise=0.3,
                                                     seed=4)
  x, y, w = _batch()
  reference = distillation.ConsistentAugmentation.from_config(
      augmentation.get_config())
  partner, share, _, noise = (np.asarray(t) for t in reference.draw(x[:4]))
  plain = _augmented_distiller(ALPHA, None)
  halves = [_augmented_expected(plain, x[h], y[h], w[h], partner, share,
                                noise)
            for h in (slice(0, 4), slice(4, 8))]
  distiller = _augmented_distiller(ALPHA, augmentation,
                                   tfc.make_strategy("mirrored", 2))
  history = distiller.fit(x, y, sample_weight=w, batch_size=8, epochs=2,
                          shuffle=False, verbose=0)
  assert history.history["student_loss"][0] == pytest.approx(
      np.mean([h[0] for h in halves]), rel=1e-5)
  assert history.history["distillation_loss"][0] == pytest.approx(
      np.mean([h[1] for h in halves]), rel=1e-5)
  # The seed state advanced once per step: the second epoch's views differ.
  assert history.history["student_loss"][1] != pytest.approx(
      history.history["student_loss"][0], rel=1e-3)


def test_augmented_distiller_round_trips(tmp_path):
  augmentation = distillation.ConsistentAugmentation(mixup=0.4, shift=0,
                                                     noise=0.2, seed=3,
                                                     name="views")
  restored = keras.saving.deserialize_keras_object(
      keras.saving.serialize_keras_object(augmentation))
  assert isinstance(restored, distillation.ConsistentAugmentation)
  assert restored.get_config() == augmentation.get_config()
  assert keras.saving.get_registered_name(
      distillation.ConsistentAugmentation) == (
          "tf_compress>ConsistentAugmentation")
  distiller = _augmented_distiller(ALPHA, augmentation)
  x, y, w = _batch()
  distiller.fit(x, y, sample_weight=w, batch_size=8, epochs=1, verbose=0)
  config = json.loads(json.dumps(distiller.get_config()))  # JSON-safe
  assert config["augmentation"]["config"]["mixup"] == 0.4
  assert config["augmentation"]["config"]["seed"] == 3
  path = tmp_path / "augmented.keras"
  distiller.save(path)
  loaded = keras.saving.load_model(path)
  assert loaded.augmentation.get_config() == (
      distiller.augmentation.get_config())
  assert json.loads(json.dumps(loaded.get_config())) == config
  got = loaded.evaluate(x, y, sample_weight=w, batch_size=8, verbose=0,
                        return_dict=True)
  want = distiller.evaluate(x, y, sample_weight=w, batch_size=8, verbose=0,
                            return_dict=True)
  assert got == pytest.approx(want, rel=1e-6)


def test_augmentation_errors():
  x, y, _ = _batch()
  with pytest.raises(UserInputError, match="mixup must be a finite number "
                     ">= 0.*got -1"):
    distillation.ConsistentAugmentation(mixup=-1)
  with pytest.raises(UserInputError, match="shift must be a finite int"):
    distillation.ConsistentAugmentation(shift=1.5)
  with pytest.raises(UserInputError, match="must be a distillation."
                     "ConsistentAugmentation"):
    _augmented_distiller(ALPHA, "mixup")
  distiller = _augmented_distiller(
      ALPHA, distillation.ConsistentAugmentation(mixup=1.0))
  cached = distillation.cache_teacher_logits(distiller.teacher, x, y)
  with pytest.raises(UserInputError, match="cached teacher outputs are of "
                     "the plain inputs"):
    distiller.fit(cached, epochs=1, verbose=0)
  distiller.evaluate(cached, verbose=0)  # evaluation may use the cache
  distiller = _augmented_distiller(
      ALPHA, distillation.ConsistentAugmentation(shift=1))
  with pytest.raises(UserInputError, match=r"shifts images .* got inputs "
                     r"of shape \(8, 4\)"):
    distiller.fit(x, y, batch_size=8, epochs=1, verbose=0)
  teacher = tf_keras.Sequential([tf_keras.Input((4,)),
                                 tf_keras.layers.Dense(3)])
  student = tf_keras.Sequential([tf_keras.Input((4,)),
                                 tf_keras.layers.Dense(3)])
  with pytest.raises(UserInputError, match="Keras 3 Distiller only"):
    distillation.Distiller(teacher, student, augmentation=(
        distillation.ConsistentAugmentation(mixup=1.0)))
