"""The compressed variants the train command builds next to the baseline.

Each builder takes the trained baseline and returns a `VariantResult`: the
model to evaluate and export (wrappers stripped), its training history, and
the method-specific report fields. The baseline itself is never modified.
"""

import dataclasses
import math
from typing import Optional

from tf_compress import pruning
from tf_compress.analysis.flops import count_macs

__all__ = ["VariantResult", "steps_per_epoch", "pruning_config_for",
           "build_pruned", "build_sliced", "sparsity_report"]


@dataclasses.dataclass
class VariantResult:
  """One compressed variant, ready for evaluation.

  Attributes:
    name: the variant's name in report.json (`pruned`, `sliced`, ...).
    model: the plain Keras model to evaluate, save and export.
    history: its fine-tuning History dict (may be empty).
    extra: method-specific report fields.
  """
  name: str
  model: object
  history: dict
  extra: dict


def steps_per_epoch(splits, batch_size):
  """Optimizer steps in one epoch over the training split."""
  return max(1, math.ceil(splits.num_train / batch_size))


def sparsity_report(model):
  """`{"overall", "per_layer"}` over the pruned kernels of `model`."""
  rows = pruning.sparsity_table(model)
  return {"overall": float(pruning.overall_sparsity(rows)),
          "per_layer": rows}


def macs_report(model):
  """`macs` (total) and `macs_per_layer` of `model`."""
  macs = count_macs(model)
  return {"macs": macs["total"], "macs_per_layer": macs["per_layer"]}


def pruning_config_for(config) -> Optional[pruning.PruningConfig]:
  """The `PruningConfig` the train flags describe, or None when off."""
  if config.prune_sparsity is None and config.prune_m_by_n is None:
    return None
  end = config.prune_end_epoch
  if end is None and config.prune_schedule == "polynomial":
    # Reach the target with a third of the fine-tuning left to recover.
    end = max(config.prune_begin_epoch + 1,
              math.ceil(config.finetune_epochs * 2 / 3))
  return pruning.PruningConfig(
      target_sparsity=config.prune_sparsity,
      schedule=config.prune_schedule,
      begin_epoch=config.prune_begin_epoch,
      end_epoch=end,
      frequency=config.prune_frequency,
      scope=config.prune_scope,
      m_by_n=config.prune_m_by_n)


def _fit(model, splits, config, epochs, callbacks=()):
  validation = splits.validation(config.batch_size) if splits.num_val else None
  history = model.fit(splits.train(config.batch_size, seed=config.seed + 1),
                      validation_data=validation, epochs=epochs,
                      callbacks=list(callbacks), verbose=config.verbose)
  return {k: [float(v) for v in values]
          for k, values in history.history.items()}


def build_pruned(baseline, splits, config, strategy, compile_fn):
  """Magnitude-prunes a copy of `baseline` while fine-tuning it.

  Args:
    baseline: the trained baseline (not modified).
    splits: the `DatasetSplits`.
    config: the `TrainConfig` (prune_* and finetune_epochs fields).
    strategy: the distribution strategy to build the model under.
    compile_fn: `compile_fn(model)` compiles a model like the baseline.

  Returns:
    A `VariantResult` named `pruned`, with the stripped model.
  """
  prune_config = pruning_config_for(config)
  with strategy.scope():
    model = pruning.prune_model(
        baseline, prune_config,
        steps_per_epoch=steps_per_epoch(splits, config.batch_size))
    compile_fn(model)
  history = _fit(model, splits, config, config.finetune_epochs,
                 [pruning.PruningCallback()])
  stripped = pruning.strip_pruning(model)
  extra = {"sparsity": sparsity_report(model)}
  extra.update(macs_report(stripped))
  extra["pruning"] = {
      "target_sparsity": prune_config.target_sparsity,
      "schedule": prune_config.schedule,
      "scope": prune_config.scope,
      "m_by_n": (list(prune_config.m_by_n)
                 if prune_config.m_by_n else None),
      "frequency": prune_config.frequency,
      "begin_epoch": prune_config.begin_epoch,
      "end_epoch": prune_config.end_epoch,
  }
  return VariantResult("pruned", stripped, history, extra)


def build_sliced(baseline, splits, config, strategy, compile_fn):
  """Removes the lowest-ranked filters of `baseline`, then fine-tunes.

  Returns:
    A `VariantResult` named `sliced`, with the smaller model.
  """
  with strategy.scope():
    result = pruning.slice_model(baseline, config.slice_ratio,
                                 criterion=config.slice_criterion)
    model = result.model
    compile_fn(model)
  history = _fit(model, splits, config, config.finetune_epochs)
  extra = {"sparsity": sparsity_report(model)}
  extra.update(macs_report(model))
  extra["slicing"] = {
      "ratio": config.slice_ratio,
      "criterion": config.slice_criterion,
      "macs_before": result.macs_before,
      "macs_after": result.macs_after,
      "params_before": result.params_before,
      "params_after": result.params_after,
      "removed": {k: int(v) for k, v in result.removed.items()},
      "skipped": result.skipped,
      "per_layer": result.per_layer,
  }
  return VariantResult("sliced", model, history, extra)
