"""The one registry of methods, and the `combined` chain built from it."""

import numpy as np
import pytest

import tf_compress
from tf_compress import quantization
from tf_compress.pipeline import methods
from tf_compress.pipeline.run import _variant_jobs  # pylint: disable=protected-access
from tf_compress.pipeline.run import export_variant
from tf_compress.pipeline import training
from tf_compress.errors import UserInputError


def _config(tmp_path, **overrides):
  values = dict(output_dir=str(tmp_path), model="mlp", width=0.5, epochs=2,
                finetune_epochs=2, verbose=0, seed=3, benchmark_runs=0,
                export=("int8",), prune_schedule="constant")
  values.update(overrides)
  return tf_compress.TrainConfig(**values)


def _ctx(config, splits, strategy=None):
  return training.BuildContext(
      config=config, splits=splits,
      strategy=strategy or tf_compress.make_strategy("default"),
      compile_fn=lambda m: training.compile_model(m, config))


def test_each_method_is_declared_once():
  names = [m.name for m in methods.METHODS]
  assert len(names) == len(set(names))
  assert names == ["pruned", "sliced", "qat", "clustered", "distilled",
                   "student_scratch", "adversarial"]
  stages = [m.stage for m in methods.METHODS if m.stage]
  assert len(stages) == len(set(stages))
  for entry in methods.METHODS:
    # Every method's section is a RunConfig section with an on/off switch.
    section = getattr(tf_compress.RunConfig(), entry.section)
    assert section.enabled is False, entry.name


def test_variants_sweeps_and_chain_read_the_registry(tmp_path, monkeypatch):
  config = _config(tmp_path, prune_sparsity=0.8, sweep_sparsity=(0.5, 0.8),
                   slice_ratio=0.5, sweep_slice=(0.25,), qat=True,
                   combine=True)
  jobs = _variant_jobs(config)
  assert [(name, build is None, sweep) for name, build, _, sweep in jobs] == [
      ("pruned", False, None), ("sliced", False, None), ("qat", False, None),
      ("combined", False, None), ("pruned_50", False, ("sparsity", 0.5)),
      ("pruned", True, ("sparsity", 0.8)), ("sliced_25", False,
                                            ("slice", 0.25))]
  level_config = jobs[4][2]
  assert level_config.prune.sparsity == 0.5 and config.prune.sparsity == 0.8
  # One new entry is all a new method needs: variants and chain pick it up.
  extra = methods.Method("qat_again", "qat", lambda m, ctx: None, "qat",
                         stage="late", chain_rank=9)
  monkeypatch.setattr(methods, "METHODS", methods.METHODS + (extra,))
  assert "qat_again" in [j[0] for j in _variant_jobs(config)]
  assert methods.chain_stages(config) == ["slice", "prune", "qat", "late"]


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
  config = _config(tmp_path_factory.mktemp("chain"))
  tf_compress.set_seed(config.fit.seed)
  strategy = tf_compress.make_strategy("default")
  model = training.build_model_for(config, digits)
  training.compile_model(model, config)
  model.fit(digits.train(32, seed=0), epochs=config.fit.epochs, verbose=0)
  return model, config


def test_stage_order_follows_the_chain(tmp_path):
  config = _config(tmp_path, qat=True, cluster_count=8, prune_sparsity=0.5,
                   slice_ratio=0.25, adv_attack="fgsm", distill=True)
  assert methods.chain_stages(config) == ["distill", "adversarial", "slice",
                                        "prune", "cluster", "qat"]
  assert methods.chain_stages(_config(tmp_path, qat=True)) == ["qat"]
  assert methods.chain_stages(_config(tmp_path)) == []


def test_nothing_to_chain_is_a_user_error(trained, digits):
  model, config = trained
  with pytest.raises(UserInputError, match="--combine needs at least one"):
    methods.build_combined(model, _ctx(config, digits))


@pytest.fixture(scope="module")
def prune_cluster_qat(trained, digits):
  model, config = trained
  config = config.replace(prune_sparsity=0.6, cluster_count=6,
                               qat=True)
  before = [w.copy() for w in model.get_weights()]
  result = methods.build_combined(model, _ctx(config, digits))
  unchanged = all(np.array_equal(a, b)
                  for a, b in zip(before, model.get_weights()))
  return result, config, unchanged


def test_chain_keeps_zeros_and_clusters_through_qat(prune_cluster_qat):
  result, config, baseline_unchanged = prune_cluster_qat
  assert baseline_unchanged
  assert result.name == "combined"
  assert result.extra["combined"]["stages"] == ["prune", "cluster", "qat"]
  assert result.extra["combined"]["epochs_per_stage"] == {
      "prune": 2, "cluster": 2, "qat": 2}
  assert result.extra["qat"]["scheme"] == "pcqat"
  assert result.extra["clustering"]["preserve_sparsity"] is True
  assert len(result.history["loss"]) == 6
  deployed = quantization.strip_quantization(result.model)
  kernels = [l.kernel.numpy() for l in deployed.layers if hasattr(l, "kernel")]
  for kernel in kernels:
    # Constant 60% sparsity per kernel survives clustering and PCQAT.
    assert np.mean(kernel == 0) == pytest.approx(0.6, abs=0.01)
    assert len(np.unique(kernel)) <= config.cluster.count
  assert result.extra["sparsity"]["overall"] == pytest.approx(0.6, abs=0.01)


def test_chain_int8_export_holds_the_zeros(prune_cluster_qat, digits,
                                           tmp_path):
  result, config, _ = prune_cluster_qat
  entries = export_variant("combined", result.model, digits, config,
                                  str(tmp_path))
  (entry,) = entries
  assert entry["kernel_dtypes"] and set(entry["kernel_dtypes"]) == {"int8"}
  assert entry["kernel_nonzero_fraction"] == pytest.approx(0.4, abs=0.02)
  assert entry["agreement"] >= 0.97
  assert entry["tflite_top1"] > 0.5


def test_chain_under_mirrored_strategy(trained, digits, logical_cpus):
  model, config = trained
  config = config.replace(prune_sparsity=0.5, finetune_epochs=1,
                               strategy="mirrored")
  strategy = tf_compress.make_strategy("mirrored", 2)
  assert strategy.num_replicas_in_sync == 2
  result = methods.build_combined(model, _ctx(config, digits, strategy))
  assert result.extra["sparsity"]["overall"] == pytest.approx(0.5, abs=0.01)
  assert np.isfinite(result.history["loss"]).all()
