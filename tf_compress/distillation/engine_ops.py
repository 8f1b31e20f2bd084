"""The tensor ops that the training harnesses write once for both engines.

The tf_keras engine computes in TensorFlow, the Keras 3 engine in
`keras.ops`. `TF_OPS` holds TensorFlow's functions under `keras.ops`' names
and `KERAS3_OPS` the `keras.ops` ones, so that code written once against
`ops.cast`, `ops.mean`, ... runs each engine's own functions, with the
numbers that engine's code gave before. Both add `add_n` (the sum of a list
of tensors: `tf.add_n`, or `keras.ops` summing a stack); the tf_keras
engine reads a variable (`convert_to_numpy`) with `tf_keras.backend`.
"""

import types

from keras import ops as keras_ops
import tensorflow as tf

from tf_compress._keras import keras as tf_keras

__all__ = ["TF_OPS", "KERAS3_OPS", "regularization"]

_NAMES = ("cast", "concatenate", "convert_to_numpy", "exp", "log",
          "log_softmax", "maximum", "mean", "reshape", "shape", "square",
          "stop_gradient", "sum", "zeros")

TF_OPS = types.SimpleNamespace(
    add_n=tf.add_n, cast=tf.cast, concatenate=tf.concat,
    convert_to_numpy=tf_keras.backend.get_value, exp=tf.exp,
    log=tf.math.log, log_softmax=tf.nn.log_softmax, maximum=tf.maximum,
    mean=tf.reduce_mean, reshape=tf.reshape, shape=tf.shape,
    square=tf.square, stop_gradient=tf.stop_gradient, sum=tf.reduce_sum,
    zeros=tf.zeros)

KERAS3_OPS = types.SimpleNamespace(
    add_n=lambda tensors: keras_ops.sum(keras_ops.stack(tensors)),
    **{name: getattr(keras_ops, name) for name in _NAMES})


def regularization(model, ops):
  """The sum of `model.losses` as float32 (0 without any).

  Args:
    model: a Keras model of the engine of `ops`.
    ops: `TF_OPS` or `KERAS3_OPS`.

  Returns:
    A scalar float32 tensor.
  """
  losses = [ops.cast(l, "float32") for l in model.losses]
  return ops.add_n(losses) if losses else ops.zeros((), "float32")
