"""Model registry, built-in models, persistence and model statistics."""

import numpy as np
import pytest

import tf_compress
from tf_compress import keras
from tf_compress import models


def test_registry_lists_builtins():
  assert {"cnn", "cnn_bn", "mlp"} <= set(models.available_models())


@pytest.mark.parametrize("keras_version", [3, 2])
def test_mobilenet_v2_builds_on_both_engines(keras_version):
  assert "mobilenet_v2" in models.available_models()
  with pytest.raises(tf_compress.ModelError, match="at least 32x32, got 8x8"):
    models.build_model("mobilenet_v2", (8, 8, 1), 10,
                       keras_version=keras_version)
  model = models.build_model("mobilenet_v2", (32, 32, 3), 10, width=0.35,
                             keras_version=keras_version)
  kinds = {type(layer).__name__ for layer in model.layers}
  assert {"DepthwiseConv2D", "Add", "GlobalAveragePooling2D"} <= kinds
  assert model.layers[-1].activation.__name__ == "linear"  # logits
  out = model(np.ones((2, 32, 32, 3), np.float32))
  assert tuple(out.shape) == (2, 10)
  # --width is the alpha: alpha 0.35 has 423,018 parameters with 10 classes.
  assert model.count_params() == 423_018


def test_cnn_on_digits_has_94k_params_and_logits():
  model = models.build_model("cnn", (8, 8, 1), 10, keras_version=2)
  assert model.output_shape == (None, 10)
  assert tf_compress.analysis.count_params(model) == 93_962
  assert model.layers[-1].activation is keras.activations.linear


@pytest.mark.parametrize("name,shape", [
    ("cnn", (32, 32, 3)), ("cnn", (28, 28, 1)), ("cnn", (4, 4, 1)),
    ("cnn_bn", (8, 8, 1)), ("mlp", (13,)), ("mlp", (8, 8, 1)),
], ids=lambda v: str(v))
def test_builders_handle_shapes(name, shape):
  model = models.build_model(name, shape, 3, keras_version=2)
  out = model(np.zeros((2,) + shape, np.float32))
  assert out.shape == (2, 3)


def test_same_seed_same_weights_and_width_scales():
  a = models.build_model("cnn", (8, 8, 1), 10, seed=5, keras_version=2)
  b = models.build_model("cnn", (8, 8, 1), 10, seed=5, keras_version=2)
  c = models.build_model("cnn", (8, 8, 1), 10, seed=6, keras_version=2)
  for wa, wb in zip(a.get_weights(), b.get_weights()):
    np.testing.assert_array_equal(wa, wb)
  assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])
  half = models.build_model("cnn", (8, 8, 1), 10, width=0.5, keras_version=2)
  assert half.get_layer("conv1").filters == 16
  assert half.get_layer("fc1").units == 64


@pytest.mark.parametrize("call,pattern", [
    (lambda: models.build_model("resnet9000", (8, 8, 1), 10, keras_version=2),
     "unknown model 'resnet9000'"),
    (lambda: models.build_model("cnn", (13,), 3,
                                keras_version=2), "use --model=mlp"),
    (lambda: models.build_model("cnn", (8, 8, 1), 1,
                                keras_version=2), "num_classes"),
    (lambda: models.build_model("mlp", (8,), 3, width=0,
                                keras_version=2), "width"),
], ids=["unknown", "cnn-on-tabular", "one-class", "zero-width"])
def test_builder_errors(call, pattern):
  with pytest.raises(tf_compress.ModelError, match=pattern):
    call()


def test_save_load_roundtrip_and_stats(tmp_path):
  model = models.build_model("mlp", (6,), 3, seed=1, keras_version=2)
  weights = model.get_weights()
  weights[0][:3] = 0.0  # 3 rows of 128 zeros
  model.set_weights(weights)
  path = tmp_path / "m.keras"
  size = models.save_model(model, path)
  assert size == path.stat().st_size > 0
  assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]
  loaded = models.load_model(path)
  x = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
  np.testing.assert_allclose(loaded.predict(x, verbose=0),
                             model.predict(x, verbose=0), rtol=1e-6)
  stats = tf_compress.model_stats(loaded, saved_path=path)
  total = 6 * 128 + 128 + 128 * 64 + 64 + 64 * 3 + 3
  biases = 128 + 64 + 3  # initialised to zero
  assert stats == {"params": total,
                   "nonzero_params": total - 3 * 128 - biases,
                   "keras_bytes": size}


def test_load_errors(tmp_path):
  with pytest.raises(tf_compress.ModelError, match="model file not found"):
    models.load_model(tmp_path / "missing.keras")
  corrupt = tmp_path / "corrupt.keras"
  corrupt.write_bytes(b"PK\x03\x04 this is not a zip")
  with pytest.raises(tf_compress.ModelError, match="corrupt.keras"):
    models.load_model(corrupt)
  other = tmp_path / "model.txt"
  other.write_text("hello")
  with pytest.raises(tf_compress.ModelError, match="expected a .keras"):
    models.load_model(other)


def test_check_model_fits():
  model = models.build_model("mlp", (6,), 3, keras_version=2)
  models.check_model_fits(model, (6,), 3)
  with pytest.raises(tf_compress.ModelError, match=r"shape \(7,\)"):
    models.check_model_fits(model, (7,), 3)
  with pytest.raises(tf_compress.ModelError, match="4 classes"):
    models.check_model_fits(model, (6,), 4)


def test_load_tfmot_model_loads_wrapped_models(tmp_path):
  model = models.build_model("mlp", (6,), 3, seed=1, keras_version=2)
  clustered = tf_compress.quantization.cluster_model(model, 4)
  path = tmp_path / "clustered.keras"
  models.save_model(clustered, path)
  with pytest.raises(tf_compress.ModelError, match="could not load"):
    models.load_model(path)  # tfmot's wrapper classes are unknown there
  loaded = models.load_tfmot_model(path)
  assert [type(layer).__name__ for layer in loaded.layers] == [
      type(layer).__name__ for layer in clustered.layers]
  for a, b in zip(loaded.get_weights(), clustered.get_weights()):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(tf_compress.ModelError, match="model file not found"):
    models.load_tfmot_model(tmp_path / "missing.h5")
