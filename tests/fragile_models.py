"""A small digits CNN with one deliberately fragile layer, for the tests of
per-layer sensitivity and mixed precision.

The `logits` kernel gets one weight 1000 times larger than any other, on
the input from an `fc1` unit that is dead (always 0 after its ReLU). The
float model computes exactly what it did before that weight was set; but
int8 quantization gives each output channel of a kernel one scale, so the
column holding the huge weight rounds every other weight to 0 and its
class loses its logit. Quantizing any other layer costs (almost) nothing.
"""

import numpy as np

from tf_compress import load_dataset

FRAGILE = "logits"
LAYERS = ("conv1", "conv2", "fc1", "logits")
_DEAD_UNIT = 0
_FRAGILE_CLASS = 3


def digits_splits():
  return load_dataset("digits", seed=0)


def _build(keras, input_shape, num_classes):
  inputs = keras.Input(input_shape, name="input")
  x = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(inputs)
  x = keras.layers.Conv2D(16, 3, activation="relu", name="conv2")(x)
  x = keras.layers.Flatten(name="flatten")(x)
  x = keras.layers.Dense(64, activation="relu", name="fc1")(x)
  x = keras.layers.Dropout(0.1, name="dropout")(x)
  outputs = keras.layers.Dense(num_classes, name="logits")(x)
  return keras.Model(inputs, outputs, name="fragile_cnn")


def untrained_cnn(keras, splits, seed=0):
  """The architecture, untrained (for conversion-only tests)."""
  keras.utils.set_random_seed(seed)
  return _build(keras, splits.x_train.shape[1:], splits.num_classes)


def make_fragile(model):
  """Sets the fragile weight in place (the float outputs do not change)."""
  fc1, logits = model.get_layer("fc1"), model.get_layer(FRAGILE)
  kernel, bias = fc1.kernel.numpy(), fc1.bias.numpy()
  kernel[:, _DEAD_UNIT] = 0.0
  bias[_DEAD_UNIT] = -1.0  # ReLU(-1) = 0 on every input
  fc1.kernel.assign(kernel)
  fc1.bias.assign(bias)
  weights = logits.kernel.numpy()
  weights[_DEAD_UNIT, _FRAGILE_CLASS] = 1000.0 * np.abs(weights).max()
  logits.kernel.assign(weights)
  return model


def fragile_cnn(splits, epochs=6, seed=0):
  """A trained Keras 3 digits CNN whose `logits` layer is fragile."""
  import keras  # pylint: disable=g-import-not-at-top
  model = untrained_cnn(keras, splits, seed)
  model.compile(
      "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      metrics=["accuracy"])
  model.fit(splits.x_train, splits.y_train, epochs=epochs, batch_size=32,
            verbose=0, shuffle=False)
  return make_fragile(model)
