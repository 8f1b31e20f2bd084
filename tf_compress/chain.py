"""The `combined` variant: every configured method, one after another.

The train command's other variants each start from the baseline and apply one
method. `build_combined` chains them into one deployable model, in the order
in which each step keeps what the previous ones gained:

1. distillation: a smaller student learns from the baseline (`--distill`);
2. adversarial fine-tuning (`--adv_attack`);
3. slicing: whole filters removed (`--slice_ratio`);
4. magnitude pruning (`--prune_sparsity` / `--prune_m_by_n`);
5. clustering (`--cluster_count`), sparsity-preserving after pruning;
6. quantization-aware training (`--qat`): prune-preserving (PQAT) after
   pruning, cluster-preserving (CQAT, PCQAT) after clustering.

Each step after the first fine-tunes for `finetune_epochs`. This is the
variant the tuner searches over (`python -m tf_compress.tune`), and
`--combine` rebuilds it from a tuned flagfile.
"""

from tf_compress import quantization
from tf_compress import variants as variants_lib
from tf_compress.errors import UserInputError

__all__ = ["COMBINED_NAME", "chain_stages", "build_combined"]

COMBINED_NAME = "combined"


def chain_stages(config):
  """The stages `build_combined` runs for `config`, in order.

  Returns:
    A list of stage names among `distill`, `adversarial`, `slice`, `prune`,
    `cluster`, `qat`; empty when no method is configured.
  """
  stages = []
  if config.distill:
    stages.append("distill")
  if config.adv_attack is not None:
    stages.append("adversarial")
  if config.slice_ratio is not None:
    stages.append("slice")
  if variants_lib.pruning_config_for(config) is not None:
    stages.append("prune")
  if config.cluster_count is not None:
    stages.append("cluster")
  if config.qat:
    stages.append("qat")
  return stages


def _cluster(model, splits, config, strategy, compile_fn, pruned):
  with strategy.scope():
    if pruned:
      wrapped = quantization.prune_then_cluster(model, config.cluster_count,
                                                init=config.cluster_init)
    else:
      wrapped = quantization.cluster_model(model, config.cluster_count,
                                           init=config.cluster_init)
    compile_fn(wrapped)
  history = variants_lib.fine_tune(wrapped, splits, config,
                                   config.finetune_epochs)
  stripped = quantization.strip_clustering(wrapped)
  extra = {"clustering": {
      "num_clusters": config.cluster_count, "init": config.cluster_init,
      "preserve_sparsity": bool(pruned),
      "unique_values": quantization.unique_values_per_layer(stripped)}}
  return stripped, history, extra


def _qat(model, splits, config, strategy, compile_fn, pruned, clustered):
  if not (pruned or clustered):
    result = variants_lib.build_qat(model, splits, config, strategy,
                                    compile_fn)
    return result.model, result.history, {"qat": result.extra["qat"]}
  with strategy.scope():
    if clustered:
      qat = quantization.cqat_model(model, preserve_sparsity=pruned)
      scheme = "pcqat" if pruned else "cqat"
    else:
      qat = quantization.pqat_model(model)
      scheme = "pqat"
    compile_fn(qat)
  callbacks = []
  if config.qat_freeze_epoch is not None:
    callbacks.append(quantization.QATFreezeCallback(
        config.qat_freeze_epoch, verbose=bool(config.verbose)))
  history = variants_lib.fine_tune(qat, splits, config,
                                   config.finetune_epochs, callbacks)
  return qat, history, {"qat": {"scheme": scheme,
                                "freeze_epoch": config.qat_freeze_epoch}}


def _concatenate(histories):
  """One History dict over all stages: the keys every stage has, in order."""
  histories = [h for h in histories if h]
  if not histories:
    return {}
  common = [k for k in histories[0] if all(k in h for h in histories)]
  return {k: [v for h in histories for v in h[k]] for k in common}


def build_combined(baseline, splits, config, strategy, compile_fn):
  """Applies every method `config` enables, in the order of `chain_stages`.

  Args:
    baseline: the trained baseline (not modified).
    splits: the `DatasetSplits`.
    config: the `TrainConfig`; the same fields as the single-method
      variants.
    strategy: the distribution strategy to build models under.
    compile_fn: `compile_fn(model)` compiles a model like the baseline.

  Returns:
    A `VariantResult` named `combined`: the model to evaluate and export (a
    QAT model when the chain ends in QAT, otherwise a plain one), the
    concatenated fine-tuning history, and `extra` holding each method's
    report block plus `combined: {"stages", "epochs_per_stage"}`.

  Raises:
    UserInputError: no method is configured.
  """
  stages = chain_stages(config)
  if not stages:
    raise UserInputError(
        "--combine needs at least one method to chain: set --distill, "
        "--adv_attack, --slice_ratio, --prune_sparsity, --prune_m_by_n, "
        "--cluster_count or --qat")
  model = baseline
  histories, extra, epochs = [], {}, {}
  pruned = clustered = False
  simple = {"distill": variants_lib.build_distilled,
            "adversarial": variants_lib.build_adversarial,
            "slice": variants_lib.build_sliced,
            "prune": variants_lib.build_pruned}
  for stage in stages:
    if stage in simple:
      result = simple[stage](model, splits, config, strategy, compile_fn)
      model, history = result.model, result.history
      extra.update({k: v for k, v in result.extra.items()
                    if k not in ("sparsity", "macs", "macs_per_layer")})
      pruned = pruned or stage == "prune"
    elif stage == "cluster":
      model, history, block = _cluster(model, splits, config, strategy,
                                       compile_fn, pruned)
      extra.update(block)
      clustered = True
    else:
      model, history, block = _qat(model, splits, config, strategy,
                                   compile_fn, pruned, clustered)
      extra.update(block)
    histories.append(history)
    epochs[stage] = len(next(iter(history.values()), [])) if history else 0
  deployed = (quantization.strip_quantization(model)
              if quantization.find_quantizers(model) else model)
  extra["sparsity"] = variants_lib.sparsity_report(deployed)
  extra.update(variants_lib.macs_report(deployed))
  extra["combined"] = {"stages": stages, "epochs_per_stage": epochs}
  return variants_lib.VariantResult(COMBINED_NAME, model,
                                    _concatenate(histories), extra)
