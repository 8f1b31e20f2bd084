"""Raw dataset loaders: each returns a `RawData` of arrays in original units.

Loaders only read and check data; splitting and normalisation live in
`tf_compress.data.splits`. Every problem with the input is raised as a
one-line `DataError` that names the file or dataset and says what to do.
"""

import dataclasses
import os
import pickle
import socket
import zipfile

import numpy as np

from tf_compress._keras import keras, tf
from tf_compress.data import digits32
from tf_compress.data import statistics
from tf_compress.errors import DataError

__all__ = ["RawData", "load_raw", "load_sklearn", "load_digits32",
           "load_npz", "load_image_directory", "load_keras_dataset",
           "load_tfds", "SKLEARN_DATASETS", "DERIVED_DATASETS",
           "KERAS_DATASETS", "IMAGE_EXTENSIONS"]

SKLEARN_DATASETS = ("digits", "iris", "wine", "breast_cancer")
DERIVED_DATASETS = ("digits32",)
KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar100")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
_DOWNLOAD_TIMEOUT_S = 10
_KNOWN_CLASS_NAMES = {
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog",
                "frog", "horse", "ship", "truck"),
}
_NPZ_ADVICE = ("Save the arrays as an .npz file with keys x_train, y_train, "
               "x_test, y_test and pass its path instead, or use "
               "--dataset=digits.")


@dataclasses.dataclass(frozen=True, eq=False)
class RawData:
  """Arrays of one source, before splitting and normalisation.

  Attributes:
    name: short dataset name (the source name, or the file/folder name).
    x_train: samples; images are (N, H, W, C), tables (N, F).
    y_train: 1-D int64 labels.
    x_test: the source's own test samples, or None when it has no test split.
    y_test: labels of `x_test`, or None.
    class_names: one name per class index.
    kind: "image" or "tabular".
    raw_range: (low, high) the raw values can take when known a priori (e.g.
      (0, 16) for digits, (0, 255) for uint8 images), else None.
    image_sizes: original (height, width) of each image of an image folder,
      else None.
    source_kind: "sklearn", "derived" (digits32), "npz", "image_dir",
      "keras" or "tfds".
    x_val: the source's own validation samples, or None (then validation
      is split off the training samples).
    y_val: labels of `x_val`, or None.
  """
  name: str
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: object
  y_test: object
  class_names: tuple
  kind: str
  raw_range: object
  image_sizes: object
  source_kind: str
  x_val: object = None
  y_val: object = None


def _short(exc, limit=200):
  text = " ".join(str(exc).split()) or type(exc).__name__
  return text if len(text) <= limit else text[:limit - 3] + "..."


def _unknown_source(source):
  return DataError(
      f"unknown dataset '{source}': expected one of "
      f"{', '.join(SKLEARN_DATASETS + DERIVED_DATASETS + KERAS_DATASETS)}, "
      "tfds:NAME, a path to an .npz file or an image directory")


def _check_labels(y, split, where):
  """Returns `y` as 1-D int64, or raises DataError."""
  y = np.asarray(y)
  if y.ndim == 2 and y.shape[1] == 1:
    y = y[:, 0]
  if y.ndim != 1:
    raise DataError(
        f"{where}: {split} labels must be 1-D class indices, got shape "
        f"{y.shape}; if they are one-hot, store np.argmax(y, axis=1).")
  if np.issubdtype(y.dtype, np.integer):
    pass
  elif np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and (
      np.all(y == np.round(y))):
    pass
  else:
    raise DataError(
        f"{where}: {split} labels must be integers >= 0, got dtype "
        f"{y.dtype}; map them to class indices 0..K-1.")
  if y.size and y.min() < 0:
    raise DataError(
        f"{where}: {split} labels must be integers >= 0, found {y.min()}; "
        "map them to class indices 0..K-1.")
  return y.astype(np.int64)


def _check_samples(x, y, split, where):
  """Checks a (x, y) split; returns x with a channel axis and int64 y."""
  x = np.asarray(x)
  if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
    raise DataError(
        f"{where}: x_{split} must be numeric, got dtype {x.dtype}.")
  if x.ndim not in (2, 3, 4):
    raise DataError(
        f"{where}: x_{split} must be (N, features), (N, H, W) or "
        f"(N, H, W, C), got shape {x.shape}.")
  y_arr = np.asarray(y)
  if len(x) != len(y_arr):
    raise DataError(
        f"{where}: the {split} split has {len(x)} samples but {len(y_arr)} "
        "labels; labels must match samples one to one.")
  if len(x) == 0:
    raise DataError(f"{where}: the {split} split has no samples.")
  y = _check_labels(y_arr, split, where)
  if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
    raise DataError(
        f"{where}: x_{split} contains NaN or infinite values; clean them "
        "before loading.")
  if x.ndim == 3:
    x = x[..., np.newaxis]
  return x, y


def _raw_range_of(x):
  return (0, 255) if x.dtype == np.uint8 else None


def _from_train_test(name, source_kind, where, x_train, y_train, x_test,
                     y_test, class_names=None):
  """Builds RawData from a source that provides train and test splits."""
  x_train, y_train = _check_samples(x_train, y_train, "train", where)
  x_test, y_test = _check_samples(x_test, y_test, "test", where)
  if x_train.shape[1:] != x_test.shape[1:]:
    raise DataError(
        f"{where}: train samples have shape {x_train.shape[1:]} but test "
        f"samples {x_test.shape[1:]}; both splits need the same shape.")
  num_classes = int(max(y_train.max(), y_test.max())) + 1
  if class_names is None or len(class_names) < num_classes:
    class_names = tuple(str(i) for i in range(num_classes))
  raw_range = _raw_range_of(x_train) if x_test.dtype == x_train.dtype else None
  return RawData(name, x_train, y_train, x_test, y_test, tuple(class_names),
                 "image" if x_train.ndim == 4 else "tabular", raw_range, None,
                 source_kind)


def load_sklearn(name):
  """Loads one of scikit-learn's bundled datasets (no download).

  Args:
    name: "digits" (8x8 images, values 0..16), "iris", "wine" or
      "breast_cancer" (tables).

  Returns:
    A `RawData` without a test split.

  Raises:
    DataError: for another name.
  """
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  loaders = {"digits": datasets.load_digits, "iris": datasets.load_iris,
             "wine": datasets.load_wine,
             "breast_cancer": datasets.load_breast_cancer}
  if name not in loaders:
    raise _unknown_source(name)
  bunch = loaders[name]()
  y = bunch.target.astype(np.int64)
  class_names = tuple(str(c) for c in bunch.target_names)
  if name == "digits":
    x = bunch.images[..., np.newaxis]
    return RawData(name, x, y, None, None, class_names, "image", (0, 16),
                   None, "sklearn")
  return RawData(name, np.asarray(bunch.data), y, None, None, class_names,
                 "tabular", None, None, "sklearn")


def load_digits32(seed=0):
  """Loads digits32, the harder 32x32 colour set derived from digits.

  It is built from scikit-learn's digits on first use (seconds, no
  download) and cached; see `tf_compress.data.build_digits32`.

  Args:
    seed: the seed of the source split and of every rendering.

  Returns:
    A `RawData` of uint8 (N, 32, 32, 3) images with the set's own
    validation and test splits, raw_range (0, 255).

  Raises:
    DataError: for a bad seed.
  """
  data = digits32.build_digits32(seed=seed)
  return RawData("digits32", data.x_train, data.y_train, data.x_test,
                 data.y_test, tuple(str(i) for i in range(10)), "image",
                 (0, 255), None, "derived", x_val=data.x_val,
                 y_val=data.y_val)


def load_npz(path):
  """Loads an .npz file in the keras MNIST layout.

  Args:
    path: file with arrays x_train, y_train, x_test, y_test. Images may be
      (N, H, W) or (N, H, W, C); tables (N, F). Labels are class indices,
      (N,) or (N, 1).

  Returns:
    A `RawData` with the file's test split. uint8 data gets raw_range
    (0, 255); other data None (the range is then taken from the data).

  Raises:
    DataError: if the file is missing, unreadable, lacks keys, or its
      arrays are inconsistent.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise DataError(f"file not found: '{path}'; check the path.")
  try:
    archive = np.load(path, allow_pickle=False)
    if not isinstance(archive, np.lib.npyio.NpzFile):
      raise ValueError("it holds a single array, not an archive of arrays")
    with archive:
      missing = [k for k in NPZ_KEYS if k not in archive.files]
      if missing:
        raise DataError(
            f"'{path}' is missing keys {missing} (found {archive.files}); an "
            "npz dataset needs x_train, y_train, x_test and y_test.")
      arrays = {k: archive[k] for k in NPZ_KEYS}
  except DataError:
    raise
  except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError,
          pickle.UnpicklingError) as e:
    raise DataError(
        f"could not read '{path}' as an .npz file: {_short(e)}; save it with "
        "np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)."
    ) from e
  name = os.path.splitext(os.path.basename(path))[0]
  return _from_train_test(name, "npz", f"'{path}'", arrays["x_train"],
                          arrays["y_train"], arrays["x_test"],
                          arrays["y_test"])


def _with_download_guard(name, load_fn):
  """Runs `load_fn` with a socket timeout; any failure becomes DataError."""
  old_timeout = socket.getdefaulttimeout()
  socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
  try:
    return load_fn()
  except Exception as e:  # pylint: disable=broad-except
    raise DataError(
        f"dataset '{name}' must be downloaded and the download failed "
        f"({_short(e)}); this machine may be offline. {_NPZ_ADVICE}") from e
  finally:
    socket.setdefaulttimeout(old_timeout)


def load_keras_dataset(name):
  """Loads mnist, fashion_mnist, cifar10 or cifar100 via keras.datasets.

  These are downloaded on first use into $KERAS_HOME/datasets (when
  KERAS_HOME is set) or ~/.keras/datasets.

  Args:
    name: one of `KERAS_DATASETS`.

  Returns:
    A `RawData` with the dataset's own test split.

  Raises:
    DataError: for an unknown name or when the download fails.
  """
  if name not in KERAS_DATASETS:
    raise _unknown_source(name)
  module = getattr(keras.datasets, name)
  cache_dir = os.environ.get("KERAS_HOME") or None
  (x_train, y_train), (x_test, y_test) = _with_download_guard(
      name, lambda: module.load_data(cache_dir=cache_dir))
  return _from_train_test(name, "keras", f"dataset '{name}'", x_train,
                          y_train, x_test, y_test,
                          _KNOWN_CLASS_NAMES.get(name))


def load_tfds(name):
  """Loads a TensorFlow Datasets dataset with train and test splits.

  Args:
    name: the tfds name (without the "tfds:" prefix), e.g. "mnist".

  Returns:
    A `RawData` with the dataset's test split.

  Raises:
    DataError: if tensorflow_datasets is not installed, the dataset cannot
      be downloaded or built, or it has no train/test split.
  """
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise DataError(
        f"dataset 'tfds:{name}' needs the tensorflow_datasets package, which "
        f"is not installed ({_short(e)}). Install it, or "
        + _NPZ_ADVICE[0].lower() + _NPZ_ADVICE[1:]) from e

  def load():
    (train, test), info = tfds.load(
        name, split=["train", "test"], as_supervised=True, batch_size=-1,
        with_info=True)
    return tfds.as_numpy(train), tfds.as_numpy(test), info

  (x_train, y_train), (x_test, y_test), info = _with_download_guard(
      f"tfds:{name}", load)
  class_names = None
  try:
    class_names = tuple(info.features["label"].names)
  except Exception:  # pylint: disable=broad-except
    pass
  return _from_train_test(name, "tfds", f"dataset 'tfds:{name}'", x_train,
                          y_train, x_test, y_test, class_names)


# The first bytes of each format `tf.io.decode_image` reads.
_IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a",
                     b"GIF89a", b"BM")


def _check_inside(path, root, top):
  """Refuses a symbolic link that leads out of the image directory `top`."""
  if os.path.islink(path):
    target = os.path.realpath(path)
    if os.path.commonpath([root, target]) != root:
      raise DataError(
          f"image directory '{top}': '{path}' is a symbolic link to "
          f"'{target}', outside the directory; copy the file in or remove "
          "the link.")


def _image_files(directory, root, top):
  """Image files under `directory`; links must stay inside `root`."""
  files = []
  for parent, dirs, names in os.walk(directory):
    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    for name in dirs:
      _check_inside(os.path.join(parent, name), root, top)
    for name in sorted(names):
      if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."):
        _check_inside(os.path.join(parent, name), root, top)
        files.append(os.path.join(parent, name))
  return sorted(files)


def _decode_image(path):
  """Returns the image as uint8 (H, W, 1 or 3) and whether it was colour."""
  try:
    with open(path, "rb") as handle:
      head = handle.read(8)
  except OSError as e:
    raise DataError(f"could not read image '{path}': "
                    f"{e.strerror or e}.") from e
  if not head.startswith(_IMAGE_SIGNATURES):
    # Only image bytes reach the decoders.
    raise DataError(
        f"could not decode image '{path}': it is not an image (it does not "
        f"begin like a PNG, JPEG, GIF or BMP file, but {head!r}); remove the "
        "file or convert it to PNG or JPEG.")
  try:
    image = tf.io.decode_image(tf.io.read_file(path), channels=0,
                               dtype=tf.uint8, expand_animations=False)
  except (tf.errors.OpError, ValueError) as e:
    raise DataError(
        f"could not decode image '{path}': {_short(e, 120)}; remove the file "
        "or convert it to PNG or JPEG.") from e
  image = image.numpy()
  channels = image.shape[-1]
  if channels == 2:  # grey + alpha
    image = image[..., :1]
  elif channels == 4:  # RGB + alpha
    image = image[..., :3]
  return image, image.shape[-1] == 3


def _resize(image, size):
  if tuple(image.shape[:2]) == tuple(size):
    return image
  resized = tf.image.resize(image, size, method="bilinear", antialias=True)
  return np.clip(np.round(resized.numpy()), 0, 255).astype(np.uint8)


def _check_image_size(image_size):
  if image_size is None:
    return None
  try:
    h, w = image_size
    ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
             and v > 0 for v in (h, w))
  except (TypeError, ValueError):
    ok = False
  if not ok:
    raise DataError(
        f"image_size must be (height, width) with positive ints, got "
        f"{image_size!r}.")
  return int(h), int(w)


def load_image_directory(path, image_size=None):
  """Loads an image folder with one subfolder per class.

  Subfolder names, sorted, are the class names; label i is the i-th name.
  Files ending in .png, .jpg, .jpeg, .bmp or .gif (first frame) are read,
  also from nested folders. All images get 3 channels if any image is colour
  (greyscale ones are repeated), otherwise 1; alpha is dropped.

  Args:
    path: the root folder.
    image_size: (height, width) to resize to. None picks
      `statistics.image_size_stats(...)["recommended_size"]`; the images are
      then decoded twice (sizes first) so that memory stays bounded.

  Returns:
    A `RawData` of uint8 images (N, H, W, C) without a test split, with the
    original (height, width) of every image in `image_sizes`.

  Symbolic links (class folders, nested folders, images) must point inside
  the folder, and every image file must hold image bytes (PNG, JPEG, GIF or
  BMP), whatever its extension says.

  Raises:
    DataError: if the folder has fewer than 2 class subfolders, a class
      folder has no images, a link points outside the folder, a file named
      like an image is not one or cannot be decoded, or image_size is bad.
  """
  path = os.fspath(path)
  image_size = _check_image_size(image_size)
  root = os.path.realpath(path)
  classes = sorted(e.name for e in os.scandir(path)
                   if e.is_dir() and not e.name.startswith("."))
  for name in classes:
    _check_inside(os.path.join(path, name), root, path)
  if not classes:
    raise DataError(
        f"image directory '{path}' has no class subfolders; put each class's "
        f"images in its own subfolder, e.g. {os.path.join(path, 'cat')} and "
        f"{os.path.join(path, 'dog')}.")
  if len(classes) < 2:
    raise DataError(
        f"image directory '{path}' has only one class subfolder "
        f"('{classes[0]}'); a classifier needs at least 2 classes.")
  files, labels = [], []
  for label, name in enumerate(classes):
    class_files = _image_files(os.path.join(path, name), root, path)
    if not class_files:
      raise DataError(
          f"class folder '{os.path.join(path, name)}' has no images "
          f"({', '.join(IMAGE_EXTENSIONS)}); add images or remove it.")
    files.extend(class_files)
    labels.extend([label] * len(class_files))

  if image_size is None:
    sizes = [_decode_image(f)[0].shape[:2] for f in files]
    image_size = tuple(statistics.image_size_stats(sizes)["recommended_size"])
  images, sizes, any_colour = [], [], False
  for f in files:
    image, colour = _decode_image(f)
    sizes.append((int(image.shape[0]), int(image.shape[1])))
    any_colour = any_colour or colour
    images.append(_resize(image, image_size))
  channels = 3 if any_colour else 1
  x = np.empty((len(images),) + tuple(image_size) + (channels,), np.uint8)
  for i, image in enumerate(images):
    x[i] = image if image.shape[-1] == channels else np.repeat(image, 3, -1)
  name = os.path.basename(os.path.normpath(path)) or path
  return RawData(name, x, np.asarray(labels, np.int64), None, None,
                 tuple(classes), "image", (0, 255), tuple(sizes), "image_dir")


def load_raw(source, image_size=None, seed=0):
  """Dispatches `source` to the matching loader.

  Args:
    source: "digits", "iris", "wine", "breast_cancer", "digits32", "mnist",
      "fashion_mnist", "cifar10", "cifar100", "tfds:NAME", a path to an .npz
      file, or a path to an image directory.
    image_size: (height, width) for image directories; must be None for
      other sources.
    seed: the seed of derived sets (digits32); other sources ignore it.

  Returns:
    A `RawData`.

  Raises:
    DataError: for an unknown source, a missing path or unusable data.
  """
  if not isinstance(source, (str, os.PathLike)):
    raise DataError(
        f"dataset must be a name or a path, got {type(source).__name__}.")
  source = os.fspath(source)
  if os.path.isdir(source):
    return load_image_directory(source, image_size)
  if image_size is not None:
    raise DataError(
        f"image_size={image_size!r} applies only to image directories, but "
        f"dataset '{source}' is not one; leave image_size unset.")
  if os.path.isfile(source):
    if source.lower().endswith(".npz") or zipfile.is_zipfile(source):
      return load_npz(source)
    raise DataError(
        f"'{source}' is a file but not an .npz archive; expected an .npz "
        "file with keys x_train, y_train, x_test, y_test.")
  if source in SKLEARN_DATASETS:
    return load_sklearn(source)
  if source in DERIVED_DATASETS:
    return load_digits32(seed)
  if source in KERAS_DATASETS:
    return load_keras_dataset(source)
  if source.startswith("tfds:") and len(source) > len("tfds:"):
    return load_tfds(source[len("tfds:"):])
  if source.lower().endswith(".npz") or os.sep in source or (
      os.altsep and os.altsep in source):
    raise DataError(f"file not found: '{source}'; check the path.")
  raise _unknown_source(source)
