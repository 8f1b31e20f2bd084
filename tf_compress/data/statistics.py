"""Dataset statistics as pure functions: numpy arrays in, JSON-safe dicts out.

Every returned value is built from Python ints, floats, strings, lists, dicts
and None only, so a result can be written with `json.dump(..., allow_nan=False)`
as it is. Nothing here prints; `format_analysis` builds a text table and
returns it.
"""

import collections
import math

import numpy as np

from tf_compress.errors import DataError

__all__ = [
    "streaming_channel_stats",
    "class_statistics",
    "image_size_stats",
    "analyze_arrays",
    "analyze_dataset",
    "format_analysis",
]


def _finite_or_none(value):
  value = float(value)
  return value if math.isfinite(value) else None


def _number(value):
  """Returns a JSON-safe Python number for a numpy/Python scalar."""
  if isinstance(value, (bool, np.bool_)):
    return int(value)
  if isinstance(value, (int, np.integer)):
    return int(value)
  return _finite_or_none(value)


def _num_channels(x):
  """The number of channels and how to flatten a chunk to (values, channels)."""
  if x.ndim in (1, 3):
    return 1
  return int(x.shape[-1])


def streaming_channel_stats(x, chunk_size=4096):
  """Per-channel mean and standard deviation in one pass over sample chunks.

  The array is read `chunk_size` samples at a time; each chunk is converted to
  float64 on its own and its (count, mean, M2) are merged into the running
  totals with Chan et al.'s parallel form of Welford's algorithm, so the whole
  array is never copied to float64 and large offsets (e.g. 1e6 + noise) do not
  lose precision.

  The channel axis is the last axis for (N, H, W, C) images and (N, F) tables
  (each feature is a channel); (N, H, W) and (N,) arrays have one channel.

  Args:
    x: array of samples, first axis = samples.
    chunk_size: samples per chunk (a positive int).

  Returns:
    {"count": values per channel (int), "mean": [per channel],
     "std": [per channel, population std (ddof=0)]}. For an empty `x`, count
    is 0 and mean/std hold None.

  Raises:
    ValueError: if `chunk_size` is not a positive int or `x` is 0-D.
  """
  x = np.asarray(x)
  if isinstance(chunk_size, bool) or not isinstance(
      chunk_size, (int, np.integer)) or chunk_size < 1:
    raise ValueError(
        f"chunk_size must be a positive int, got {chunk_size!r}.")
  if x.ndim == 0:
    raise ValueError("x must have a sample axis, got a 0-D array.")
  channels = _num_channels(x)
  count = 0
  mean = np.zeros(channels, np.float64)
  m2 = np.zeros(channels, np.float64)
  for start in range(0, x.shape[0], chunk_size):
    chunk = np.asarray(x[start:start + chunk_size], dtype=np.float64)
    chunk = chunk.reshape(-1, channels)
    n_b = chunk.shape[0]
    if n_b == 0:
      continue
    mean_b = chunk.mean(axis=0)
    m2_b = np.square(chunk - mean_b).sum(axis=0)
    n = count + n_b
    delta = mean_b - mean
    mean = mean + delta * (n_b / n)
    m2 = m2 + m2_b + np.square(delta) * (count * n_b / n)
    count = n
  if count == 0:
    return {"count": 0, "mean": [None] * channels, "std": [None] * channels}
  std = np.sqrt(m2 / count)
  return {
      "count": int(count),
      "mean": [_finite_or_none(v) for v in mean],
      "std": [_finite_or_none(v) for v in std],
  }


def _check_labels(y):
  y = np.asarray(y)
  if y.ndim != 1:
    raise DataError(
        f"labels must be a 1-D array of class indices, got shape {y.shape}.")
  if y.size and not np.issubdtype(y.dtype, np.integer):
    raise DataError(
        f"labels must be integers, got dtype {y.dtype}; convert them with "
        "y.astype('int64').")
  if y.size and y.min() < 0:
    raise DataError(f"labels must be >= 0, got {int(y.min())}.")
  return y


def class_statistics(y, num_classes=None):
  """Class counts, imbalance and balanced class weights.

  The weights follow scikit-learn's "balanced" rule,
  weight_c = n_samples / (n_present_classes * count_c), which equals
  `sklearn.utils.class_weight.compute_class_weight("balanced", ...)` over the
  classes that have samples; they can be passed to Keras `fit(class_weight=)`
  after converting the keys to int.

  Args:
    y: 1-D integer labels >= 0.
    num_classes: number of classes K; defaults to max(y) + 1.

  Returns:
    {"per_class_counts": [count of class 0..K-1, zeros included],
     "imbalance_ratio": max count / min count, or None when some class has
       no samples,
     "empty_classes": [classes with no samples],
     "suggested_class_weights": {"0": weight, ...} (None for empty classes)}.

  Raises:
    DataError: for labels that are not 1-D non-negative integers, or a label
      >= `num_classes`.
  """
  y = _check_labels(y)
  observed = int(y.max()) + 1 if y.size else 0
  if num_classes is None:
    num_classes = observed
  elif observed > num_classes:
    raise DataError(
        f"label {observed - 1} does not fit num_classes={num_classes}; "
        "labels must be in [0, num_classes).")
  counts = np.bincount(y, minlength=num_classes).astype(np.int64)
  empty = [int(c) for c in np.flatnonzero(counts == 0)]
  present = int(np.count_nonzero(counts))
  n = int(y.size)
  if num_classes and not empty:
    ratio = float(counts.max()) / float(counts.min())
  else:
    ratio = None
  weights = {}
  for c, count in enumerate(counts):
    weights[str(c)] = (float(n) / (present * float(count))) if count else None
  return {
      "per_class_counts": [int(c) for c in counts],
      "imbalance_ratio": ratio,
      "empty_classes": empty,
      "suggested_class_weights": weights,
  }


def _round_to_multiple_of_8(value):
  """Rounds half up to the nearest multiple of 8, never below 8."""
  return max(8, int(math.floor(value / 8.0 + 0.5)) * 8)


def image_size_stats(sizes):
  """Summarises the original (height, width) of a set of images.

  The recommended training size is the median height and the median width,
  each rounded (half up) to the nearest multiple of 8 and at least 8. The
  median resists a few unusually large or small images, and multiples of 8
  suit the strided convolutions and pooling of typical image models.

  Args:
    sizes: a sequence of (height, width) pairs.

  Returns:
    {"count", "height": {min, max, mean, median, p10, p90},
     "width": {...}, "most_common": up to 5 {"height", "width", "count"},
     most frequent first, "aspect_ratio": median of width / height,
     "recommended_size": [height, width]}.

  Raises:
    DataError: if `sizes` is empty or not a list of positive (h, w) pairs.
  """
  arr = np.asarray(list(sizes), dtype=np.float64)
  if arr.size == 0:
    raise DataError("image_size_stats needs at least one (height, width).")
  if arr.ndim != 2 or arr.shape[1] != 2 or np.any(arr <= 0):
    raise DataError(
        "sizes must be (height, width) pairs of positive numbers, got an "
        f"array of shape {arr.shape}.")

  def summary(values):
    return {
        "min": _number(values.min()),
        "max": _number(values.max()),
        "mean": _number(values.mean()),
        "median": _number(np.median(values)),
        "p10": _number(np.percentile(values, 10)),
        "p90": _number(np.percentile(values, 90)),
    }

  heights, widths = arr[:, 0], arr[:, 1]
  counter = collections.Counter((int(h), int(w)) for h, w in arr)
  common = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
  return {
      "count": int(arr.shape[0]),
      "height": summary(heights),
      "width": summary(widths),
      "most_common": [{"height": h, "width": w, "count": c}
                      for (h, w), c in common],
      "aspect_ratio": _number(np.median(widths / heights)),
      "recommended_size": [_round_to_multiple_of_8(np.median(heights)),
                           _round_to_multiple_of_8(np.median(widths))],
  }


def analyze_arrays(x, y, *, num_classes=None, chunk_size=4096):
  """Statistics of a labelled array dataset.

  Args:
    x: samples, first axis = samples.
    y: 1-D integer labels, one per sample.
    num_classes: number of classes; defaults to max(y) + 1.
    chunk_size: samples per chunk for `streaming_channel_stats`.

  Returns:
    {"num_samples", "feature_shape" (per-sample shape), "num_classes",
     the keys of `class_statistics`, "channel_stats", "value_min",
     "value_max"} (min/max are None for an empty x).

  Raises:
    DataError: if x and y differ in length or the labels are invalid.
  """
  x = np.asarray(x)
  y = np.asarray(y)
  if x.ndim == 0 or len(x) != len(y):
    raise DataError(
        f"x has {len(x) if x.ndim else 0} samples but y has {len(y)} labels; "
        "give one label per sample.")
  classes = class_statistics(y, num_classes)
  result = {
      "num_samples": int(len(x)),
      "feature_shape": [int(d) for d in x.shape[1:]],
      "num_classes": len(classes["per_class_counts"]),
  }
  result.update(classes)
  result["channel_stats"] = streaming_channel_stats(x, chunk_size=chunk_size)
  result["value_min"] = _number(x.min()) if x.size else None
  result["value_max"] = _number(x.max()) if x.size else None
  return result


def analyze_dataset(splits):
  """Statistics of a loaded `DatasetSplits`.

  Channel statistics and value_min/value_max describe `splits.raw_x`, all
  samples in their original units (before normalisation); the result says so
  with "channel_stats_units": "raw".

  Args:
    splits: a `tf_compress.data.DatasetSplits`.

  Returns:
    The dict of `analyze_arrays` plus "name", "source_kind", "class_names",
    "splits" ({"train", "validation", "test"} sizes), "split_class_counts"
    (per-class counts of each split), "input_shape", "normalization",
    "value_range", "channel_stats_units" and, for image directories,
    "image_sizes" (see `image_size_stats`).
  """
  result = analyze_arrays(splits.raw_x, splits.raw_y,
                          num_classes=splits.num_classes)
  k = splits.num_classes
  result.update({
      "name": splits.name,
      "source_kind": splits.source_kind,
      "class_names": [str(c) for c in splits.class_names],
      "splits": {"train": int(len(splits.y_train)),
                 "validation": int(len(splits.y_val)),
                 "test": int(len(splits.y_test))},
      "split_class_counts": {
          name: [int(c) for c in np.bincount(
              np.asarray(labels, np.int64), minlength=k)]
          for name, labels in (("train", splits.y_train),
                               ("validation", splits.y_val),
                               ("test", splits.y_test))},
      "input_shape": [int(d) for d in splits.input_shape],
      "normalization": splits.normalization,
      "value_range": [_number(v) for v in splits.value_range],
      "channel_stats_units": "raw",
  })
  if splits.image_sizes:
    result["image_sizes"] = image_size_stats(splits.image_sizes)
  return result


def _fmt(value, digits=4):
  if value is None:
    return "-"
  if isinstance(value, float):
    return f"{value:.{digits}g}"
  return str(value)


def format_analysis(analysis):
  """Renders an `analyze_dataset` / `analyze_arrays` result as a text report.

  Args:
    analysis: the dict returned by `analyze_dataset` or `analyze_arrays`.

  Returns:
    A multi-line string (no trailing newline). Nothing is printed.
  """
  a = analysis
  lines = []
  title = a.get("name", "dataset")
  if a.get("source_kind"):
    title += f" ({a['source_kind']})"
  lines.append(f"Dataset: {title}")
  lines.append(
      f"Samples: {a['num_samples']}   classes: {a['num_classes']}   "
      f"feature shape: {tuple(a['feature_shape'])}"
      + (f"   input shape: {tuple(a['input_shape'])}"
         if "input_shape" in a else ""))
  if "splits" in a:
    s = a["splits"]
    lines.append(f"Splits: train {s['train']}   validation "
                 f"{s['validation']}   test {s['test']}")
  units = a.get("channel_stats_units", "raw")
  lines.append(f"Value range ({units}): {_fmt(a['value_min'])} .. "
               f"{_fmt(a['value_max'])}")
  if "normalization" in a:
    lo, hi = a.get("value_range", (None, None))
    lines.append(f"Normalisation: {a['normalization'].get('mode')} -> "
                 f"inputs in [{_fmt(lo)}, {_fmt(hi)}]")

  lines.append("")
  names = a.get("class_names") or [str(i) for i in
                                   range(len(a["per_class_counts"]))]
  split_counts = a.get("split_class_counts", {})
  header = ["class", "name", "count", "share"]
  header += [k for k in ("train", "validation", "test") if k in split_counts]
  header.append("weight")
  rows = []
  total = max(a["num_samples"], 1)
  for c, count in enumerate(a["per_class_counts"]):
    row = [str(c), str(names[c]) if c < len(names) else str(c), str(count),
           f"{100.0 * count / total:.1f}%"]
    row += [str(split_counts[k][c]) for k in ("train", "validation", "test")
            if k in split_counts]
    row.append(_fmt(a["suggested_class_weights"].get(str(c)), 3))
    rows.append(row)
  lines.extend(_table(header, rows))
  lines.append(f"Imbalance ratio (largest / smallest class): "
               f"{_fmt(a['imbalance_ratio'], 3)}")
  if a.get("empty_classes"):
    lines.append(f"Classes with no samples: {a['empty_classes']}")

  cs = a["channel_stats"]
  lines.append("")
  lines.append(f"Per-channel statistics ({units} units, "
               f"{cs['count']} values per channel):")
  lines.extend(_table(
      ["channel", "mean", "std"],
      [[str(i), _fmt(m), _fmt(s)] for i, (m, s) in
       enumerate(zip(cs["mean"], cs["std"]))]))

  sizes = a.get("image_sizes")
  if sizes:
    lines.append("")
    lines.append(f"Original image sizes ({sizes['count']} images):")
    rows = [[dim] + [_fmt(sizes[dim][k]) for k in
                     ("min", "p10", "median", "mean", "p90", "max")]
            for dim in ("height", "width")]
    lines.extend(_table(["", "min", "p10", "median", "mean", "p90", "max"],
                        rows))
    common = ", ".join(f"{m['height']}x{m['width']} ({m['count']})"
                       for m in sizes["most_common"])
    lines.append(f"Most common (HxW): {common}")
    lines.append(f"Median aspect ratio (w/h): {_fmt(sizes['aspect_ratio'])}")
    h, w = sizes["recommended_size"]
    lines.append(f"Recommended image size: {h},{w} (median height and width "
                 "rounded to a multiple of 8)")
  return "\n".join(lines)


def _table(header, rows):
  widths = [max(len(str(r[i])) for r in [header] + rows)
            for i in range(len(header))]
  fmt = "  ".join(f"{{:<{w}}}" for w in widths)
  out = [fmt.format(*header).rstrip(),
         "  ".join("-" * w for w in widths)]
  out.extend(fmt.format(*r).rstrip() for r in rows)
  return out
