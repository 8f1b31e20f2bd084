"""The end of a study: Pareto-optimal configurations retrained and tested.

Each one runs through `tf_compress.pipeline.run` itself, with `combine=True`,
into `<output_dir>/final/trial_<n>/`: the baseline is trained on the full
training split exactly as `python -m tf_compress.train` trains it, the
`combined` variant is built from it, and both are evaluated on the test
split, which the search never saw. So `best.flags`, the same configuration
as a flagfile, reproduces the recorded test metrics. A finished run whose
report holds the same configuration is reused on a re-run.
"""

import json
import os

from tf_compress.analysis.report_schema import REPORT_NAME
from tf_compress.pipeline.methods import COMBINED_NAME
from tf_compress.pipeline.run import run
from tf_compress.adversarial import result_key

__all__ = ["final_config", "test_metrics", "evaluate_final"]


def final_config(base, overrides, output_dir, robust=None):
  """The `RunConfig` of a retrained configuration.

  Args:
    base: the study's base `RunConfig`.
    overrides: the trial's fields (`space.train_overrides`).
    output_dir: the run's directory.
    robust: `(attack, epsilon)` to evaluate robustness on test, or None.
  """
  config = base.replace(**overrides)
  changes = {"combine": True, "output_dir": os.fspath(output_dir)}
  if robust is not None and robust[1] not in config.eval.robust_eval_epsilons:
    changes["robust_eval_epsilons"] = tuple(config.eval.robust_eval_epsilons) + (
        float(robust[1]),)
  return config.replace(**changes)


def test_metrics(report, robust=None):
  """The test-split figures of the `combined` variant in a train report.

  Returns:
    `top1` and `balanced_accuracy` of its TFLite file (the trial's export
    mode), `gzip_bytes`, `p50_ms` (None without latency runs),
    `keras_top1`, and `robust_accuracy` when asked.
  """
  entry = next(v for v in report["variants"]
               if v["name"] == COMBINED_NAME)
  export = entry["tflite"][0]
  per_class = export.get("per_class_accuracy")
  if per_class:
    present = [a for a in per_class if a is not None]
    balanced = sum(present) / len(present) if present else None
  else:
    balanced = entry.get("balanced_accuracy")
  cpu = (export.get("latency") or {}).get("cpu") or []
  metrics = {
      "top1": export.get("tflite_top1"),
      "balanced_accuracy": balanced,
      "gzip_bytes": export.get("gzip_bytes"),
      "p50_ms": cpu[0].get("p50_ms") if cpu else None,
      "keras_top1": entry.get("top1"),
      "export": export.get("mode"),
  }
  if robust is not None:
    key = result_key(*robust)
    metrics["robust_accuracy"] = (export.get("robust_accuracy") or {}).get(key)
  return metrics


def _cached_report(config):
  path = os.path.join(config.output_dir, REPORT_NAME)
  try:
    with open(path, encoding="utf-8") as handle:
      report = json.load(handle)
  except (OSError, ValueError):
    return None
  return report if report.get("config") == config.to_dict() else None


def evaluate_final(config, robust=None):
  """Runs (or reuses) one retraining; returns `(test metrics, report)`."""
  report = _cached_report(config)
  if report is None:
    report = run(config)
  return test_metrics(report, robust), report
