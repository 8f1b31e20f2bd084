"""Reproducibility: one seed for every generator, optional op determinism."""

import os
import random

import numpy as np

from tf_compress._keras import keras, tf

__all__ = ["set_seed", "enable_determinism"]


def set_seed(seed):
  """Seeds Python's `random`, NumPy, TensorFlow and Keras with `seed`.

  Args:
    seed: a non-negative integer.
  """
  seed = int(seed)
  if seed < 0:
    raise ValueError(f"seed must be >= 0, got {seed}")
  os.environ["PYTHONHASHSEED"] = str(seed)
  random.seed(seed)
  np.random.seed(seed)
  tf.random.set_seed(seed)
  keras.utils.set_random_seed(seed)


def enable_determinism():
  """Turns on TensorFlow op determinism (same inputs → same bits).

  Ops without a deterministic kernel then raise instead of silently varying;
  tf.data runs deterministically too. This cannot be turned off again in the
  same process.
  """
  tf.config.experimental.enable_op_determinism()
