"""Logical CPU devices, strategies and seeding."""

import random

import numpy as np
import pytest

import tf_compress
from tf_compress._keras import tf


def test_two_logical_cpus_and_mirrored(logical_cpus):
  strategy = tf_compress.make_strategy("mirrored", 2)
  assert strategy.num_replicas_in_sync == 2
  assert tf_compress.configure_logical_cpus(2) == logical_cpus


def test_default_and_unknown_strategy():
  assert tf_compress.make_strategy("default").num_replicas_in_sync == 1
  with pytest.raises(tf_compress.UserInputError, match="unknown strategy"):
    tf_compress.make_strategy("tpu")


def test_cannot_add_devices_after_initialisation():
  with pytest.raises(tf_compress.UserInputError,
                     match="already initialised"):
    tf_compress.configure_logical_cpus(8)


def test_set_seed_seeds_every_generator():
  def draw():
    return (random.random(), np.random.rand(),
            float(tf.random.uniform(())))
  tf_compress.set_seed(11)
  first = draw()
  tf_compress.set_seed(11)
  assert draw() == first
  tf_compress.set_seed(12)
  assert draw() != first
  with pytest.raises(ValueError, match="seed must be >= 0"):
    tf_compress.set_seed(-3)
