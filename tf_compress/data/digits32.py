"""digits32: a harder 32x32 colour benchmark derived from sklearn's digits.

It is not an independent data set: every image is a rendering of one of the
1,797 8x8 digits bundled with scikit-learn (nothing is downloaded). The
source images are split into train, validation and test first (stratified
by class, seeded); each split is then expanded on its own, so no rendering
of a test digit, not even as background clutter, is ever seen in training.

Each image is the 8x8 source, upsampled with a cubic spline, under a random
affine transform (rotation, scale, aspect, shear, translation), its strokes
thinned or thickened (grey erosion/dilation) and softly thresholded, painted
in a random foreground colour over a random, textured background, with
clutter (line strokes, blobs and a fragment of another digit of the same
split) and near-Gaussian noise, stored as uint8 (N, 32, 32, 3).

A build is deterministic for a seed (byte-identical on the same platform and
library versions) and is cached as an .npz file, written atomically; a
cache that cannot be read is rebuilt.

    data = build_digits32(seed=0)
    data.x_train.shape   # (20000, 32, 32, 3), uint8
"""

import dataclasses
import functools
import hashlib
import numbers
import os
import tempfile
import warnings
import zipfile

import numpy as np
from scipy import ndimage

from tf_compress.errors import DataError

__all__ = ["Digits32", "build_digits32", "default_cache_dir",
           "DIGITS32_VERSION"]

# Bump on any change to the images a seed gives: it names the cache file.
DIGITS32_VERSION = 1
SPLITS = ("train", "val", "test")
IMAGE_SIZE = 32
NUM_CLASSES = 10
# Shares of each class's source images that go to validation and test; the
# rest is training.
_SOURCE_SHARES = {"val": 0.15, "test": 0.25}
# Images rendered at a time (small arrays stay in cache). Each chunk draws
# its noise from its own stream, so the images depend on this value.
_CHUNK = 128
_PAD = 2  # empty source pixels around the 8x8 glyph
_ZOOM = 4  # canvas pixels per source pixel
_CANVAS = (8 + 2 * _PAD) * _ZOOM
_LINES = 3  # candidate clutter strokes per image
_BLOBS = 2  # candidate clutter blobs per image
_LAYERS = _BLOBS + 1 + _LINES + 1  # blobs, fragment, lines, digit
_TRIES = 8  # foreground colour candidates per image (contrast)
_ARRAY_KEYS = tuple(f"{kind}_{split}" for split in SPLITS
                    for kind in ("x", "y", "source", "pool"))


@dataclasses.dataclass(frozen=True)
class _Strength:
  """How hard the renderings are.

  Tuned so that the demo CNN (`cnn`, Adam 1e-3, batch 32) reaches 88.7%
  test top-1 after 6 epochs and 90.3% after 16, not the 98% it reaches on
  digits (see README).
  """
  max_angle: float = 15.0  # degrees
  scale: tuple = (0.75, 1.0)
  aspect: tuple = (0.85, 1.15)
  max_shear: float = 0.2
  max_shift: float = 4.0  # output pixels
  stroke_probs: tuple = (0.2, 0.6, 0.2)  # erode, keep, dilate
  threshold: tuple = (0.3, 0.6)
  softness: tuple = (0.1, 0.4)
  min_contrast: float = 0.4  # luminance difference foreground/background
  texture: tuple = (0.0, 0.3)
  line_prob: float = 0.4
  line_width: tuple = (0.7, 2.2)
  blob_prob: float = 0.4
  fragment_prob: float = 0.3
  fragment_distance: tuple = (15.0, 22.0)
  ink_coloured_clutter: float = 0.1  # clutter painted in the digit's colour
  noise: tuple = (0.02, 0.08)


_STRENGTH = _Strength()


@dataclasses.dataclass(frozen=True, eq=False)
class Digits32:
  """One digits32 build: uint8 images, labels and where they came from.

  Attributes:
    x_train: (n_train, 32, 32, 3) uint8 images.
    y_train: (n_train,) int64 labels 0..9, balanced (counts differ by <= 1).
    x_val: validation images.
    y_val: validation labels.
    x_test: test images.
    y_test: test labels.
    source_train: (n_train,) int64 index into `sklearn.datasets.load_digits`
      of the digit each training image shows.
    source_val: the same for validation.
    source_test: the same for test.
    pool_train: sorted indices of the source images given to the training
      split; its digits and clutter fragments are drawn only from them.
    pool_val: the same for validation.
    pool_test: the same for test; the three pools are disjoint.
    seed: the seed of the build.
    from_cache: whether the arrays were read from the cache file.
  """
  x_train: np.ndarray
  y_train: np.ndarray
  x_val: np.ndarray
  y_val: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  source_train: np.ndarray
  source_val: np.ndarray
  source_test: np.ndarray
  pool_train: np.ndarray
  pool_val: np.ndarray
  pool_test: np.ndarray
  seed: int
  from_cache: bool


def default_cache_dir():
  """$TF_COMPRESS_CACHE when set, else ~/.cache/tf_compress."""
  return os.environ.get("TF_COMPRESS_CACHE") or os.path.join(
      os.path.expanduser("~"), ".cache", "tf_compress")


def _check_int(name, value, low, high=None):
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (
      value < low) or (high is not None and value >= high):
    bound = f"in [{low}, {high})" if high is not None else f">= {low}"
    raise DataError(f"digits32: {name} must be an int {bound}, got "
                    f"{value!r}.")
  return int(value)


def _split_sources(labels, seed):
  """Stratified split of the source indices; returns {split: sorted ids}."""
  rng = np.random.default_rng([DIGITS32_VERSION, seed, 0])
  parts = {split: [] for split in SPLITS}
  for c in range(NUM_CLASSES):
    ids = np.flatnonzero(labels == c)
    ids = ids[rng.permutation(len(ids))]
    n_test = round(_SOURCE_SHARES["test"] * len(ids))
    n_val = round(_SOURCE_SHARES["val"] * len(ids))
    parts["test"].append(ids[:n_test])
    parts["val"].append(ids[n_test:n_test + n_val])
    parts["train"].append(ids[n_test + n_val:])
  return {split: np.sort(np.concatenate(ids)).astype(np.int64)
          for split, ids in parts.items()}


def _assign(pool, labels, n, rng):
  """Balanced labels and, per class, the pool's digits in turn."""
  y = (np.arange(n) % NUM_CLASSES)[rng.permutation(n)]
  source = np.empty(n, np.int64)
  for c in range(NUM_CLASSES):
    slots = np.flatnonzero(y == c)
    members = pool[labels[pool] == c]
    rounds = max(1, -(-len(slots) // len(members)))
    order = np.concatenate([rng.permutation(members) for _ in range(rounds)])
    source[slots] = order[:len(slots)]
  return y.astype(np.int64), source


@functools.lru_cache(maxsize=None)
def _upsample_matrix(n_in, factor, order):
  """(n_in * factor, n_in) matrix of 1-D spline upsampling (do not modify)."""
  columns = [ndimage.zoom(e, factor, order=order, mode="grid-constant",
                          grid_mode=True) for e in np.eye(n_in)]
  return np.stack(columns, axis=1).astype(np.float32)


def _canvases(images):
  """The 8x8 sources (0..16) as smooth (N, 48, 48) ink maps in [0, 1]."""
  glyphs = np.pad(images.astype(np.float32) / 16.0,
                  ((0, 0), (_PAD, _PAD), (_PAD, _PAD)))
  up = _upsample_matrix(glyphs.shape[1], _ZOOM, order=3)
  canvases = np.clip(up @ glyphs @ up.T, 0.0, 1.0).astype(np.float32)
  # A blank border, onto which `_sample` clips coordinates outside.
  canvases[:, [0, -1], :] = 0.0
  canvases[:, :, [0, -1]] = 0.0
  return canvases


def _uniform(rng, bounds, size):
  return rng.uniform(bounds[0], bounds[1], size).astype(np.float32)


def _luminance(rgb):
  return rgb @ np.array([0.299, 0.587, 0.114], np.float32)


def _draw_geometry(rng, n, s, scale, shift):
  """Inverse affine maps (n, 2, 2) and offsets (n, 2) of n glyphs."""
  angle = np.deg2rad(_uniform(rng, (-s.max_angle, s.max_angle), n))
  scale = _uniform(rng, scale, n)
  aspect = _uniform(rng, s.aspect, n)
  shear = _uniform(rng, (-s.max_shear, s.max_shear), n)
  cos, sin = np.cos(angle), np.sin(angle)
  rotation = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)],
                      1)
  shearing = np.zeros((n, 2, 2), np.float32)
  shearing[:, 0, 0] = shearing[:, 1, 1] = 1.0
  shearing[:, 1, 0] = shear
  sizes = np.zeros((n, 2, 2), np.float32)
  sizes[:, 0, 0] = scale * aspect
  sizes[:, 1, 1] = scale / aspect
  forward = rotation @ shearing @ sizes
  return np.linalg.inv(forward).astype(np.float32), shift.astype(np.float32)


def _draw_colours(rng, n, s):
  """Background and foreground colours with a minimum luminance contrast."""
  background = _uniform(rng, (0.0, 1.0), (n, 3))
  candidates = _uniform(rng, (0.0, 1.0), (n, _TRIES, 3))
  contrast = np.abs(_luminance(candidates) - _luminance(background)[:, None])
  ok = contrast >= s.min_contrast
  pick = np.where(ok.any(1), ok.argmax(1), contrast.argmax(1))
  return background, candidates[np.arange(n), pick]


def _draw_parameters(rng, n, pool, s):
  """Every random choice of a split but the noise, as arrays of length n."""
  p = {}
  shift = _uniform(rng, (-s.max_shift, s.max_shift), (n, 2))
  p["inverse"], p["shift"] = _draw_geometry(rng, n, s, s.scale, shift)
  p["stroke"] = rng.choice(3, n, p=s.stroke_probs) - 1
  p["threshold"] = _uniform(rng, s.threshold, n)
  p["softness"] = _uniform(rng, s.softness, n)
  p["background"], p["ink"] = _draw_colours(rng, n, s)
  p["texture"] = _uniform(rng, (0.0, 1.0), (n, 3, 4, 4)) - 0.5
  p["texture_amp"] = _uniform(rng, s.texture, n)
  p["lines"] = _uniform(rng, (-4.0, IMAGE_SIZE + 4.0), (n, _LINES, 4))
  p["line_on"] = rng.random((n, _LINES)) < s.line_prob
  p["line_width"] = _uniform(rng, s.line_width, (n, _LINES))
  p["line_alpha"] = _uniform(rng, (0.5, 1.0), (n, _LINES))
  p["blobs"] = _uniform(rng, (0.0, IMAGE_SIZE), (n, _BLOBS, 2))
  p["blob_on"] = rng.random((n, _BLOBS)) < s.blob_prob
  p["blob_sigma"] = _uniform(rng, (1.0, 4.0), (n, _BLOBS))
  p["blob_alpha"] = _uniform(rng, (0.3, 0.8), (n, _BLOBS))
  p["clutter_rgb"] = _uniform(rng, (0.0, 1.0), (n, _LAYERS - 1, 3))
  p["clutter_inked"] = rng.random((n, _LAYERS - 1)) < s.ink_coloured_clutter
  p["fragment"] = pool[rng.integers(0, len(pool), n)]
  p["fragment_on"] = rng.random(n) < s.fragment_prob
  direction = _uniform(rng, (0.0, 2 * np.pi), n)
  distance = _uniform(rng, s.fragment_distance, n)
  offset = np.stack([np.sin(direction), np.cos(direction)], -1)
  p["fragment_inverse"], p["fragment_shift"] = _draw_geometry(
      rng, n, s, s.scale, offset * distance[:, None])
  p["fragment_alpha"] = _uniform(rng, (0.5, 1.0), n)
  p["noise"] = _uniform(rng, s.noise, n)
  return p


def _pairs(canvases):
  """Each canvas pixel and its right neighbour as one complex64, flat.

  Bilinear sampling then needs two gathers instead of four.
  """
  pairs = np.zeros(canvases.shape + (2,), np.float32)
  pairs[..., 0] = canvases
  pairs[..., :-1, 1] = canvases[..., 1:]
  return pairs.view(np.complex64).reshape(-1)


def _sample(pairs, source, inverse, shift):
  """Bilinear samples of canvases `source` through affine maps, (n, 32, 32).

  Coordinates are clipped into the canvas, whose border is blank.
  """
  n = len(source)
  grid = np.arange(IMAGE_SIZE, dtype=np.float32) - (IMAGE_SIZE - 1) / 2
  rows = grid[None, :, None] - shift[:, 0, None, None]
  cols = grid[None, None, :] - shift[:, 1, None, None]
  centre = (_CANVAS - 1) / 2
  top = _CANVAS - 1.001
  r = inverse[:, 0, 0, None, None] * rows + (
      inverse[:, 0, 1, None, None] * cols + centre)
  c = inverse[:, 1, 0, None, None] * rows + (
      inverse[:, 1, 1, None, None] * cols + centre)
  np.clip(r, 0.0, top, out=r)
  np.clip(c, 0.0, top, out=c)
  r0, c0 = np.floor(r), np.floor(c)
  r -= r0
  c -= c0
  # Exact in float32: indices stay below 2**24.
  r0 *= _CANVAS
  r0 += c0
  r0 += (source * _CANVAS**2).astype(np.float32)[:, None, None]
  at = r0.astype(np.intp)
  upper = pairs[at].view(np.float32).reshape(n, IMAGE_SIZE, IMAGE_SIZE, 2)
  at += _CANVAS
  lower = pairs[at].view(np.float32).reshape(n, IMAGE_SIZE, IMAGE_SIZE, 2)
  upper = upper[..., 0] + (upper[..., 1] - upper[..., 0]) * c
  lower = lower[..., 0] + (lower[..., 1] - lower[..., 0]) * c
  lower -= upper
  lower *= r
  lower += upper
  return lower


def _alpha(ink, threshold, softness):
  return np.clip((ink - threshold[:, None, None]) / softness[:, None, None]
                 + 0.5, 0.0, 1.0)


def _strokes(ink, stroke):
  """Thickens (stroke 1) or thins (-1) the strokes by one pixel a side."""
  thick, thin = stroke > 0, stroke < 0
  ink[thick] = ndimage.grey_dilation(ink[thick], size=(1, 3, 3))
  ink[thin] = ndimage.grey_erosion(ink[thin], size=(1, 3, 3))
  return ink


def _segment_alpha(lines, width):
  """Coverage (m, 32, 32) of m segments (y0, x0, y1, x1) of given widths."""
  pix = np.arange(IMAGE_SIZE, dtype=np.float32)
  py = pix[None, :, None] - lines[:, 0, None, None]
  px = pix[None, None, :] - lines[:, 1, None, None]
  dy = (lines[:, 2] - lines[:, 0])[:, None, None]
  dx = (lines[:, 3] - lines[:, 1])[:, None, None]
  t = np.clip((py * dy + px * dx) / np.maximum(dy * dy + dx * dx, 1e-6),
              0.0, 1.0)
  dist = np.hypot(py - t * dy, px - t * dx)
  return np.clip(width[:, None, None] / 2 + 0.5 - dist, 0.0, 1.0)


def _blob_alpha(centres, sigma):
  """Coverage (m, 32, 32) of m Gaussian blobs."""
  pix = np.arange(IMAGE_SIZE, dtype=np.float32)
  dy = pix[None, :, None] - centres[:, 0, None, None]
  dx = pix[None, None, :] - centres[:, 1, None, None]
  return np.exp(-(dy * dy + dx * dx) / (2 * sigma[:, None, None]**2))


def _composite(background, layers, colours):
  """Paints layers of flat colour over a background, bottom layer first.

  Args:
    background: (n, 3, 32, 32) colours.
    layers: (n, L, 32, 32) coverages in [0, 1], bottom first; overwritten.
    colours: (n, L, 3) colour of each layer.

  Returns:
    (n, 3, 32, 32) float32 image (channels first).
  """
  n, num_layers = layers.shape[:2]
  # A layer shows through the layers above it: its weight is its coverage
  # times the product of (1 - coverage) above. Weights are one channel, so
  # the colours are applied in one batched matmul.
  through = np.ones((n, IMAGE_SIZE, IMAGE_SIZE), np.float32)
  for k in reversed(range(num_layers)):
    clear = 1.0 - layers[:, k]
    layers[:, k] *= through
    through *= clear
  image = np.matmul(colours.transpose(0, 2, 1),
                    layers.reshape(n, num_layers, -1))
  image = image.reshape(background.shape)
  image += background * through[:, None]
  return image


def _render(pairs, source, p, rng):
  """Renders one chunk of uint8 images; `p` holds the chunk's parameters."""
  n = len(source)
  up = _upsample_matrix(4, IMAGE_SIZE // 4, order=1)
  background = (p["background"][:, :, None, None]
                + p["texture_amp"][:, None, None, None]
                * (up @ p["texture"] @ up.T))
  # Layers, bottom first: blobs, a fragment of another digit, lines, the
  # digit. Clutter that is switched off is not drawn at all.
  layers = np.zeros((n, _LAYERS, IMAGE_SIZE, IMAGE_SIZE), np.float32)
  blobs = layers[:, :_BLOBS]
  on = p["blob_on"]
  blobs[on] = _blob_alpha(p["blobs"][on], p["blob_sigma"][on]) * p[
      "blob_alpha"][on][:, None, None]
  on = p["fragment_on"]
  fragment = _sample(pairs, p["fragment"][on], p["fragment_inverse"][on],
                     p["fragment_shift"][on])
  layers[on, _BLOBS] = _alpha(fragment, p["threshold"][on],
                              p["softness"][on]) * p["fragment_alpha"][on][
                                  :, None, None]
  lines = layers[:, _BLOBS + 1:_BLOBS + 1 + _LINES]
  on = p["line_on"]
  lines[on] = _segment_alpha(p["lines"][on], p["line_width"][on]) * p[
      "line_alpha"][on][:, None, None]
  ink = _strokes(_sample(pairs, source, p["inverse"], p["shift"]),
                 p["stroke"])
  layers[:, -1] = _alpha(ink, p["threshold"], p["softness"])
  colours = np.where(p["clutter_inked"][..., None], p["ink"][:, None],
                     p["clutter_rgb"])
  colours = np.concatenate([colours, p["ink"][:, None]], 1)
  image = _composite(background, layers, colours)
  # Triangular noise (a sum of two uniform bytes, std 104.4 bytes): near
  # Gaussian, and several times faster to draw.
  noise = np.frombuffer(rng.bytes(2 * image.size), np.uint8).reshape(
      (2,) + image.shape).sum(0, dtype=np.int16) - 255
  image *= 255.0
  image += noise * (p["noise"] * (255.0 / 104.4))[:, None, None, None]
  image += 0.5  # the cast below truncates: this rounds
  np.clip(image, 0.0, 255.0, out=image)
  return image.astype(np.uint8).transpose(0, 2, 3, 1)


def _build_split(pairs, labels, pool, n, seed, split_id):
  """Renders one split; chunks draw their noise from their own streams."""
  rng = np.random.default_rng([DIGITS32_VERSION, seed, 1 + split_id])
  y, source = _assign(pool, labels, n, rng)
  params = _draw_parameters(rng, n, pool, _STRENGTH)
  x = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
  for start in range(0, n, _CHUNK):
    part = slice(start, min(start + _CHUNK, n))
    noise_rng = np.random.default_rng(
        [DIGITS32_VERSION, seed, 1 + split_id, 1 + start // _CHUNK])
    x[part] = _render(pairs, source[part],
                      {k: v[part] for k, v in params.items()}, noise_rng)
  return x, y, source


def _build(seed, sizes):
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  digits = datasets.load_digits()
  labels = digits.target.astype(np.int64)
  pairs = _pairs(_canvases(digits.images))
  pools = _split_sources(labels, seed)
  arrays = {}
  for split_id, split in enumerate(SPLITS):
    x, y, source = _build_split(pairs, labels, pools[split], sizes[split],
                                seed, split_id)
    arrays.update({f"x_{split}": x, f"y_{split}": y,
                   f"source_{split}": source, f"pool_{split}": pools[split]})
  return arrays


def _meta(seed, sizes):
  """What a cache file must match: version, seed, sizes, render settings."""
  # The settings' digest makes a file written with other settings (e.g.
  # while tuning them) stale even under the same version.
  digest = hashlib.sha256(repr(dataclasses.astuple(_STRENGTH)).encode())
  fingerprint = int.from_bytes(digest.digest()[:7], "little")
  return np.array([DIGITS32_VERSION, seed] + [sizes[s] for s in SPLITS]
                  + [fingerprint], np.int64)


def _read_cache(path, seed, sizes):
  """The cached arrays, or None when the file is missing or unusable."""
  if not os.path.isfile(path):
    return None
  try:
    with np.load(path, allow_pickle=False) as archive:
      if not np.array_equal(archive["meta"], _meta(seed, sizes)):
        return None
      arrays = {k: archive[k] for k in _ARRAY_KEYS}
  except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
    return None
  for split in SPLITS:
    shape = (sizes[split], IMAGE_SIZE, IMAGE_SIZE, 3)
    x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
    if x.shape != shape or x.dtype != np.uint8 or y.shape != shape[:1] or (
        y.dtype != np.int64) or arrays[f"source_{split}"].shape != y.shape:
      return None
  return arrays


def _write_cache(path, arrays, seed, sizes):
  """Writes the cache atomically; a failure only warns."""
  directory = os.path.dirname(path)
  tmp = None
  try:
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".digits32-", suffix=".tmp",
                               dir=directory)
    with os.fdopen(fd, "wb") as f:
      np.savez(f, meta=_meta(seed, sizes), **arrays)
    os.chmod(tmp, 0o644)  # mkstemp makes the file private
    os.replace(tmp, path)
    tmp = None
  except OSError as e:
    warnings.warn(f"digits32: could not write the cache '{path}' ({e}); "
                  "the data set will be rebuilt next time.", stacklevel=3)
  finally:
    if tmp is not None and os.path.exists(tmp):
      os.remove(tmp)


def build_digits32(seed=0, n_train=20000, n_val=5000, n_test=10000,
                   cache_dir=None, cache=True):
  """Builds (or reads from the cache) the digits32 data set.

  Args:
    seed: int in [0, 2**32); the source split and every rendering.
    n_train: training images (>= 10).
    n_val: validation images (>= 0).
    n_test: test images (>= 10).
    cache_dir: folder of the cache file; None uses `default_cache_dir()`.
    cache: whether to read and write the cache file
      `digits32-v{version}-seed{seed}-{n_train}-{n_val}-{n_test}.npz`.

  Returns:
    A `Digits32`.

  Raises:
    DataError: for a bad argument.
  """
  seed = _check_int("seed", seed, 0, 2**32)
  sizes = {"train": _check_int("n_train", n_train, NUM_CLASSES),
           "val": _check_int("n_val", n_val, 0),
           "test": _check_int("n_test", n_test, NUM_CLASSES)}
  path = None
  arrays = None
  if cache:
    directory = default_cache_dir() if cache_dir is None else os.fspath(
        cache_dir)
    path = os.path.join(
        directory, f"digits32-v{DIGITS32_VERSION}-seed{seed}-"
        f"{sizes['train']}-{sizes['val']}-{sizes['test']}.npz")
    arrays = _read_cache(path, seed, sizes)
  from_cache = arrays is not None
  if arrays is None:
    arrays = _build(seed, sizes)
    if cache:
      _write_cache(path, arrays, seed, sizes)
  return Digits32(seed=seed, from_cache=from_cache, **arrays)
