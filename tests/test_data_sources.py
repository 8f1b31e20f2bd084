"""Tests of tf_compress.data.sources (raw loaders and their errors)."""

import socket

import numpy as np
import pytest

from tf_compress._keras import tf
from tf_compress.data import load_dataset
from tf_compress.data import sources
from tf_compress.errors import DataError


def _save_npz(path, **overrides):
  rng = np.random.default_rng(0)
  arrays = {
      "x_train": rng.integers(0, 256, (40, 6, 6), dtype=np.uint8),
      "y_train": np.tile(np.arange(4), 10),
      "x_test": rng.integers(0, 256, (12, 6, 6), dtype=np.uint8),
      "y_test": np.tile(np.arange(4), 3),
  }
  arrays.update(overrides)
  np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
  return arrays


def _png(path, height, width, channels, value):
  image = tf.fill([height, width, channels], tf.constant(value, tf.uint8))
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(tf.io.encode_png(image).numpy())


@pytest.fixture
def image_dir(tmp_path):
  root = tmp_path / "pets"
  # (height, width): heights 10,14,20,30,10 (median 14 -> 16) and widths
  # 9,10,11,40,30 (median 11 -> 8).
  _png(root / "cat" / "a.png", 10, 9, 1, 200)
  _png(root / "cat" / "b.png", 14, 10, 1, 100)
  _png(root / "dog" / "c.png", 20, 11, 3, 50)
  _png(root / "dog" / "nested" / "d.png", 30, 40, 3, 60)
  _png(root / "dog" / "e.png", 10, 30, 3, 70)
  (root / "dog" / "notes.txt").write_text("not an image, ignored")
  return root


def test_digits_raw():
  raw = sources.load_raw("digits")
  assert raw.x_train.shape == (1797, 8, 8, 1)
  assert raw.x_train.max() == 16 and raw.raw_range == (0, 16)
  assert raw.x_test is None and raw.kind == "image"
  assert raw.class_names == tuple(str(i) for i in range(10))


@pytest.mark.parametrize("name,shape,classes",
                         [("iris", (150, 4), 3), ("wine", (178, 13), 3),
                          ("breast_cancer", (569, 30), 2)])
def test_sklearn_tabular(name, shape, classes):
  raw = sources.load_sklearn(name)
  assert raw.x_train.shape == shape and raw.kind == "tabular"
  assert len(raw.class_names) == classes
  assert raw.y_train.dtype == np.int64


def test_npz_adds_channel_axis_and_keeps_test_split(tmp_path):
  path = tmp_path / "small.npz"
  arrays = _save_npz(path)
  raw = sources.load_raw(str(path))
  assert raw.source_kind == "npz" and raw.name == "small"
  assert raw.x_train.shape == (40, 6, 6, 1)
  np.testing.assert_array_equal(raw.x_test[..., 0], arrays["x_test"])
  assert raw.raw_range == (0, 255)
  assert raw.class_names == ("0", "1", "2", "3")


def test_npz_squeezes_column_labels_and_float_data(tmp_path):
  path = tmp_path / "col.npz"
  _save_npz(path, y_train=np.tile(np.arange(4), 10)[:, None].astype(float),
            x_train=np.ones((40, 5), np.float32),
            x_test=np.zeros((12, 5), np.float32))
  raw = sources.load_npz(path)
  assert raw.y_train.shape == (40,) and raw.y_train.dtype == np.int64
  assert raw.kind == "tabular" and raw.raw_range is None


@pytest.mark.parametrize("overrides,message", [
    ({"y_test": None}, r"missing keys \['y_test'\].*found"),
    ({"y_train": np.zeros(39, np.int64)}, "train split has 40 samples but 39"),
    ({"y_train": -np.ones(40, np.int64)}, "integers >= 0"),
    ({"y_train": np.full(40, 0.5)}, "integers >= 0"),
    ({"y_train": np.zeros((40, 4))}, "1-D class indices"),
    ({"x_test": np.zeros((12, 7, 7), np.uint8)}, r"test samples \(7, 7, 1\)"),
    ({"x_train": np.full((40, 3), np.nan)}, "NaN"),
])
def test_npz_content_errors(tmp_path, overrides, message):
  path = tmp_path / "bad_content.npz"
  _save_npz(path, **overrides)
  with pytest.raises(DataError, match=message) as info:
    load_dataset(str(path))
  assert "\n" not in str(info.value)


@pytest.mark.parametrize("content", [b"not a zip at all", b"PK\x03\x04trunc"])
def test_corrupt_npz(tmp_path, content):
  path = tmp_path / "corrupt.npz"
  path.write_bytes(content)
  with pytest.raises(DataError, match=r"could not read '.*corrupt.npz' as an "
                     r"\.npz file"):
    load_dataset(str(path))


def test_npy_file_is_not_an_archive(tmp_path):
  path = tmp_path / "single.npz"
  with open(path, "wb") as f:
    np.save(f, np.zeros(3))
  with pytest.raises(DataError, match="single array"):
    sources.load_npz(path)


@pytest.mark.parametrize("source", ["missing.npz", "some/dir/data.npz",
                                    "some/folder"])
def test_missing_file(source):
  with pytest.raises(DataError, match=f"file not found: '{source}'"):
    load_dataset(source)


def test_unknown_dataset():
  with pytest.raises(DataError) as info:
    load_dataset("xyz")
  assert str(info.value) == (
      "unknown dataset 'xyz': expected one of digits, iris, wine, "
      "breast_cancer, digits32, mnist, fashion_mnist, cifar10, cifar100, "
      "tfds:NAME, a "
      "path to an .npz file or an image directory")


def test_image_dir_auto_size(image_dir):
  raw = sources.load_raw(str(image_dir))
  assert raw.class_names == ("cat", "dog")
  assert raw.source_kind == "image_dir" and raw.name == "pets"
  np.testing.assert_array_equal(raw.y_train, [0, 0, 1, 1, 1])
  # Files in sorted path order: cat/a, cat/b, dog/c, dog/e, dog/nested/d.
  assert raw.image_sizes == ((10, 9), (14, 10), (20, 11), (10, 30), (30, 40))
  # One RGB image forces 3 channels; recommended size is [16, 8].
  assert raw.x_train.shape == (5, 16, 8, 3) and raw.x_train.dtype == np.uint8
  np.testing.assert_array_equal(raw.x_train[0], np.full((16, 8, 3), 200))
  np.testing.assert_array_equal(raw.x_train[3], np.full((16, 8, 3), 70))


def test_image_dir_given_size_and_grayscale(tmp_path):
  root = tmp_path / "gray"
  _png(root / "a" / "1.png", 12, 7, 1, 10)
  _png(root / "a" / "2.png", 12, 7, 1, 11)
  _png(root / "b" / "3.png", 5, 20, 1, 20)
  _png(root / "b" / "4.png", 6, 20, 1, 21)
  splits = load_dataset(str(root), image_size=(6, 5), test_fraction=0.5,
                        validation_fraction=0.0)
  assert splits.input_shape == (6, 5, 1)
  assert splits.raw_x.shape == (4, 6, 5, 1)
  assert sorted(splits.image_sizes) == [(5, 20), (6, 20), (12, 7), (12, 7)]
  assert sorted(np.unique(splits.raw_x).tolist()) == [10, 11, 20, 21]
  assert splits.analyze()["image_sizes"]["recommended_size"] == [8, 16]


def test_image_dir_errors(tmp_path):
  empty_root = tmp_path / "flat"
  empty_root.mkdir()
  (empty_root / "x.png").write_bytes(b"")
  with pytest.raises(DataError, match="no class subfolders"):
    load_dataset(str(empty_root))
  one = tmp_path / "one"
  _png(one / "only" / "a.png", 4, 4, 1, 0)
  with pytest.raises(DataError, match="only one class subfolder .*only"):
    load_dataset(str(one))
  _png(one / "second" / "b.png", 4, 4, 1, 0)
  (one / "empty").mkdir()
  with pytest.raises(DataError, match="'.*empty' has no images"):
    load_dataset(str(one))
  (one / "empty" / "broken.png").write_bytes(b"garbage bytes")
  with pytest.raises(DataError, match="could not decode image .*broken.png"):
    load_dataset(str(one))
  with pytest.raises(DataError, match="image_size must be"):
    load_dataset(str(one), image_size=(0, 4))


def test_image_size_rejected_for_non_image_sources():
  with pytest.raises(DataError, match="only to image directories"):
    load_dataset("iris", image_size=(8, 8))


@pytest.fixture
def offline(monkeypatch, tmp_path):
  """No network: addresses resolve to a test address; connect fails."""
  monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))

  def fake_getaddrinfo(host, port, *args, **kwargs):
    del host, args, kwargs
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "",
             ("192.0.2.1", port or 443))]

  def refuse(self, address):
    del self, address
    raise OSError("network is unreachable")

  monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
  monkeypatch.setattr(socket.socket, "connect", refuse)
  return tmp_path


def test_keras_download_offline(offline):
  del offline
  before = socket.getdefaulttimeout()
  with pytest.raises(DataError) as info:
    load_dataset("mnist")
  message = str(info.value)
  assert message.startswith("dataset 'mnist' must be downloaded and the "
                            "download failed (")
  assert "network is unreachable" in message
  assert ".npz" in message and "--dataset=digits" in message
  assert "\n" not in message
  assert socket.getdefaulttimeout() == before


def test_tfds_offline_or_missing(offline):
  del offline
  with pytest.raises(DataError, match=r"tfds:mnist.*\.npz"):
    load_dataset("tfds:mnist")
