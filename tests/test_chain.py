"""The `combined` variant: methods chained without undoing each other."""

import dataclasses

import numpy as np
import pytest

import tf_compress
from tf_compress import chain
from tf_compress import quantization
from tf_compress import runner
from tf_compress.errors import UserInputError


def _config(tmp_path, **overrides):
  values = dict(output_dir=str(tmp_path), model="mlp", width=0.5, epochs=2,
                finetune_epochs=2, verbose=0, seed=3, benchmark_runs=0,
                export=("int8",), prune_schedule="constant")
  values.update(overrides)
  return tf_compress.TrainConfig(**values)


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
  config = _config(tmp_path_factory.mktemp("chain"))
  tf_compress.set_seed(config.seed)
  strategy = tf_compress.make_strategy("default")
  model = runner.build_model_for(config, digits)
  runner.compile_model(model, config)
  model.fit(digits.train(32, seed=0), epochs=config.epochs, verbose=0)
  return model, config


def test_stage_order_follows_the_chain(tmp_path):
  config = _config(tmp_path, qat=True, cluster_count=8, prune_sparsity=0.5,
                   slice_ratio=0.25, adv_attack="fgsm", distill=True)
  assert chain.chain_stages(config) == ["distill", "adversarial", "slice",
                                        "prune", "cluster", "qat"]
  assert chain.chain_stages(_config(tmp_path, qat=True)) == ["qat"]
  assert chain.chain_stages(_config(tmp_path)) == []


def test_nothing_to_chain_is_a_user_error(trained, digits):
  model, config = trained
  with pytest.raises(UserInputError, match="--combine needs at least one"):
    chain.build_combined(model, digits, config,
                         tf_compress.make_strategy("default"),
                         lambda m: runner.compile_model(m, config))


@pytest.fixture(scope="module")
def prune_cluster_qat(trained, digits):
  model, config = trained
  config = dataclasses.replace(config, prune_sparsity=0.6, cluster_count=6,
                               qat=True)
  before = [w.copy() for w in model.get_weights()]
  result = chain.build_combined(model, digits, config,
                                tf_compress.make_strategy("default"),
                                lambda m: runner.compile_model(m, config))
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
    assert len(np.unique(kernel)) <= config.cluster_count
  assert result.extra["sparsity"]["overall"] == pytest.approx(0.6, abs=0.01)


def test_chain_int8_export_holds_the_zeros(prune_cluster_qat, digits,
                                           tmp_path):
  result, config, _ = prune_cluster_qat
  entries = runner.export_variant("combined", result.model, digits, config,
                                  str(tmp_path))
  (entry,) = entries
  assert entry["kernel_dtypes"] and set(entry["kernel_dtypes"]) == {"int8"}
  assert entry["kernel_nonzero_fraction"] == pytest.approx(0.4, abs=0.02)
  assert entry["agreement"] >= 0.97
  assert entry["tflite_top1"] > 0.5


def test_chain_under_mirrored_strategy(trained, digits, logical_cpus):
  model, config = trained
  config = dataclasses.replace(config, prune_sparsity=0.5, finetune_epochs=1,
                               strategy="mirrored")
  strategy = tf_compress.make_strategy("mirrored", 2)
  assert strategy.num_replicas_in_sync == 2
  result = chain.build_combined(model, digits, config, strategy,
                                lambda m: runner.compile_model(m, config))
  assert result.extra["sparsity"]["overall"] == pytest.approx(0.5, abs=0.01)
  assert np.isfinite(result.history["loss"]).all()
