"""The final retraining: its TrainConfig, test figures and cached reports."""

import json

import pytest

import tf_compress
from tf_compress.analysis.report_schema import REPORT_NAME
from tf_compress.pipeline.tuning import final


def _report(config):
  return {
      "config": config.to_dict(),
      "variants": [
          {"name": "baseline", "top1": 0.97, "tflite": []},
          {"name": "combined", "top1": 0.951, "balanced_accuracy": 0.95,
           "tflite": [{
               "mode": "int8", "tflite_top1": 0.95, "gzip_bytes": 4321,
               "per_class_accuracy": [1.0, 0.9, None, 0.8],
               "latency": {"cpu": [{"num_threads": 1, "p50_ms": 0.25}]},
               "robust_accuracy": {"fgsm@0.1": 0.6, "pgd@0.1": 0.5}}]}]}


def test_final_config(tmp_path):
  base = tf_compress.TrainConfig(robust_eval_epsilons=(0.2,))
  config = final.final_config(base, {"prune_sparsity": 0.8,
                                     "export": ("int8",)},
                              tmp_path / "t3", robust=("fgsm", 0.1))
  assert config.combine and config.prune.sparsity == 0.8
  assert config.export.modes == ("int8",)
  assert config.output_dir == str(tmp_path / "t3")
  assert config.eval.robust_eval_epsilons == (0.2, 0.1)
  same = final.final_config(base, {}, tmp_path, robust=("pgd", 0.2))
  assert same.eval.robust_eval_epsilons == (0.2,)
  assert final.final_config(base, {}, tmp_path).eval.robust_eval_epsilons == (
      0.2,)


def test_test_metrics_of_the_combined_variant():
  config = tf_compress.TrainConfig()
  metrics = final.test_metrics(_report(config), robust=("fgsm", 0.1))
  assert metrics == {"top1": 0.95, "balanced_accuracy": pytest.approx(0.9),
                     "gzip_bytes": 4321, "p50_ms": 0.25, "keras_top1": 0.951,
                     "export": "int8", "robust_accuracy": 0.6}
  report = _report(config)
  export = report["variants"][1]["tflite"][0]
  del export["per_class_accuracy"], export["latency"]
  metrics = final.test_metrics(report)
  assert metrics["balanced_accuracy"] == 0.95 and metrics["p50_ms"] is None
  assert "robust_accuracy" not in metrics


def test_a_finished_run_is_reused(tmp_path, monkeypatch):
  config = final.final_config(tf_compress.TrainConfig(prune_sparsity=0.5),
                              {}, tmp_path)
  (tmp_path / REPORT_NAME).write_text(json.dumps(_report(config)))

  def no_training(config, argv=None):
    raise AssertionError("retrained although a report exists")
  monkeypatch.setattr(final, "run", no_training)
  metrics, report = final.evaluate_final(config)
  assert metrics["gzip_bytes"] == 4321
  assert report["config"] == config.to_dict()
  # Another configuration in the same directory is run, not reused.
  other = final.final_config(tf_compress.TrainConfig(prune_sparsity=0.6),
                             {}, tmp_path)
  with pytest.raises(AssertionError, match="retrained"):
    final.evaluate_final(other)
