"""Distiller: the loss by hand, a pruned student trained in one fit, saving,
teacher caching, MirroredStrategy and clear errors (the example script runs
in test_examples.py)."""

import json

import keras as keras3  # the real Keras 3, to hand us the wrong kind of model
import numpy as np
import pytest
import tensorflow_model_optimization as tfmot

import tf_compress
from tf_compress import distillation
from tf_compress import keras
from tf_compress import pruning
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
    layers.append(keras.layers.Softmax())
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


def _expected(distiller, x, y, w, teacher_outputs):
  """The Distiller's losses, in numpy from the models' weights."""
  t1, tb1, t2, tb2 = distiller.teacher.get_weights()
  s1, sb1, s2, sb2 = distiller.student.get_weights()
  t_feat = x @ t1 + tb1
  t_logits = t_feat @ t2 + tb2
  if teacher_outputs == "probabilities":
    t_logits = np.log(np.exp(_log_softmax(t_logits)))  # log of the softmax
  s_feat = x @ s1 + sb1
  s_logits = s_feat @ s2 + sb2
  hard = np.mean(-_log_softmax(s_logits)[np.arange(len(y)), y] * w)
  log_pt = _log_softmax(t_logits / TEMPERATURE)
  log_ps = _log_softmax(s_logits / TEMPERATURE)
  kl = np.sum(np.exp(log_pt) * (log_pt - log_ps), axis=-1)
  soft = np.mean(kl * w) * TEMPERATURE**2
  p, pb = distiller.projections[0].get_weights()
  feature = np.mean(np.mean((t_feat - (s_feat @ p + pb))**2, axis=-1) * w)
  total = ALPHA * hard + (1 - ALPHA) * soft + FEATURE_WEIGHT * feature
  return {"loss": total, "student_loss": hard, "distillation_loss": soft,
          "feature_loss": feature}


@pytest.mark.parametrize("teacher_outputs", ["logits", "probabilities"])
def test_loss_equals_hand_computation(teacher_outputs):
  distiller = _tiny_distiller(teacher_outputs)
  distiller.compile(keras.optimizers.SGD(0.0), _loss())
  x, y, w = _batch()
  expected = _expected(distiller, x, y, w, teacher_outputs)
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
    distiller.compile(keras.optimizers.SGD(0.5), _loss())
  x, y, w = _batch()
  history = distiller.fit(x, y, sample_weight=w, batch_size=8, epochs=1,
                          shuffle=False, verbose=0)
  return distiller, history.history["loss"][0]


def test_gradient_step_matches_by_hand_and_under_mirrored(logical_cpus):
  del logical_cpus  # the CPU is split in two logical devices
  reference = _tiny_distiller()
  x, y, w = _batch()
  variables = (reference.student.trainable_variables +
               reference.projections[0].trainable_variables)
  with tf.GradientTape() as tape:  # the loss written again, in TF ops
    t_feat = reference.teacher.layers[0](x)
    t_logits = reference.teacher.layers[1](t_feat)
    s_feat = reference.student.layers[0](x)
    s_logits = reference.student.layers[1](s_feat)
    hard = tf.reduce_mean(w * tf.nn.sparse_softmax_cross_entropy_with_logits(
        y, s_logits))
    p_t = tf.nn.softmax(t_logits / TEMPERATURE)
    kl = tf.reduce_sum(p_t * (tf.math.log(p_t) - tf.nn.log_softmax(
        s_logits / TEMPERATURE)), -1)
    feature = tf.reduce_mean(w * tf.reduce_mean(
        (t_feat - reference.projections[0](s_feat))**2, -1))
    total = (ALPHA * hard + (1 - ALPHA) * tf.reduce_mean(kl * w) *
             TEMPERATURE**2 + FEATURE_WEIGHT * feature)
  expected = [v.numpy() - 0.5 * g.numpy()
              for v, g in zip(variables, tape.gradient(total, variables))]
  for name in ("default", "mirrored"):
    distiller, loss = _one_sgd_step(tf_compress.make_strategy(name, 2))
    assert loss == pytest.approx(float(total), rel=1e-5), name
    got = (distiller.student.get_weights() +
           distiller.projections[0].get_weights())
    for want, have in zip(expected, got):
      np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-6)
    # The teacher is not trained.
    for a, b in zip(distiller.teacher.get_weights(),
                    reference.teacher.get_weights()):
      np.testing.assert_array_equal(a, b)


# -- a trained teacher and a pruned student, in one fit --------------------

SPARSITY = 0.75


@pytest.fixture(scope="module")
def teacher(digits):
  tf_compress.set_seed(0)
  model = tf_compress.build_model("mlp", digits.input_shape,
                                  digits.num_classes, keras_version=2)
  model.compile(keras.optimizers.Adam(3e-3), _loss(), metrics=["accuracy"])
  model.fit(digits.train(32), epochs=5, verbose=0)
  return model


@pytest.fixture(scope="module")
def trained(digits, teacher):
  """A pruned student distilled for 3 epochs, with what was measured."""
  tf_compress.set_seed(1)
  student = tf_compress.build_model("mlp", digits.input_shape,
                                    digits.num_classes, width=0.25, seed=1,
                                    keras_version=2)
  steps = int(np.ceil(digits.num_train / 32))
  config = pruning.PruningConfig(target_sparsity=SPARSITY,
                                 schedule="polynomial", end_epoch=2)
  distiller = distillation.Distiller(
      teacher, pruning.prune_model(student, config, steps), alpha=0.1,
      temperature=4.0)
  distiller.compile(keras.optimizers.Adam(1e-2), _loss(),
                    metrics=["accuracy"])
  before_teacher = [w.copy() for w in teacher.get_weights()]
  before = distiller.evaluate(digits.test(), verbose=0, return_dict=True)
  history = distiller.fit(digits.train(32), epochs=3, verbose=0,
                          validation_data=digits.validation(),
                          callbacks=[pruning.PruningCallback()])
  after = distiller.evaluate(digits.test(), verbose=0, return_dict=True)
  return {"distiller": distiller, "history": history.history,
          "before": before, "after": after, "teacher": before_teacher,
          "steps": steps}


def test_student_improves_teacher_bit_identical(trained, teacher):
  assert trained["before"]["accuracy"] < 0.3
  assert trained["after"]["accuracy"] > 0.65
  assert trained["after"]["accuracy"] > trained["before"]["accuracy"] + 0.4
  history = trained["history"]
  assert history["distillation_loss"][-1] < history["distillation_loss"][0]
  assert {"loss", "student_loss", "distillation_loss", "accuracy",
          "val_loss", "val_student_loss", "val_distillation_loss",
          "val_accuracy", "sparsity"} <= set(history)
  assert not teacher.trainable
  for a, b in zip(trained["teacher"], teacher.get_weights()):
    np.testing.assert_array_equal(a, b)
  trainable = {id(v) for v in trained["distiller"].trainable_variables}
  assert not trainable & {id(v) for v in teacher.variables}


def test_pruned_student_reaches_target_sparsity(trained):
  distiller = trained["distiller"]
  assert trained["history"]["sparsity"][-1] == pytest.approx(SPARSITY,
                                                             abs=1e-3)
  export = pruning.strip_pruning(distiller.student)
  assert pruning.overall_sparsity(export) == pytest.approx(SPARSITY, abs=1e-3)
  # One pruning step per training batch: the Distiller calls the student
  # once per step.
  steps = [int(w.pruning_step.numpy())
           for _, w in pruning.find_pruning_wrappers(distiller)]
  assert steps == [3 * trained["steps"]] * 3
  assert int(distiller.optimizer.iterations.numpy()) == 3 * trained["steps"]


def test_extracted_student_saves_and_loads(trained, digits, tmp_path):
  distiller = trained["distiller"]
  expected = distiller.predict(digits.x_test, verbose=0)
  distiller.student.save(tmp_path / "pruned.keras")
  loaded = pruning.load_pruned_model(tmp_path / "pruned.keras")
  np.testing.assert_array_equal(loaded.predict(digits.x_test, verbose=0),
                                expected)
  export = pruning.strip_pruning(distiller.student)
  tf_compress.save_model(export, tmp_path / "student.keras")
  plain = tf_compress.load_model(tmp_path / "student.keras")
  assert not pruning.find_pruning_wrappers(plain)
  np.testing.assert_allclose(plain.predict(digits.x_test, verbose=0),
                             expected, rtol=1e-6, atol=1e-6)


def test_distiller_config_and_keras_round_trip(trained, digits, tmp_path):
  distiller = trained["distiller"]
  config = distiller.get_config()
  json.dumps(config)
  assert {k: config[k] for k in ("alpha", "temperature", "teacher_outputs",
                                 "feature_pairs")} == {
                                     "alpha": pytest.approx(0.1),
                                     "temperature": 4.0,
                                     "teacher_outputs": "logits",
                                     "feature_pairs": None}
  assert keras.utils.get_registered_name(
      distillation.Distiller) == "tf_compress>Distiller"
  distiller.save(tmp_path / "distiller.keras")
  with tfmot.sparsity.keras.prune_scope():
    loaded = keras.models.load_model(tmp_path / "distiller.keras")
  assert isinstance(loaded, distillation.Distiller)
  np.testing.assert_array_equal(loaded.predict(digits.x_test, verbose=0),
                                distiller.predict(digits.x_test, verbose=0))
  for a, b in zip(loaded.teacher.get_weights(),
                  distiller.teacher.get_weights()):
    np.testing.assert_array_equal(a, b)


# -- teacher caching ---------------------------------------------------------


class _CountSamples(keras.layers.Layer):
  """Identity that counts the samples it has seen, in graphs too."""

  def build(self, input_shape):
    self.seen = self.add_weight(name="seen", shape=(), trainable=False,
                                initializer="zeros")

  def call(self, inputs):
    self.seen.assign_add(tf.cast(tf.shape(inputs)[0], tf.float32))
    return inputs


def _counting_teacher(teacher, input_shape):
  counter = _CountSamples()
  model = keras.Sequential([keras.Input(input_shape), counter, teacher])
  return model, counter


def test_cached_teacher_runs_once_not_per_epoch(digits, teacher):
  x, y = digits.x_train[:256], digits.y_train[:256]
  counting, counter = _counting_teacher(teacher, digits.input_shape)
  data = distillation.cache_teacher_logits(counting, x, y, batch_size=64)
  assert counter.seen.numpy() == 256
  first_x, targets = next(iter(data))
  assert set(targets) == {"labels", "teacher_outputs"}
  np.testing.assert_allclose(targets["teacher_outputs"],
                             teacher(first_x, training=False), atol=1e-6)

  student = tf_compress.build_model("mlp", digits.input_shape, 10, width=0.25,
                                    keras_version=2)
  distiller = distillation.Distiller(counting, student)
  distiller.compile(keras.optimizers.Adam(3e-3), _loss(),
                    metrics=["accuracy"])
  history = distiller.fit(data, epochs=3, verbose=0)
  assert counter.seen.numpy() == 256  # the teacher never ran again
  assert history.history["loss"][-1] < history.history["loss"][0]

  # Without the cache it runs every epoch (and once on the first batch,
  # to check its outputs).
  plain = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
  distiller.fit(plain, epochs=2, verbose=0)
  assert counter.seen.numpy() == 256 + 64 + 2 * 256


def test_cache_from_dataset_and_errors(digits, teacher):
  data = distillation.cache_teacher_logits(teacher, digits.validation(16),
                                           shuffle=False)
  x, targets = next(iter(data))
  np.testing.assert_array_equal(x, digits.x_val[:32])
  np.testing.assert_array_equal(targets["labels"], digits.y_val[:32])
  with pytest.raises(UserInputError, match="y .the labels. is needed"):
    distillation.cache_teacher_logits(teacher, digits.x_val)
  with pytest.raises(UserInputError, match="batch_size must be a positive"):
    distillation.cache_teacher_logits(teacher, digits.x_val, digits.y_val,
                                      batch_size=0)
  distiller = distillation.Distiller(
      teacher, tf_compress.build_model("mlp", digits.input_shape, 10,
                                       keras_version=2),
      feature_pairs=[("fc1", "fc1")])
  distiller.compile("adam", _loss())
  with pytest.raises(UserInputError, match="cached teacher outputs hold no "
                     "features"):
    distiller.fit(data, epochs=1, verbose=0)


# -- clear errors -------------------------------------------------------------


@pytest.mark.parametrize("kwargs,match", [
    ({"temperature": 0.0}, r"temperature must be a number > 0, got 0\.0"),
    ({"temperature": -1}, r"temperature must be a number > 0, got -1"),
    ({"alpha": -0.1}, r"alpha must be in \[0, 1\].*got -0\.1"),
    ({"alpha": 1.5}, r"alpha must be in \[0, 1\].*got 1\.5"),
    ({"teacher_outputs": "softmax"}, r"teacher_outputs must be one of"),
    ({"feature_weight": -1.0}, r"feature_weight must be a number >= 0"),
    ({"feature_pairs": [("teacher_0", "nope")]},
     r"the student 'student' has no layer named 'nope'"),
    ({"feature_pairs": ["teacher_0"]}, r"feature_pairs must be"),
], ids=["temperature-0", "temperature-neg", "alpha-neg", "alpha-big",
        "teacher-outputs", "feature-weight", "feature-layer", "feature-pair"])
def test_bad_arguments_raise(kwargs, match):
  teacher = _dense_model("teacher", (3, 3), 1)
  student = _dense_model("student", (2, 3), 2)
  with pytest.raises(UserInputError, match=match):
    distillation.Distiller(teacher, student, **kwargs)


def test_output_shape_mismatch_names_both_shapes():
  teacher = _dense_model("teacher", (3, 5), 1)
  student = _dense_model("student", (2, 3), 2)
  with pytest.raises(UserInputError, match=r"teacher's output shape \(5,\) "
                     r"differs from the student's \(3,\)"):
    distillation.Distiller(teacher, student)


@pytest.mark.parametrize("declared,softmax,match", [
    ("logits", True, "ends in a softmax; pass teacher_outputs="
     "'probabilities'"),
    ("probabilities", False, "are not probabilities"),
], ids=["softmax-declared-logits", "logits-declared-probabilities"])
def test_teacher_outputs_checked_on_first_batch(declared, softmax, match):
  teacher = _dense_model("teacher", (3, 3), 1, softmax=softmax)
  student = _dense_model("student", (2, 3), 2)
  distiller = distillation.Distiller(teacher, student,
                                     teacher_outputs=declared)
  distiller.compile("sgd", _loss())
  x, y, _ = _batch()
  with pytest.raises(UserInputError, match=match):
    distiller.fit(x, y, epochs=1, verbose=0)
  with pytest.raises(UserInputError, match=match):
    distiller.evaluate(x, y, verbose=0)


def test_compile_without_loss_raises():
  distiller = _tiny_distiller(features=False)
  distiller.compile("sgd")
  x, y, _ = _batch()
  with pytest.raises(UserInputError, match="compiled without a loss"):
    distiller.fit(x, y, epochs=1, verbose=0)


def test_mixed_keras_models_raise_type_error():
  # Keras 3 teachers and students are the Keras 3 engine's (see
  # test_distiller_keras3); one of each Keras cannot train together.
  model3 = keras3.Sequential([keras3.Input((4,)), keras3.layers.Dense(3)])
  tiny = _dense_model("student", (2, 3), 2)
  with pytest.raises(TypeError, match="`teacher` is a Keras 3 model .* but "
                     "`student` is not"):
    distillation.Distiller(model3, tiny)
  with pytest.raises(TypeError, match="`student` is a Keras 3 model .* but "
                     "`teacher` is not"):
    distillation.Distiller(tiny, model3)
