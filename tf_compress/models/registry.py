"""A registry of model builders addressable by name (`--model=cnn`)."""

import dataclasses
from typing import Callable, Dict, Tuple

from tf_compress._keras import KERAS_VERSIONS
from tf_compress._keras import keras_module
from tf_compress.errors import ModelError

__all__ = ["register_model", "build_model", "available_models", "ModelSpec"]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """What a builder needs to know about the task.

  Attributes:
    input_shape: per-sample input shape, e.g. (8, 8, 1).
    num_classes: number of output classes (the model outputs logits).
    width: width multiplier applied to every hidden layer (> 0).
    seed: seed of the weight initialisers, so builds are reproducible.
    keras_version: 3 builds a Keras 3 model (`import keras`, the native
      engine); 2 a tf_keras one (the tfmot engine).
  """
  input_shape: Tuple[int, ...]
  num_classes: int
  width: float = 1.0
  seed: int = 0
  keras_version: int = 3

  def __post_init__(self):
    if not self.input_shape or any(int(d) <= 0 for d in self.input_shape):
      raise ModelError(f"ModelSpec.input_shape must be positive dimensions, "
                       f"got {self.input_shape!r}")
    if int(self.num_classes) < 2:
      raise ModelError(f"ModelSpec.num_classes must be >= 2, got "
                       f"{self.num_classes!r}")
    if not self.width > 0:
      raise ModelError(f"ModelSpec.width must be > 0, got {self.width!r}")
    if self.keras_version not in KERAS_VERSIONS:
      raise ModelError(f"ModelSpec.keras_version must be 2 (tf_keras) or 3 "
                       f"(Keras 3), got {self.keras_version!r}")

  @property
  def keras(self):
    """The Keras package to build with (`keras`, or tf_keras for 2)."""
    return keras_module(self.keras_version)

  def scaled(self, units):
    """Returns `units` multiplied by the width multiplier, at least 1."""
    return max(1, int(round(units * self.width)))


_REGISTRY: Dict[str, Callable[[ModelSpec], object]] = {}


def register_model(name):
  """Decorator registering `builder(spec) -> keras.Model` under `name`."""

  def decorator(builder):
    if name in _REGISTRY:
      raise ValueError(f"a model named {name!r} is already registered")
    _REGISTRY[name] = builder
    return builder

  return decorator


def available_models():
  """Returns the sorted names of the registered model builders."""
  return sorted(_REGISTRY)


def build_model(name, input_shape, num_classes, *, width=1.0, seed=0,
                keras_version=3):
  """Builds a registered model.

  Args:
    name: a registered name, see `available_models()`.
    input_shape: per-sample input shape.
    num_classes: number of classes; the model outputs logits.
    width: width multiplier for the hidden layers.
    seed: initialiser seed.
    keras_version: 3 (default) for a Keras 3 model, compressed by the
      native engine; 2 for a tf_keras model, compressed through tfmot.

  Returns:
    An uncompiled Keras 3 (or, for `keras_version=2`, tf_keras) model.

  Raises:
    ModelError: for an unknown name or a shape the builder cannot handle.
  """
  if name not in _REGISTRY:
    raise ModelError(f"unknown model {name!r}: expected one of "
                     f"{', '.join(available_models())} or a saved model path")
  spec = ModelSpec(tuple(int(d) for d in input_shape), int(num_classes),
                   float(width), int(seed), keras_version)
  return _REGISTRY[name](spec)
