"""The built-in models: small, fast baselines for the compression workflow.

All of them end in a Dense layer producing logits (no softmax), so losses use
`from_logits=True`.
"""

from tf_compress.errors import ModelError
from tf_compress.models.registry import ModelSpec, register_model

__all__ = ["small_cnn", "small_cnn_bn", "small_mlp", "mobilenet_v2"]


def _init(spec, index):
  return spec.keras.initializers.GlorotUniform(seed=spec.seed * 1000 + index)


def _check_image(spec, name):
  if len(spec.input_shape) != 3:
    raise ModelError(
        f"model {name!r} needs image inputs of shape (height, width, "
        f"channels), got input shape {spec.input_shape}; use --model=mlp for "
        "tabular data")


def _cnn(spec, name, batchnorm):
  _check_image(spec, name)
  height, width, _ = spec.input_shape
  keras = spec.keras
  inputs = keras.Input(spec.input_shape, name="input")
  x = keras.layers.Conv2D(spec.scaled(32), 3, padding="same",
                          use_bias=not batchnorm, kernel_initializer=_init(
                              spec, 1), name="conv1")(inputs)
  if batchnorm:
    x = keras.layers.BatchNormalization(name="bn1")(x)
  x = keras.layers.ReLU(name="relu1")(x)
  # Bring large inputs down to at most ~16x16 before the second conv, so the
  # dense head stays small whatever the image size.
  pools = 0
  while min(height, width) // (2**pools) > 16:
    pools += 1
  if pools:
    x = keras.layers.MaxPooling2D(2**pools, name="pool0")(x)
  valid = min(height, width) // (2**pools) >= 3
  x = keras.layers.Conv2D(spec.scaled(64), 3,
                          padding="valid" if valid else "same",
                          use_bias=not batchnorm,
                          kernel_initializer=_init(spec, 2), name="conv2")(x)
  if batchnorm:
    x = keras.layers.BatchNormalization(name="bn2")(x)
  x = keras.layers.ReLU(name="relu2")(x)
  if min(x.shape[1], x.shape[2]) >= 2:
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
  x = keras.layers.Flatten(name="flatten")(x)
  x = keras.layers.Dense(spec.scaled(128), activation="relu",
                         kernel_initializer=_init(spec, 3), name="fc1")(x)
  x = keras.layers.Dropout(0.25, seed=spec.seed, name="dropout")(x)
  outputs = keras.layers.Dense(spec.num_classes,
                               kernel_initializer=_init(spec, 4),
                               name="logits")(x)
  return keras.Model(inputs, outputs, name=name)


@register_model("cnn")
def small_cnn(spec: ModelSpec):
  """conv32 → conv64 → maxpool → dense128 → logits (about 94k params on 8x8)."""
  return _cnn(spec, "cnn", batchnorm=False)


@register_model("cnn_bn")
def small_cnn_bn(spec: ModelSpec):
  """The small CNN with BatchNormalization after each convolution."""
  return _cnn(spec, "cnn_bn", batchnorm=True)


@register_model("mlp")
def small_mlp(spec: ModelSpec):
  """Flatten → dense128 → dense64 → logits; works for any input shape."""
  keras = spec.keras
  inputs = keras.Input(spec.input_shape, name="input")
  x = keras.layers.Flatten(name="flatten")(inputs)
  x = keras.layers.Dense(spec.scaled(128), activation="relu",
                         kernel_initializer=_init(spec, 1), name="fc1")(x)
  x = keras.layers.Dense(spec.scaled(64), activation="relu",
                         kernel_initializer=_init(spec, 2), name="fc2")(x)
  outputs = keras.layers.Dense(spec.num_classes,
                               kernel_initializer=_init(spec, 3),
                               name="logits")(x)
  return keras.Model(inputs, outputs, name="mlp")


@register_model("mobilenet_v2")
def mobilenet_v2(spec: ModelSpec):
  """Keras' MobileNetV2 (untrained), `--width` as its alpha, logits out.

  Inverted residuals with depthwise convolutions: the architecture the
  deployment figures are usually quoted for. Needs images of at least
  32x32 (`--dataset=digits32`, or `--image_size=32,32` for a folder).
  """
  _check_image(spec, "mobilenet_v2")
  height, width, _ = spec.input_shape
  if min(height, width) < 32:
    raise ModelError(
        f"model 'mobilenet_v2' needs images of at least 32x32, got "
        f"{height}x{width}; use --dataset=digits32, or --image_size=32,32 "
        "for an image folder")
  # tf_keras' MobileNetV2 takes no `name`; it names the model itself.
  named = {"name": "mobilenet_v2"} if spec.keras_version == 3 else {}
  return spec.keras.applications.MobileNetV2(
      input_shape=tuple(spec.input_shape), alpha=spec.width, weights=None,
      classes=spec.num_classes, classifier_activation=None, **named)
