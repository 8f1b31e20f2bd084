"""Saving and loading Keras 3 models, tf_keras ones beside them, safe mode.

Files load into the Keras that saved them; a Lambda layer, and any
full-model .h5 file, is refused unless the caller passes `safe_mode=False`.
"""

import json
import os
import zipfile

import keras
import numpy as np
import pytest
import tf_keras

import tf_compress
from tf_compress import _tfmot
from tf_compress import models

L = keras.layers
X = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")


@keras.saving.register_keras_serializable(package="tf_compress_tests")
class Net(keras.Model):
  """A registered subclassed model: Dense(width) -> Dense(2)."""

  def __init__(self, width=5, **kwargs):
    super().__init__(**kwargs)
    self.width = width
    self.hidden = L.Dense(width, activation="relu", name="hidden")
    self.out = L.Dense(2, name="out")

  def call(self, x):
    return self.out(self.hidden(x))

  def get_config(self):
    return {**super().get_config(), "width": self.width}


def _sequential():
  return keras.Sequential([keras.Input((4,)), L.Dense(3, name="fc1"),
                           L.Dense(2, name="fc2")], name="seq")


def _functional():
  inputs = keras.Input((4,))
  x = L.Dense(3, activation="relu", name="fc1")(inputs)
  x = L.Concatenate(name="cat")([x, inputs])
  return keras.Model(inputs, L.Dense(2, name="fc2")(x), name="func")


def _subclassed():
  net = Net(width=6, name="net")
  net(X[:1])
  return net


def _nested():
  inner = keras.Sequential([keras.Input((4,)), L.Dense(3, name="a")],
                           name="inner")
  inputs = keras.Input((4,))
  return keras.Model(inputs, L.Dense(2, name="head")(inner(inputs)),
                     name="outer")


def _lambda_model(k):
  return k.Sequential([k.Input((4,)), k.layers.Lambda(lambda x: x * 2.0),
                       k.layers.Dense(2)])


@pytest.fixture
def no_tfmot(monkeypatch):
  """Fails the test if loading a Keras 3 file reaches for tfmot."""

  def refuse():
    raise AssertionError("tfmot was imported for a Keras 3 file")

  monkeypatch.setattr(_tfmot, "import_tfmot", refuse)


def _metadata(path):
  with zipfile.ZipFile(path) as archive:
    return json.loads(archive.read("metadata.json"))


@pytest.mark.parametrize("build", [_sequential, _functional, _subclassed,
                                   _nested],
                         ids=["sequential", "functional", "subclassed",
                              "nested"])
def test_round_trip(build, tmp_path, no_tfmot):
  model = build()
  path = tmp_path / "m.keras"
  size = tf_compress.save_model(model, path)
  assert size == path.stat().st_size > 0
  assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]
  assert _metadata(path)["keras_version"].startswith("3.")
  for loader in (tf_compress.load_model, models.load_tfmot_model):
    loaded = loader(path)
    assert isinstance(loaded, keras.Model)
    assert type(loaded) is type(model) and loaded.name == model.name
    np.testing.assert_allclose(loaded.predict(X, verbose=0),
                               model.predict(X, verbose=0), rtol=1e-6)
  if build is _nested:
    assert [layer.name for layer in loaded.layers[1].layers] == ["a"]


@pytest.mark.parametrize("build", [_functional, _subclassed],
                         ids=["functional", "subclassed"])
def test_optimizer_state_kept_or_dropped(build, tmp_path):
  model = build()
  model.compile("adam", "mse")
  model.fit(X, np.zeros((5, 2), "float32"), verbose=0)
  with_state = tmp_path / "state.keras"
  without = tmp_path / "plain.keras"
  tf_compress.save_model(model, with_state)
  tf_compress.save_model(model, without, include_optimizer=False)
  resumed = tf_compress.load_model(with_state)
  assert int(resumed.optimizer.iterations) == 1
  plain = tf_compress.load_model(without)
  np.testing.assert_allclose(plain.predict(X, verbose=0),
                             model.predict(X, verbose=0), rtol=1e-6)
  assert not plain.compiled and getattr(plain, "optimizer", None) is None
  assert without.stat().st_size < with_state.stat().st_size


def test_keras3_h5_round_trip(tmp_path):
  model = _functional()
  path = tmp_path / "m.h5"
  tf_compress.save_model(model, path)
  with pytest.raises(tf_compress.ModelError, match="full-model .h5 file"):
    tf_compress.load_model(path)
  loaded = tf_compress.load_model(path, safe_mode=False)
  assert isinstance(loaded, keras.Model)
  np.testing.assert_allclose(loaded.predict(X, verbose=0),
                             model.predict(X, verbose=0), rtol=1e-6)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_tf_keras_files_still_load_into_tf_keras(suffix, tmp_path):
  model = models.build_model("mlp", (4,), 3, seed=1, keras_version=2)
  path = tmp_path / f"m{suffix}"
  tf_compress.save_model(model, path)
  loaded = tf_compress.load_model(path, safe_mode=suffix != ".h5")
  assert isinstance(loaded, tf_keras.Model)
  assert not isinstance(loaded, keras.Model)
  np.testing.assert_allclose(loaded.predict(X, verbose=0),
                             model.predict(X, verbose=0), rtol=1e-6)


def _save_lambda(k, path):
  model = _lambda_model(k)
  if str(path).endswith(".h5") or k is keras:
    tf_compress.save_model(model, path)
  else:  # a tf_keras SavedModel directory
    model.save(path, save_format="tf")
  return model


@pytest.mark.filterwarnings("ignore:The object being serialized")
@pytest.mark.parametrize("k,name", [
    (keras, "k3.keras"), (keras, "k3.h5"), (tf_keras, "k2.keras"),
    (tf_keras, "k2.h5"), (tf_keras, "k2_savedmodel"),
], ids=["keras3_keras", "keras3_h5", "tf_keras_keras", "tf_keras_h5",
        "tf_keras_savedmodel"])
def test_lambda_refused_in_safe_mode(k, name, tmp_path):
  path = tmp_path / name
  model = _save_lambda(k, path)
  for loader in (tf_compress.load_model, models.load_tfmot_model):
    with pytest.raises(tf_compress.ModelError) as info:
      loader(path)
    message = str(info.value)
    assert f"'{path}'" in message
    # tf_keras writes save_format="tf" under a .keras name as HDF5.
    assert ("Keras' legacy HDF5 format" if name.endswith((".h5", "k2.keras"))
            else "contains a Lambda layer (arbitrary Python code") in message
    assert ("if you trust the file, pass --allow_unsafe_load on the command "
            "line or safe_mode=False") in message
  loaded = tf_compress.load_model(path, safe_mode=False)
  assert isinstance(loaded, k.Model)
  assert type(loaded.layers[0]).__name__ == "Lambda"
  np.testing.assert_allclose(loaded.predict(X, verbose=0),
                             model.predict(X, verbose=0), rtol=1e-6)


def test_corrupt_and_foreign_files(tmp_path):
  good = tmp_path / "good.keras"
  tf_compress.save_model(_sequential(), good)
  truncated = tmp_path / "truncated.keras"
  truncated.write_bytes(good.read_bytes()[:200])
  with pytest.raises(tf_compress.ModelError, match="truncated.keras"):
    tf_compress.load_model(truncated)
  # Keras 3 metadata, but a config that describes no model.
  broken = tmp_path / "broken.keras"
  with zipfile.ZipFile(good) as source, zipfile.ZipFile(broken, "w") as out:
    out.writestr("metadata.json", source.read("metadata.json"))
    out.writestr("config.json", "{not json")
    out.writestr("model.weights.h5", source.read("model.weights.h5"))
  with pytest.raises(tf_compress.ModelError,
                     match=r"could not load the model '.*broken.keras' "
                     r"\(saved by Keras 3\.") as info:
    tf_compress.load_model(broken)
  assert "\n" not in str(info.value)
  bad_meta = tmp_path / "bad_meta.keras"
  with zipfile.ZipFile(bad_meta, "w") as out:
    out.writestr("metadata.json", "[not an object")
    out.writestr("config.json", "{}")
  with pytest.raises(tf_compress.ModelError, match="metadata.json"):
    tf_compress.load_model(bad_meta)
  with pytest.raises(tf_compress.ModelError, match="model file not found"):
    tf_compress.load_model(tmp_path / "missing.keras")


def test_unzipped_keras3_directory_loads(tmp_path):
  model = _functional()
  path = tmp_path / "m.keras"
  tf_compress.save_model(model, path)
  directory = tmp_path / "unzipped"
  with zipfile.ZipFile(path) as archive:
    archive.extractall(directory)
  assert os.path.isfile(directory / "metadata.json")
  loaded = tf_compress.load_model(directory)
  assert isinstance(loaded, keras.Model)
  np.testing.assert_allclose(loaded.predict(X, verbose=0),
                             model.predict(X, verbose=0), rtol=1e-6)


def test_save_model_refuses_non_models(tmp_path):
  with pytest.raises(TypeError, match="Keras 3 or tf_keras Model, got Dense"):
    tf_compress.save_model(L.Dense(2), tmp_path / "x.keras")
  assert not list(tmp_path.iterdir())
