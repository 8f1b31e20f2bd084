"""inference: eager scores and loss equal `predict` and `evaluate`."""

import keras
import numpy as np
import pytest

from tf_compress import inference
from tf_compress import keras as tf_keras
from tf_compress._keras import tf

BATCH = 16  # 50 samples: 3 full batches and one of 2


def _data():
  rng = np.random.RandomState(0)
  return rng.randn(50, 6).astype("float32"), rng.randint(0, 3, 50)


def _model(k, strategy=None):
  with strategy.scope() if strategy else tf.init_scope():
    model = k.Sequential([
        k.Input((6,)),
        k.layers.Dense(8, activation="relu",
                       kernel_regularizer=k.regularizers.L2(0.1)),
        k.layers.Dense(3)])
    model.compile("sgd", k.losses.SparseCategoricalCrossentropy(
        from_logits=True))
  return model


@pytest.mark.parametrize("k", [keras, tf_keras], ids=["keras3", "tf_keras"])
def test_scores_and_loss_equal_predict_and_evaluate(k):
  x, y = _data()
  model = _model(k)
  scores = inference.predict_scores(model, x, BATCH)
  np.testing.assert_allclose(
      scores, model.predict(x, batch_size=BATCH, verbose=0), atol=1e-6)
  expected = model.evaluate(x, y, batch_size=BATCH, verbose=0)
  # The L2 penalty is in both, and is a real share of the loss.
  assert float(np.sum(model.losses)) > 0.05 * expected
  assert inference.test_loss(model, x, y, batch_size=BATCH) == (
      pytest.approx(expected, rel=1e-6))
  assert inference.test_loss(model, x, y, scores=scores) == pytest.approx(
      expected, rel=1e-6)


@pytest.mark.parametrize("k", [keras, tf_keras], ids=["keras3", "tf_keras"])
def test_a_model_built_under_mirrored_strategy(k, logical_cpus):
  strategy = tf.distribute.MirroredStrategy(
      logical_cpus[:2], cross_device_ops=tf.distribute.ReductionToOneDevice())
  x, y = _data()
  model = _model(k, strategy)
  np.testing.assert_allclose(inference.predict_scores(model, x, BATCH),
                             model.predict(x, batch_size=BATCH, verbose=0),
                             atol=1e-6)
  expected = model.evaluate(x, y, batch_size=BATCH, verbose=0)
  assert inference.test_loss(model, x, y, batch_size=BATCH) == (
      pytest.approx(expected, rel=1e-5))
  with strategy.scope():  # where a caller may still be
    assert inference.test_loss(model, x, y) == pytest.approx(expected,
                                                              rel=1e-5)


def test_overridden_steps_are_left_to_predict_and_evaluate():

  class Doubled(keras.Model):
    """Its predict_step doubles the logits; its test_step is its own."""

    def __init__(self):
      super().__init__()
      self.dense = keras.layers.Dense(3)

    def call(self, x):
      return self.dense(x)

    def predict_step(self, data):
      return 2 * self(data[0] if isinstance(data, tuple) else data)

    def test_step(self, data):
      return {"loss": 7.0}  # what Keras' evaluate makes of it is its own

  x, y = _data()
  model = Doubled()
  model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(
      from_logits=True))
  model(x[:1])
  np.testing.assert_allclose(inference.predict_scores(model, x, BATCH),
                             2 * np.asarray(model(x)), atol=1e-6)
  assert inference.test_loss(model, x, y) == model.evaluate(
      x, y, verbose=0, return_dict=True)["loss"]
  eager = float(keras.losses.SparseCategoricalCrossentropy(
      from_logits=True)(y, model(x)))
  assert abs(inference.test_loss(model, x, y) - eager) > 0.1


def test_several_outputs_use_the_first_and_evaluate():
  inputs = keras.Input((6,))
  model = keras.Model(inputs, [keras.layers.Dense(3)(inputs),
                               keras.layers.Dense(2)(inputs)])
  model.compile("sgd", [keras.losses.SparseCategoricalCrossentropy(
      from_logits=True)] * 2)
  x, y = _data()
  np.testing.assert_allclose(inference.predict_scores(model, x, BATCH),
                             model.predict(x, verbose=0)[0], atol=1e-6)
  expected = model.evaluate(x, [y, y % 2], verbose=0, return_dict=True)
  assert inference.test_loss(model, x, [y, y % 2]) == pytest.approx(
      expected["loss"], rel=1e-6)
