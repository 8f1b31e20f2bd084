"""One trained baseline per fold, cached on disk and shared by all trials.

Every trial compresses a pre-trained baseline instead of training from
scratch. The baseline of fold k is trained once, on that fold's training
part, with the same recipe as `python -m tf_compress.train` (same model,
seed, epochs, optimizer and batch size), then saved under
`<output_dir>/baselines/`:

    fold<k>.keras   the model (no optimizer state)
    fold<k>.json    its validation metrics, its float32 TFLite gzip size
                    (and p50 latency when measured): the reference point of
                    the study's hypervolume; and the cache key

The key hashes the recipe and the fold's data, so a changed configuration
retrains instead of reusing a stale model. A file lock makes concurrent
workers on one machine train each fold once; the others wait and load it.
"""

import contextlib
import fcntl
import hashlib
import json
import os

import numpy as np

from tf_compress import benchmark as benchmark_lib
from tf_compress import distribute
from tf_compress import export as export_lib
from tf_compress import inference
from tf_compress import models as models_lib
from tf_compress import repro
from tf_compress.pipeline import training
from tf_compress._keras import clear_sessions
from tf_compress.analysis import balanced_accuracy
from tf_compress.analysis import top_k_accuracy
from tf_compress.io_utils import atomic_write_json

__all__ = ["RECIPE_FIELDS", "baseline_key", "fold_baseline", "load_baseline"]

# The RunConfig fields (flag names) that decide what the baseline becomes.
RECIPE_FIELDS = ("dataset", "image_size", "validation_fraction",
                 "test_fraction", "normalization", "model", "width", "epochs",
                 "batch_size", "learning_rate", "optimizer", "class_weight",
                 "seed", "strategy", "num_cpu_devices")


def baseline_key(config, splits):
  """A hex digest of the training recipe and the fold's arrays."""
  digest = hashlib.sha256()
  flat = config.to_dict()
  recipe = {name: flat[name] for name in RECIPE_FIELDS}
  digest.update(json.dumps(recipe, sort_keys=True, default=str).encode())
  for array in (splits.x_train, splits.y_train, splits.x_val, splits.y_val):
    array = np.ascontiguousarray(array)
    digest.update(str((array.shape, array.dtype.str)).encode())
    digest.update(array.tobytes())
  return digest.hexdigest()


@contextlib.contextmanager
def _locked(path):
  with open(path, "a+", encoding="utf-8") as handle:
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _train(config, splits):
  """Trains a baseline like `pipeline.run` does; returns the model."""
  clear_sessions()
  repro.set_seed(config.fit.seed)
  strategy = distribute.make_strategy(config.fit.strategy, config.fit.num_cpu_devices)
  with strategy.scope():
    model = training.build_model_for(config, splits)
    training.compile_model(model, config)
  model.fit(splits.train(config.fit.batch_size, seed=config.fit.seed),
            validation_data=splits.validation(config.fit.batch_size),
            epochs=config.fit.epochs,
            class_weight=training.class_weights_for(config, splits),
            verbose=config.fit.verbose)
  return model


def _validation_metrics(model, splits):
  scores = inference.predict_scores(model, splits.x_val, 256)
  return {"val_accuracy": float(top_k_accuracy(scores, splits.y_val, 1)),
          "val_balanced_accuracy": float(balanced_accuracy(scores,
                                                           splits.y_val))}


def _reference_sizes(model, config, path, latency):
  """gzip bytes (and p50 ms) of the baseline's float32 TFLite file."""
  info = export_lib.export_tflite(model, path, "float32")
  sizes = {"gzip_bytes": int(info["gzip_bytes"])}
  if latency:
    sizes["p50_ms"] = _p50(path, config)
  return sizes


def _p50(path, config):
  report = benchmark_lib.benchmark_model(
      path, num_threads=(1,), num_runs=max(1, config.latency.runs),
      warmup_runs=config.latency.warmup, seed=config.fit.seed)
  return float(report["results"][0]["p50_ms"])


def fold_baseline(config, splits, fold_index, cache_dir, latency=False):
  """The baseline of one fold: loaded from the cache or trained and cached.

  Args:
    config: the base `RunConfig` (the recipe).
    splits: the fold's `DatasetSplits` (search view: no test split).
    fold_index: the fold's number, for the file names.
    cache_dir: the directory of the cached baselines.
    latency: also measure the float32 file's p50 latency (once).

  Returns:
    A dict: `path` (the .keras file), `key`, `val_accuracy`,
    `val_balanced_accuracy`, `gzip_bytes` (float32 TFLite), `p50_ms`
    (None unless measured), `fold`, `num_train`, `num_val`, `trained`
    (whether this call trained it).
  """
  os.makedirs(cache_dir, exist_ok=True)
  key = baseline_key(config, splits)
  model_path = os.path.join(cache_dir, f"fold{fold_index}.keras")
  info_path = os.path.join(cache_dir, f"fold{fold_index}.json")
  tflite_path = os.path.join(cache_dir, f"fold{fold_index}_float32.tflite")
  with _locked(os.path.join(cache_dir, f".fold{fold_index}.lock")):
    try:
      with open(info_path, encoding="utf-8") as handle:
        info = json.load(handle)
      if info.get("key") == key and os.path.exists(model_path):
        if latency and info.get("p50_ms") is None:
          info["p50_ms"] = _p50(tflite_path, config)
          atomic_write_json(info_path, info)
        return dict(info, path=model_path, trained=False)
    except (OSError, ValueError):
      pass
    model = _train(config, splits)
    models_lib.save_model(model, model_path, include_optimizer=False)
    info = {"fold": int(fold_index), "key": key,
            "num_train": splits.num_train, "num_val": splits.num_val,
            "p50_ms": None}
    info.update(_validation_metrics(model, splits))
    info.update(_reference_sizes(model, config, tflite_path, latency))
    atomic_write_json(info_path, info)
  return dict(info, path=model_path, trained=True)


def load_baseline(info):
  """Loads a cached baseline model (a fresh object for every trial)."""
  return models_lib.load_model(info["path"])
