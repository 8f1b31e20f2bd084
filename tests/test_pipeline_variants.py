"""The train command's compressed variants: `pruned` and `sliced`."""

import json

import numpy as np
import pytest

import tf_compress
from tf_compress.cli import train

train.define_flags()  # the command's flags, on absl's FLAGS


def _config(output_dir, **overrides):
  values = dict(output_dir=str(output_dir), epochs=3, finetune_epochs=3,
                verbose=0, deterministic=True, seed=3, prune_sparsity=0.8,
                prune_frequency=5, slice_ratio=0.5, benchmark_runs=10,
                benchmark_threads=(1, 2), use_gpu=True)
  values.update(overrides)
  return tf_compress.TrainConfig(**values)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
  out = tmp_path_factory.mktemp("variants")
  return out, tf_compress.run(_config(out))


def _variant(report, name):
  return {v["name"]: v for v in report["variants"]}[name]


def test_variants_present_with_common_metrics(report):
  out, rep = report
  assert [v["name"] for v in rep["variants"]] == ["baseline", "pruned",
                                                  "sliced"]
  for entry in rep["variants"]:
    for key in ("top1", "topk", "per_class_accuracy", "balanced_accuracy",
                "params", "nonzero_params", "keras_bytes", "sparsity",
                "macs"):
      assert key in entry, (entry["name"], key)
    assert (out / entry["model_path"]).stat().st_size == entry["keras_bytes"]
  assert set(rep["history"]) == {"baseline", "pruned", "sliced"}
  assert len(rep["history"]["pruned"]["loss"]) == 3
  assert json.loads((out / "report.json").read_text()) == rep
  assert (out / "training_curves_pruned.png").exists()


def test_keras3_is_the_default_engine_and_every_export_verifies(report):
  _, rep = report
  assert rep["engine"] == "keras3" and rep["config"]["keras"] is None
  for entry in rep["variants"]:
    modes = {e["mode"]: e for e in entry["tflite"]}
    assert set(modes) == {"float32", "int8"}, entry["name"]
    for export in modes.values():
      # Verified on LiteRT: the file ran on the whole test split.
      assert export["agreement"] >= 0.95, (entry["name"], export["mode"])
      assert abs(export["tflite_top1"] - entry["top1"]) <= 0.03
    assert set(modes["int8"]["kernel_dtypes"]) == {"int8"}, entry["name"]


def test_pruned_reaches_target_sparsity(report):
  out, rep = report
  pruned = _variant(rep, "pruned")
  assert pruned["sparsity"]["overall"] == pytest.approx(0.8, abs=0.01)
  assert {r["layer"] for r in pruned["sparsity"]["per_layer"]} == {
      "conv1", "conv2", "fc1", "logits"}
  baseline = _variant(rep, "baseline")
  assert pruned["params"] == baseline["params"]
  assert pruned["nonzero_params"] < 0.25 * baseline["params"]
  assert pruned["macs"] == baseline["macs"]
  assert pruned["top1"] > 0.85
  saved = tf_compress.load_model(out / "pruned.keras")
  kernel = saved.get_layer("fc1").get_weights()[0]
  assert np.mean(kernel == 0) == pytest.approx(0.8, abs=0.01)


def test_per_class_change_against_baseline(report):
  _, rep = report
  baseline = _variant(rep, "baseline")
  for name in ("pruned", "sliced"):
    entry = _variant(rep, name)
    change = entry["per_class_change"]
    np.testing.assert_allclose(
        change["delta"], np.subtract(entry["per_class_accuracy"],
                                     baseline["per_class_accuracy"]))
    assert all(change["delta"][c] < -change["threshold"]
               for c in change["classes_below_threshold"])


def test_sliced_is_smaller_and_cheaper(report):
  _, rep = report
  sliced, baseline = _variant(rep, "sliced"), _variant(rep, "baseline")
  assert sliced["params"] < 0.5 * baseline["params"]
  assert baseline["macs"] / sliced["macs"] >= 2.0
  assert sliced["slicing"]["macs_before"] == baseline["macs"]
  assert sliced["slicing"]["removed"]["conv1"] == 16
  assert sliced["top1"] > 0.85


def test_every_variant_exported_and_verified(report):
  out, rep = report
  for entry in rep["variants"]:
    modes = {e["mode"]: e for e in entry["tflite"]}
    assert set(modes) == {"float32", "int8"}, entry["name"]
    assert modes["float32"]["agreement"] == 1.0
    assert modes["int8"]["agreement"] >= 0.97
    assert modes["int8"]["kernel_dtypes"] == {"int8": 4}
    assert (out / modes["int8"]["path"]).exists()
  pruned = _variant(rep, "pruned")["tflite"][0]
  baseline = _variant(rep, "baseline")["tflite"][0]
  assert pruned["kernel_nonzero_fraction"] == pytest.approx(0.2, abs=0.01)
  assert baseline["gzip_bytes"] / pruned["gzip_bytes"] >= 3.0
  sliced = _variant(rep, "sliced")["tflite"][0]
  assert sliced["bytes"] < 0.5 * baseline["bytes"]


def test_latency_per_thread_count_and_gpu_reported(report):
  _, rep = report
  for variant in rep["variants"]:
    for entry in variant["tflite"]:
      cpu = entry["latency"]["cpu"]
      assert [r["num_threads"] for r in cpu] == [1, 2]
      for result in cpu:
        assert result["count"] == 10
        assert (result["min_ms"] <= result["p50_ms"] <= result["p90_ms"] <=
                result["p99_ms"] <= result["max_ms"])
      gpu = entry["latency"]["gpu"]
      if not gpu.get("available", True):
        assert gpu["reason"]
      else:  # a real GPU: it must say so, and say if it fell back
        assert "fully_accelerated" in gpu


def test_comparison_table(report):
  _, rep = report
  rows = {(r["variant"], r["mode"]): r for r in rep["comparison"]}
  assert len(rows) == 3 * 3
  assert rows[("baseline", "float32")]["speedup"] == 1.0
  assert rows[("baseline", "float32")]["size_ratio"] == 1.0
  sliced = rows[("sliced", "float32")]
  assert sliced["size_ratio"] > 1.5 and sliced["p50_ms"] > 0
  text = tf_compress.analysis.format_comparison(rep["comparison"])
  assert len(text.splitlines()) == 10 and "gzip ratio" in text


def _pruning_config(config):
  return config.prune.pruning_config(config.fit.finetune_epochs)


def test_pruning_config_mapping():
  config = _config("/tmp/x", prune_scope="global", prune_schedule="constant")
  prune = _pruning_config(config)
  assert (prune.target_sparsity, prune.scope, prune.schedule,
          prune.frequency) == (0.8, "global", "constant", 5)
  assert not _config("/tmp/x", prune_sparsity=None).prune.enabled
  poly = _pruning_config(_config("/tmp/x", finetune_epochs=9))
  assert poly.end_epoch == 6
  m_by_n = _pruning_config(
      _config("/tmp/x", prune_sparsity=None, prune_m_by_n="2:4"))
  assert m_by_n.m_by_n == (2, 4) and m_by_n.target_sparsity == 0.5


def test_global_and_m_by_n_variants_under_mirrored(logical_cpus, tmp_path):
  rep = tf_compress.run(_config(tmp_path, strategy="mirrored",
                                prune_scope="global", slice_ratio=None,
                                epochs=1, finetune_epochs=2, export=()))
  pruned = _variant(rep, "pruned")
  assert pruned["sparsity"]["overall"] == pytest.approx(0.8, abs=0.01)
  per_layer = {r["layer"]: r["sparsity"] for r in
               pruned["sparsity"]["per_layer"]}
  assert max(per_layer.values()) - min(per_layer.values()) > 0.05
  rep = tf_compress.run(_config(tmp_path, prune_sparsity=None,
                                prune_m_by_n="2:4", slice_ratio=None,
                                epochs=1, finetune_epochs=1, export=()))
  saved = tf_compress.load_model(tmp_path / "pruned.keras")
  kernel = saved.get_layer("fc1").get_weights()[0]  # (in, out)
  groups = kernel.T.reshape(kernel.shape[1], -1, 4)
  assert (np.sum(groups == 0, axis=-1) >= 2).all()




@pytest.mark.parametrize("argv,expect", [
    (["--prune_sparsity=1.0"], "prune_sparsity"),
    (["--prune_sparsity=-0.1"], "prune_sparsity"),
    (["--prune_sparsity=0.5", "--prune_begin_epoch=3",
      "--prune_end_epoch=2"], "(--prune_end_epoch) must be after begin_epoch (3)"),
    (["--prune_m_by_n=4:2"], "prune_m_by_n"),
    (["--slice_ratio=1.5"], "slice_ratio"),
    (["--slice_criterion=random"], "slice_criterion"),
    (["--export=int4"], "--export"),
    # Fails after the baseline trains: no exports to make meanwhile.
    (["--slice_ratio=0.99", "--epochs=1", "--export="], "remove"),
], ids=["sparsity-1", "sparsity-neg", "end-before-begin", "m-by-n",
        "slice-range", "criterion", "export-mode", "slice-everything"])
def test_bad_compression_flags_exit_2(argv, expect, tmp_path, train_cli):
  code, lines = train_cli(argv + [f"--output_dir={tmp_path}", "--verbose=0"])
  assert code == 2
  assert lines[-1].startswith("error: ") and expect in lines[-1], lines


def test_qat_and_clustered_variants(tmp_path):
  rep = tf_compress.run(_config(
      tmp_path, prune_sparsity=None, slice_ratio=None, qat=True,
      qat_freeze_epoch=1, cluster_count=8, cluster_init="linear",
      finetune_epochs=2, benchmark_runs=0, export=("int8",)))
  assert [v["name"] for v in rep["variants"]] == ["baseline", "qat",
                                                  "clustered"]
  qat = _variant(rep, "qat")
  (int8,) = qat["tflite"]
  assert int8["kernel_dtypes"] == {"int8": 4}
  assert int8["agreement"] >= 0.97
  assert qat["top1"] > 0.85 and qat["qat"]["freeze_epoch"] == 1
  assert "qat_frozen" in rep["history"]["qat"]
  clustered = _variant(rep, "clustered")
  unique = {r["layer"]: r["unique"] for r in
            clustered["clustering"]["unique_values"] if r["weight"] == "kernel"}
  assert set(unique) == {"conv1", "conv2", "fc1", "logits"}
  assert max(unique.values()) <= 8
  assert clustered["top1"] > 0.85


@pytest.mark.parametrize("argv,expect", [
    (["--cluster_count=1"], "cluster_count"),
    (["--qat_scheme=4bit"], "qat_scheme"),
    (["--qat", "--qat_freeze_epoch=5", "--finetune_epochs=3"],
     "(--qat_freeze_epoch) must be in [0, finetune_epochs=3)"),
    (["--benchmark_threads=0"], "benchmark_threads"),
], ids=["cluster-count", "qat-scheme", "freeze-epoch", "threads"])
def test_bad_quantization_flags_exit_2(argv, expect, tmp_path, train_cli):
  code, lines = train_cli(argv + [f"--output_dir={tmp_path}", "--verbose=0"])
  assert code == 2
  assert lines[-1].startswith("error: ") and expect in lines[-1], lines


def test_distilled_scratch_and_adversarial_variants(tmp_path):
  rep = tf_compress.run(_config(
      tmp_path, prune_sparsity=None, slice_ratio=None, distill=True,
      distill_student="0.25", adv_attack="fgsm", adv_epsilon=0.1,
      adv_warmup_epochs=1, finetune_epochs=2, benchmark_runs=0,
      export=("float32",), robust_eval_epsilons=(0.1,)))
  names = [v["name"] for v in rep["variants"]]
  assert names == ["baseline", "distilled", "student_scratch", "adversarial"]
  distilled = _variant(rep, "distilled")
  scratch = _variant(rep, "student_scratch")
  assert distilled["params"] == scratch["params"] < 0.1 * _variant(
      rep, "baseline")["params"]
  assert "distillation_loss" in rep["history"]["distilled"]
  assert "adversarial_loss" in rep["history"]["adversarial"]
  assert rep["history"]["adversarial"]["epsilon"] == pytest.approx([0.1, 0.1])
  for entry in rep["variants"]:
    robust = entry["robust_accuracy"]
    assert {"clean", "fgsm@0.1", "pgd@0.1"} <= set(robust)
    assert robust["pgd@0.1"] <= robust["clean"]
    tflite_robust = entry["tflite"][0]["robust_accuracy"]
    assert tflite_robust["keras_clean"] == pytest.approx(robust["clean"])
  base = _variant(rep, "baseline")["robust_accuracy"]
  adv = _variant(rep, "adversarial")["robust_accuracy"]
  assert adv["pgd@0.1"] > base["pgd@0.1"]


@pytest.mark.parametrize("argv,expect", [
    (["--distill", "--distill_temperature=0"], "distill_temperature"),
    (["--distill", "--distill_alpha=1.5"], "distill_alpha"),
    (["--adv_attack=pgd", "--adv_epsilon=-0.1"], "adv_epsilon"),
    (["--robust_eval_epsilons=0.1,x"], "robust_eval_epsilons"),
    (["--distill", "--distill_student=nonexistent", "--epochs=1",
      "--export="], "unknown model 'nonexistent'"),
], ids=["temperature", "alpha", "epsilon", "eval-eps", "student"])
def test_bad_distill_adversarial_flags_exit_2(argv, expect, tmp_path,
                                              train_cli):
  code, lines = train_cli(argv + [f"--output_dir={tmp_path}", "--verbose=0",
                                  "--benchmark_runs=0"])
  assert code == 2
  assert lines[-1].startswith("error: ") and expect in lines[-1], lines
