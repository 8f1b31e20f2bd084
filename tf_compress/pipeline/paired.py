"""Every variant and export against the baseline, on the same test samples.

The report's accuracy differences are paired: the baseline Keras model and
each candidate (a variant's Keras model or one of its `.tflite` files)
predict the same test samples, and `analysis.significance` turns the two
prediction vectors into a difference, its paired bootstrap interval and a
p-value. The claims the report prints follow from those intervals only.
"""

import io

import numpy as np

from tf_compress.analysis.significance import PAIRED_METRICS
from tf_compress.analysis.significance import compare_predictions
from tf_compress.analysis.significance import per_class_intervals
from tf_compress.analysis.significance_format import claim_sentence

__all__ = ["REFERENCE", "KERAS", "paired_metrics", "attach_significance",
           "predictions_npz", "load_predictions"]

# The model every difference is measured against, and the key of a variant's
# Keras model among its predictions.
REFERENCE = "baseline"
KERAS = "keras"
CONFIDENCE = 0.95
_SEPARATOR = "__"


def paired_metrics(headline):
  """top-1 and the headline metrics that have a paired test, headline first."""
  chosen = [m for m in headline if m in PAIRED_METRICS]
  return tuple(chosen + [m for m in ("top1",) if m not in chosen])


def _label(name, mode):
  return name if mode == KERAS else f"{name} ({mode})"


def attach_significance(entries, labels, predictions, headline,
                        num_resamples, seed, num_classes, controls=None):
  """Adds `significance` and `per_class_interval` to each entry and export.

  Args:
    entries: report.json's `variants`, the baseline first; changed in place.
    labels: (samples,) test labels.
    predictions: `{variant: {"keras" or export mode: (samples,) classes}}`.
    headline: the report's headline metrics.
    num_resamples: bootstrap resamples.
    seed: the resampling seed (the run's).
    num_classes: classes of the task.
    controls: `{variant: its control variant}` (see `Method.control`): the
      variant's Keras model is also compared with its control's, into
      `control_significance`, with a claim of its own.

  Returns:
    report.json's `statistics`: the method, the reference, the metrics and
    `claims`, one sentence per compared model (for the first metric).
  """
  metrics = paired_metrics(headline)
  reference = predictions[REFERENCE][KERAS]
  claims = []
  for entry in entries:
    own = predictions.get(entry["name"], {})
    targets = [(KERAS, entry)] + [(e["mode"], e)
                                  for e in entry.get("tflite", [])]
    for mode, target in targets:
      if mode not in own:
        continue
      candidate = np.asarray(own[mode])
      target["per_class_interval"] = per_class_intervals(
          labels, candidate, num_classes, CONFIDENCE)
      if entry["name"] == REFERENCE and mode == KERAS:
        continue
      target["significance"] = compare_predictions(
          labels, reference, candidate, metrics=metrics,
          num_resamples=num_resamples, confidence=CONFIDENCE, seed=seed)
      claims.append({
          "variant": entry["name"], "mode": mode,
          "text": claim_sentence(_label(entry["name"], mode),
                                 target["significance"][metrics[0]],
                                 "the baseline's Keras model")})
    control = (controls or {}).get(entry["name"])
    if control in predictions and KERAS in own:
      stats = compare_predictions(
          labels, predictions[control][KERAS], own[KERAS], metrics=metrics,
          num_resamples=num_resamples, confidence=CONFIDENCE, seed=seed)
      entry["control_significance"] = {"control": control, **stats}
      claims.append({
          "variant": entry["name"], "mode": KERAS, "control": control,
          "text": claim_sentence(entry["name"], stats[metrics[0]],
                                 f"its control, {control}")})
  return {"reference": f"{REFERENCE}/{KERAS}", "metrics": list(metrics),
          "method": "paired bootstrap (percentile) over the test samples; "
                    "McNemar's exact test for top-1",
          "confidence": CONFIDENCE, "bootstrap_resamples": int(num_resamples),
          "seed": int(seed),
          "rule": "a difference is significant when its interval excludes 0",
          "num_samples": int(np.asarray(labels).size), "claims": claims}


def predictions_npz(labels, predictions):
  """predictions.npz's bytes: `labels` and one `<variant>__<mode>` array."""
  arrays = {"labels": np.asarray(labels, dtype=np.int64)}
  for name, by_mode in predictions.items():
    for mode, values in by_mode.items():
      arrays[f"{name}{_SEPARATOR}{mode}"] = np.asarray(values, np.int64)
  buffer = io.BytesIO()
  np.savez_compressed(buffer, **arrays)
  return buffer.getvalue()


def load_predictions(path):
  """Reads predictions.npz (no pickles): `(labels, {variant: {mode: a}})`."""
  with np.load(path, allow_pickle=False) as data:
    labels = data["labels"]
    predictions = {}
    for key in data.files:
      if key != "labels":
        name, mode = key.rsplit(_SEPARATOR, 1)
        predictions.setdefault(name, {})[mode] = data[key]
  return labels, predictions
