"""count_macs: exact multiply-accumulate counts, per layer and in total."""

import keras as keras3  # the real Keras 3
import numpy as np
import pytest
import tensorflow_model_optimization as tfmot

import tf_compress
from tf_compress import keras
from tf_compress.analysis.flops import count_macs

L = keras.layers


def _conv_dense():
  inputs = keras.Input((8, 8, 1))
  x = L.Conv2D(4, 3, padding="same", name="conv")(inputs)
  x = L.BatchNormalization(name="bn")(x)
  x = L.MaxPooling2D(2, name="pool")(x)
  x = L.Flatten(name="flatten")(x)
  return keras.Model(inputs, L.Dense(10, name="fc")(x), name="net")


def test_conv_dense_hand_counted():
  result = count_macs(_conv_dense())
  rows = {row["layer"]: row for row in result["per_layer"]}
  assert rows["conv"] == {"layer": "conv", "type": "Conv2D",
                          "macs": 8 * 8 * 3 * 3 * 1 * 4}
  assert rows["fc"]["macs"] == 4 * 4 * 4 * 10
  assert rows["bn"]["macs"] == rows["pool"]["macs"] == 0
  assert [row["layer"] for row in result["per_layer"]] == [
      "conv", "bn", "pool", "flatten", "fc"]
  assert result["total"] == 2304 + 640


@pytest.mark.parametrize("layer,input_shape,expected", [
    (L.DepthwiseConv2D(3, depth_multiplier=2), (8, 8, 3), 6 * 6 * 9 * 3 * 2),
    (L.SeparableConv2D(5, 3), (8, 8, 3), 6 * 6 * 9 * 3 + 6 * 6 * 3 * 5),
    (L.Conv2D(4, 3, padding="same", groups=2), (8, 8, 4),
     8 * 8 * 9 * 2 * 4),
    (L.Conv2D(4, 3, strides=2, padding="same"), (8, 8, 2), 4 * 4 * 9 * 2 * 4),
    (L.Conv2DTranspose(3, 3, strides=2, padding="same"), (4, 4, 2),
     4 * 4 * 9 * 3 * 2),
    (L.Conv1D(6, 3), (10, 2), 8 * 3 * 2 * 6),
    (L.Dense(3), (5, 7), 5 * 7 * 3),
], ids=["depthwise", "separable", "grouped", "strided", "transpose",
        "conv1d", "dense_rank3"])
def test_single_layer_hand_counted(layer, input_shape, expected):
  inputs = keras.Input(input_shape)
  model = keras.Model(inputs, layer(inputs))
  result = count_macs(model)
  assert result["total"] == expected
  assert result["per_layer"][0]["type"] == type(layer).__name__


def test_sees_through_pruning_wrappers():
  prune = tfmot.sparsity.keras.prune_low_magnitude
  model = keras.Sequential([
      keras.Input((8, 8, 1)),
      prune(L.Conv2D(4, 3, padding="same", name="conv")),
      L.Flatten(),
      prune(L.Dense(10, name="fc")),
  ])
  result = count_macs(model)
  assert result["total"] == 2304 + 8 * 8 * 4 * 10
  assert [row["type"] for row in result["per_layer"]] == [
      "Conv2D", "Flatten", "Dense"]
  whole = prune(_conv_dense())
  assert count_macs(whole)["total"] == 2304 + 640


def test_nested_model_and_shared_layer():
  inner = _conv_dense()
  inputs = keras.Input((8, 8, 1))
  shared = L.Dense(2, name="shared")
  a = shared(inner(inputs))
  b = shared(L.Dense(10, name="side")(L.Flatten()(inputs)))
  model = keras.Model(inputs, L.Add()([a, b]))
  result = count_macs(model)
  rows = {row["layer"]: row["macs"] for row in result["per_layer"]}
  assert rows["net/conv"] == 2304
  assert rows["net/fc"] == 640
  assert rows["shared"] == 2 * 10 * 2  # called twice
  assert rows["side"] == 64 * 10
  assert result["total"] == 2304 + 640 + 40 + 640


def test_digits_cnn_total():
  model = tf_compress.build_model("cnn", (8, 8, 1), 10, keras_version=2)
  expected = (8 * 8 * 9 * 32 + 6 * 6 * 9 * 32 * 64 + 3 * 3 * 64 * 128 +
              128 * 10)
  assert count_macs(model)["total"] == expected


def test_bad_models():
  class Sub(keras.Model):

    def __init__(self):
      super().__init__()
      self.fc = L.Dense(2)

    def call(self, x):
      return self.fc(x)

  sub = Sub()
  sub(np.zeros((1, 3), np.float32))
  with pytest.raises(tf_compress.UserInputError, match="not a built"):
    count_macs(sub)
  with pytest.raises(TypeError, match="Keras 3 or tf_keras Model, got str"):
    count_macs("model.keras")
  # Keras 3 models are counted too (tests/test_keras3_analysis.py).
  assert count_macs(keras3.Sequential(
      [keras3.Input((4,)), keras3.layers.Dense(2)]))["total"] == 8
  inputs = keras.Input((None, None, 3))
  open_size = keras.Model(inputs, L.Conv2D(2, 3)(inputs))
  with pytest.raises(tf_compress.UserInputError, match="unknown"):
    count_macs(open_size)
