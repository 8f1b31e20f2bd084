"""DistillationScheduler: hooks called directly, config round trip, and a
real fit (default and mirrored) where the annealed temperature reaches the
compiled train step."""

import json

import numpy as np
import pytest

import tf_compress
from tf_compress import adversarial
from tf_compress import distillation
from tf_compress import keras
from tf_compress import ModelError
from tf_compress import UserInputError
from tf_compress.distillation.distillation_callbacks import linear_ramp


def _loss():
  return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _distiller(alpha=0.1, temperature=3.0):
  teacher = tf_compress.build_model("mlp", (8, 8, 1), 10, width=0.5, seed=1,
                                    keras_version=2)
  student = tf_compress.build_model("mlp", (8, 8, 1), 10, width=0.25, seed=2,
                                    keras_version=2)
  return distillation.Distiller(teacher, student, alpha=alpha,
                                temperature=temperature)


def test_linear_ramp():
  assert [linear_ramp(6.0, 2.0, e, 3) for e in range(5)] == [
      6.0, 4.0, 2.0, 2.0, 2.0]
  assert [linear_ramp(0.0, 1.0, e, 5) for e in range(5)] == [
      0.0, 0.25, 0.5, 0.75, 1.0]
  assert linear_ramp(6.0, 2.0, 0, 1) == 2.0


def test_hooks_anneal_variables_and_write_logs():
  distiller = _distiller(alpha=0.1, temperature=3.0)
  scheduler = distillation.DistillationScheduler(
      epochs=3, start_temperature=6.0, end_temperature=2.0, end_alpha=0.7)
  scheduler.set_model(distiller)
  scheduler.on_train_begin()
  temperatures, alphas, logs = [], [], []
  for epoch in range(5):
    scheduler.on_epoch_begin(epoch)
    temperatures.append(float(distiller.temperature.numpy()))
    alphas.append(float(distiller.alpha.numpy()))
    epoch_logs = {"loss": 1.0}
    scheduler.on_epoch_end(epoch, epoch_logs)
    logs.append(epoch_logs)
  assert temperatures == pytest.approx([6.0, 4.0, 2.0, 2.0, 2.0])
  # alpha starts from the Distiller's own value.
  assert alphas == pytest.approx([0.1, 0.4, 0.7, 0.7, 0.7])
  assert [l["temperature"] for l in logs] == pytest.approx(temperatures)
  assert [l["alpha"] for l in logs] == pytest.approx(alphas)
  assert distiller.get_config()["temperature"] == pytest.approx(2.0)


def test_only_the_given_values_change():
  distiller = _distiller(alpha=0.25, temperature=3.0)
  scheduler = distillation.DistillationScheduler(epochs=2, end_alpha=1.0)
  scheduler.set_model(distiller)
  scheduler.on_train_begin()
  scheduler.on_epoch_begin(1)
  assert float(distiller.temperature.numpy()) == 3.0
  assert float(distiller.alpha.numpy()) == 1.0


def test_finds_distiller_inside_adversarial_model():
  distiller = _distiller()
  wrapper = adversarial.AdversarialModel(distiller, epsilon=0.1)
  scheduler = distillation.DistillationScheduler(epochs=2, end_temperature=1.0)
  scheduler.set_model(wrapper)
  scheduler.on_train_begin()
  scheduler.on_epoch_begin(1)
  assert float(distiller.temperature.numpy()) == 1.0


def test_model_without_distiller_raises():
  scheduler = distillation.DistillationScheduler(epochs=2, end_temperature=1.0)
  with pytest.raises(ModelError, match="model 'mlp' .Functional. holds no "
                     "Distiller"):
    scheduler.set_model(tf_compress.build_model("mlp", (8, 8, 1), 10,
                                                keras_version=2))


@pytest.mark.parametrize("kwargs,match", [
    ({"epochs": 0, "end_alpha": 0.5}, "epochs must be an integer >= 1, got 0"),
    ({"epochs": 1.5, "end_alpha": 0.5}, "epochs must be an integer"),
    ({"epochs": 2}, "needs end_temperature or end_alpha"),
    ({"epochs": 2, "end_temperature": 0.0},
     r"DistillationScheduler.end_temperature must be a number > 0, got 0.0"),
    ({"epochs": 2, "end_temperature": 2.0, "start_temperature": -1},
     r"DistillationScheduler.start_temperature must be a number > 0"),
    ({"epochs": 2, "end_alpha": 1.2},
     r"DistillationScheduler.end_alpha must be in \[0, 1\]"),
], ids=["epochs-0", "epochs-float", "nothing", "end-temperature",
        "start-temperature", "end-alpha"])
def test_bad_arguments_raise(kwargs, match):
  with pytest.raises(UserInputError, match=match):
    distillation.DistillationScheduler(**kwargs)


def test_config_round_trip():
  scheduler = distillation.DistillationScheduler(
      epochs=4, end_temperature=1.5, start_alpha=0.2, end_alpha=0.6)
  config = scheduler.get_config()
  assert json.loads(json.dumps(config)) == config
  assert distillation.DistillationScheduler.from_config(
      config).get_config() == config
  restored = keras.utils.deserialize_keras_object(
      keras.utils.serialize_keras_object(scheduler))
  assert isinstance(restored, distillation.DistillationScheduler)
  assert restored.get_config() == config
  assert keras.utils.get_registered_name(
      distillation.DistillationScheduler) == (
          "tf_compress>DistillationScheduler")


@pytest.mark.parametrize("strategy_name", ["default", "mirrored"])
def test_annealed_temperature_reaches_the_compiled_step(
    logical_cpus, digits, strategy_name):
  """With a learning rate of 0, each epoch's distillation loss is the soft
  loss at that epoch's temperature: the compiled step reads the variable."""
  del logical_cpus
  strategy = tf_compress.make_strategy(strategy_name, 2)
  with strategy.scope():
    distiller = _distiller(alpha=0.5, temperature=3.0)
    distiller.compile(keras.optimizers.SGD(0.0), _loss())
  x, y = digits.x_train[:256], digits.y_train[:256]
  history = distiller.fit(
      x, y, batch_size=32, epochs=3, shuffle=False, verbose=0,
      callbacks=[distillation.DistillationScheduler(
          epochs=3, start_temperature=1.0, end_temperature=5.0)])
  teacher = distiller.teacher.predict(x, verbose=0)
  student = distiller.student.predict(x, verbose=0)
  expected = [float(distillation.soft_target_loss(teacher, student, t))
              for t in (1.0, 3.0, 5.0)]
  assert history.history["temperature"] == [1.0, 3.0, 5.0]
  np.testing.assert_allclose(history.history["distillation_loss"], expected,
                             rtol=1e-4)
  assert len(set(np.round(expected, 4))) == 3  # the temperature matters
