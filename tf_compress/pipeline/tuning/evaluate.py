"""One trial's evaluation: compress each fold's baseline, export, measure.

For every fold, `evaluate_fold` loads the fold's cached baseline, builds the
trial's `combined` variant with `tf_compress.pipeline.build_combined` (every
method the trial's `RunConfig` enables, one after another), exports it to
TFLite in the trial's one export mode, and measures on the fold's
validation part: the TFLite model's top-1 and balanced accuracy, the gzip
size, and, when asked, p50 CPU latency and robust accuracy.
`summarize` turns the per-fold numbers into the trial's means and standard
deviations.

The splits handed in are search views (`cv.search_view`): they hold no
test data.
"""

import os
import tempfile

import numpy as np

from tf_compress import benchmark as benchmark_lib
from tf_compress import distribute
from tf_compress import export as export_lib
from tf_compress import repro
from tf_compress._keras import clear_sessions
from tf_compress.adversarial import result_key
from tf_compress.adversarial import robust_accuracy_tflite
from tf_compress.analysis import balanced_accuracy
from tf_compress.analysis import top_k_accuracy
from tf_compress.pipeline.methods import build_combined
from tf_compress.pipeline.run import CALIBRATION_SAMPLES
from tf_compress.pipeline.training import BuildContext
from tf_compress.pipeline.training import compile_model
from tf_compress.pipeline.tuning import baselines

__all__ = ["METRICS", "evaluate_fold", "summarize", "build_trial_model"]

# Every per-fold measure; the objectives are a subset.
METRICS = ("accuracy", "balanced_accuracy", "gzip_bytes", "p50_ms",
           "robust_accuracy")


def build_trial_model(baseline, splits, config, strategy, callbacks=()):
  """The trial's `combined` variant (a `pipeline.VariantResult`).

  `callbacks` reach every fit of the chain through the `BuildContext`.
  """
  ctx = BuildContext(config=config, splits=splits, strategy=strategy,
                     compile_fn=lambda m: compile_model(m, config),
                     callbacks=tuple(callbacks))
  return build_combined(baseline, ctx)


def _latency(path, config):
  report = benchmark_lib.benchmark_model(
      path, num_threads=(1,), num_runs=config.latency.runs,
      warmup_runs=config.latency.warmup, seed=config.fit.seed)
  return float(report["results"][0]["p50_ms"])


def evaluate_fold(config, fold, baseline_info, settings, callbacks=(),
                  workdir=None):
  """Builds, exports and measures one trial configuration on one fold.

  Args:
    config: the trial's `RunConfig` (its `export` holds one mode).
    fold: the fold's `DatasetSplits` (no test data).
    baseline_info: the fold's cached baseline (`baselines.fold_baseline`).
    settings: a dict with `latency` (bool), `robust` (None or
      `(attack, epsilon)`).
    callbacks: Keras callbacks added to every fine-tuning fit.
    workdir: where the .tflite file goes (a temporary directory if None).

  Returns:
    A dict: each of `METRICS` (None when not measured), `baseline_accuracy`,
    `export`, `stages`.
  """
  clear_sessions()
  repro.set_seed(config.fit.seed)
  strategy = distribute.make_strategy(config.fit.strategy, config.fit.num_cpu_devices)
  baseline = baselines.load_baseline(baseline_info)
  result = build_trial_model(baseline, fold, config, strategy, callbacks)
  model = result.model
  mode = config.export.modes[0]
  with tempfile.TemporaryDirectory(dir=workdir, prefix="trial_") as tmp:
    path = os.path.join(tmp, f"combined_{mode}.tflite")
    calibration = fold.x_train[:CALIBRATION_SAMPLES]
    info = export_lib.export_tflite(
        model, path, mode, representative_data=calibration,
        int8_io=config.export.int8_io and mode == "int8",
        num_calibration_samples=len(calibration))
    interpreter, _ = export_lib.load_interpreter(path)
    outputs, _ = export_lib.run_interpreter(interpreter, fold.x_val)
    outputs = outputs.reshape(len(fold.x_val), -1)
    scores = {
        "accuracy": float(top_k_accuracy(outputs, fold.y_val, 1)),
        "balanced_accuracy": float(balanced_accuracy(outputs, fold.y_val)),
        "gzip_bytes": int(info["gzip_bytes"]),
        "p50_ms": _latency(path, config) if settings.get("latency") else None,
        "robust_accuracy": None,
    }
    if settings.get("robust"):
      attack, epsilon = settings["robust"]
      low, high = fold.value_range
      robust = robust_accuracy_tflite(
          path, model, fold.x_val, fold.y_val, attacks=(attack,),
          epsilons=(epsilon,), clip_min=low, clip_max=high, seed=config.fit.seed)
      scores["robust_accuracy"] = float(robust[result_key(attack, epsilon)])
  scores["baseline_accuracy"] = float(baseline_info["val_accuracy"])
  scores["export"] = mode
  scores["stages"] = list(result.extra.get("combined", {}).get("stages", []))
  return scores


def summarize(fold_scores):
  """Means and population standard deviations of the per-fold metrics.

  Args:
    fold_scores: the list of `evaluate_fold` results.

  Returns:
    `(mean, std)`: two dicts over `METRICS` plus `baseline_accuracy`;
    None where a metric was not measured.
  """
  mean, std = {}, {}
  for name in METRICS + ("baseline_accuracy",):
    values = [s.get(name) for s in fold_scores]
    if not values or any(v is None for v in values):
      mean[name] = std[name] = None
      continue
    array = np.asarray(values, dtype=np.float64)
    mean[name] = float(array.mean())
    std[name] = float(array.std())
  return mean, std
