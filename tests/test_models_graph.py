"""tf_compress.models.graph: walking, searching and copying Keras models."""

import numpy as np
import pytest

from tf_compress import keras
from tf_compress import models
from tf_compress.errors import ModelError
from tf_compress.errors import UserInputError

L = keras.layers


class Scale(L.Layer):
  """A custom layer that is not registered for serialization."""

  def __init__(self, factor=2.0, **kwargs):
    super().__init__(**kwargs)
    self.factor = factor

  def build(self, input_shape):
    self.w = self.add_weight("w", (input_shape[-1],), initializer="ones")

  def call(self, x):
    return x * self.w * self.factor

  def get_config(self):
    return {**super().get_config(), "factor": self.factor}


class Net(keras.Model):
  """A subclassed model holding one Dense layer."""

  def __init__(self):
    super().__init__(name="net")
    self.fc = L.Dense(2, name="fc")

  def call(self, x):
    return self.fc(x)


def _inner():
  inputs = keras.Input((4,))
  x = Scale(name="scale")(inputs)
  return keras.Model(inputs, L.Dense(3, name="fc1")(x), name="inner")


def _outer():
  inputs = keras.Input((4,))
  x = _inner()(inputs)
  return keras.Model(inputs, L.Dense(2, name="head")(x), name="outer")


def _net():
  net = Net()
  net(np.zeros((1, 4), np.float32))
  return net


def test_is_graph_model():
  assert models.is_graph_model(_outer())
  assert models.is_graph_model(keras.Sequential([L.Dense(1)]))
  assert not models.is_graph_model(_net())


def test_check_graph_model_messages():
  outer = _outer()
  assert models.check_graph_model(outer, "f") is outer
  with pytest.raises(ModelError) as info:
    models.check_graph_model(_net(), "strip_x")
  assert str(info.value) == ("strip_x needs a Sequential or Functional "
                             "model, got the subclassed model 'net'")
  with pytest.raises(ModelError, match=r"model 'net' \(Net\), use the API$"):
    models.check_graph_model(_net(), "f", "use the API")
  with pytest.raises(TypeError, match="tf_keras Model"):
    models.check_graph_model("model.keras", "f")


def test_iter_layers_names_nested_paths():
  outer = _outer()
  paths = [path for path, _ in models.iter_layers(outer)]
  assert paths[1:] == ["inner/" + outer.get_layer("inner").layers[0].name,
                       "inner/scale", "inner/fc1", "head"]
  assert paths[0] == outer.layers[0].name  # the input layer
  inputs = keras.Input((4,))
  holder = keras.Model(inputs, _net()(inputs), name="holder")
  assert [path for path, _ in models.iter_layers(holder)][1:] == ["net/fc"]
  leaves = list(models.iter_layers(holder, into_subclassed=False))
  assert leaves[1][0] == "net" and isinstance(leaves[1][1], Net)


def test_graph_nodes_in_call_order_without_inputs():
  outer = _outer()
  assert [node.layer.name for node in models.graph_nodes(outer)] == [
      "inner", "head"]
  with pytest.raises(UserInputError, match="not a built Functional"):
    list(models.graph_nodes(_net()))


def test_unwrap_sees_through_nested_wrappers():
  dense = L.Dense(2)
  wrapped = L.TimeDistributed(L.TimeDistributed(dense))
  assert models.unwrap(wrapped) is dense
  assert models.unwrap(dense) is dense


def test_find_model_searches_base_model_and_layers():

  class Harness(keras.Model):

    def __init__(self, base_model):
      super().__init__(name="harness")
      self.base_model = base_model

    def call(self, x):
      return self.base_model(x)

  outer = _outer()
  inner = outer.get_layer("inner")
  assert models.find_model(outer, keras.Model) is outer
  assert models.find_model(Harness(_net()), Net).name == "net"
  inputs = keras.Input((4,))
  holder = keras.Model(inputs, _net()(inputs))
  assert isinstance(models.find_model(holder, Net), Net)
  assert models.find_model(inner, Net) is None


def test_copy_layer_clones_nested_custom_layers():
  outer = _outer()
  # Keras' own clone rebuilds the nested model from its config, which needs
  # the unregistered Scale class.
  with pytest.raises(Exception):
    keras.models.clone_model(outer)
  copy = keras.models.clone_model(outer, clone_function=models.copy_layer)
  scale = copy.get_layer("inner").get_layer("scale")
  assert isinstance(scale, Scale) and scale.factor == 2.0
  assert scale is not outer.get_layer("inner").get_layer("scale")


def test_clone_with_weights_shares_nothing():
  outer = _outer()
  rng = np.random.default_rng(0)
  outer.set_weights([rng.normal(size=w.shape).astype(np.float32)
                     for w in outer.get_weights()])
  copy = models.clone_with_weights(outer, models.copy_layer, what="pruning")
  for a, b in zip(outer.get_weights(), copy.get_weights()):
    np.testing.assert_array_equal(a, b)
  assert not {id(v) for v in outer.weights} & {id(v) for v in copy.weights}
  x = rng.normal(size=(3, 4)).astype(np.float32)
  np.testing.assert_allclose(copy(x), outer(x), rtol=1e-6)
  copy.weights[0].assign(np.zeros(copy.weights[0].shape))
  assert np.any(outer.get_weights()[0] != 0)


def test_clone_with_weights_errors():
  # Keras clones a subclassed model only from its config, never layer by
  # layer.
  net = _net()
  with pytest.raises(ModelError, match=r"could not copy model 'net' before "
                     r"pruning \(ValueError: .*clone_function"):
    models.clone_with_weights(net, models.copy_layer, what="pruning")
  with pytest.raises(ValueError, match="clone_function") as info:
    models.clone_with_weights(net, models.copy_layer)
  assert not isinstance(info.value, ModelError)
