"""The Keras binding: tf.keras is tf_keras, Keras 3 objects are refused."""

import os
import subprocess
import sys

import keras as keras3  # the real Keras 3, to hand us the wrong kind of model
import numpy as np
import pytest

import tf_compress
from tf_compress import keras
from tf_compress._keras import tf


def _keras3_model():
  return keras3.Sequential([keras3.Input((4,)), keras3.layers.Dense(2)])


def _tf_keras_model():
  return keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])


def test_tf_keras_is_bound():
  assert os.environ["TF_USE_LEGACY_KERAS"] == "1"
  assert keras.__name__ == "tf_keras"
  assert tf.keras.Model is keras.Model
  assert tf_compress.keras is keras


def test_keras3_is_really_keras3():
  assert keras3.__version__.startswith("3.")
  assert not isinstance(_keras3_model(), keras.Model)


@pytest.mark.parametrize("func", [
    tf_compress.check_model,
    tf_compress.model_stats,
    tf_compress.analysis.count_params,
    tf_compress.analysis.count_nonzero_params,
    lambda m: tf_compress.save_model(m, "/tmp/never-written.keras"),
    lambda m: tf_compress.models.check_model_fits(m, (4,), 2),
], ids=["check_model", "model_stats", "count_params", "count_nonzero",
        "save_model", "check_model_fits"])
def test_keras3_model_raises_helpful_type_error(func):
  with pytest.raises(TypeError) as info:
    func(_keras3_model())
  message = str(info.value)
  assert "Keras 3" in message
  assert "tf_compress import keras" in message
  assert "TF_USE_LEGACY_KERAS=1" in message


def test_non_model_raises_type_error():
  with pytest.raises(TypeError, match="must be a tf_keras Model, got str"):
    tf_compress.check_model("not a model")


def test_tf_keras_model_accepted():
  model = _tf_keras_model()
  assert tf_compress.check_model(model) is model
  assert tf_compress.analysis.count_params(model) == 4 * 2 + 2


def test_keras3_saved_file_is_refused_with_advice(tmp_path):
  path = tmp_path / "k3.keras"
  _keras3_model().save(path)
  with pytest.raises(tf_compress.ModelError,
                     match=r"saved by Keras 3\.[0-9.]+ \(Keras 3\)"):
    tf_compress.load_model(path)


def test_warns_when_tensorflow_was_imported_with_keras3():
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  code = ("import warnings; warnings.simplefilter('always')\n"
          "import tensorflow as tf\n"
          "assert tf.keras.__name__.startswith('keras'), tf.keras.__name__\n"
          "tf.keras.Model\n"
          "import tf_compress\n"
          "import keras\n"
          "m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])\n"
          "try:\n"
          "  tf_compress.check_model(m)\n"
          "except TypeError as e:\n"
          "  print('TYPEERROR', str(e)[:40])\n")
  result = subprocess.run([sys.executable, "-c", code], env=env,
                          capture_output=True, text=True, timeout=240,
                          check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "RuntimeWarning" in result.stderr
  assert "TF_USE_LEGACY_KERAS=1" in result.stderr
  assert "TYPEERROR `model` is a Keras 3 model" in result.stdout


def test_tf_keras_model_trains_after_binding():
  model = _tf_keras_model()
  model.compile("sgd", "mse")
  x = np.ones((8, 4), np.float32)
  loss = model.fit(x, np.zeros((8, 2)), epochs=1, verbose=0).history["loss"]
  assert np.isfinite(loss[0])
