"""The one list of compression methods: `METHODS`.

Each `Method` is declared once: its variant name, the `RunConfig` section
that configures it, `build(model, ctx)`, the report block it adds, its place
in the `combined` chain and its sweep, if any. The train command's variants,
its sweeps and the `combined` chain are all read from `METHODS`; adding a
method is one new entry here (and its config in `pipeline.config`).

The variants run in list order, each from the trained baseline. The
`combined` variant chains the methods in `chain_rank` order, the order in
which each step keeps what the previous ones gained: distil -> adversarial
-> slice -> prune -> cluster (sparsity-preserving after pruning) -> QAT
(PQAT after pruning, CQAT/PCQAT after clustering).
"""

import dataclasses
from typing import Callable, Optional, Tuple

from tf_compress import adversarial
from tf_compress import distillation
from tf_compress import models as models_lib
from tf_compress import pruning
from tf_compress import quantization
from tf_compress._keras import keras_version_of
from tf_compress.errors import UserInputError
from tf_compress.pipeline.measures import macs_report
from tf_compress.pipeline.measures import sparsity_report
from tf_compress.pipeline.training import fine_tune
from tf_compress.pipeline.training import fit_epochs
from tf_compress.pipeline.training import outputs_probabilities
from tf_compress.pipeline.training import steps_per_epoch
from tf_compress.pipeline.training import VariantResult

__all__ = ["Method", "Sweep", "METHODS", "COMBINED_NAME", "enabled_methods",
           "chain_methods", "chain_stages", "sweep_jobs", "build_combined",
           "build_student", "method"]

COMBINED_NAME = "combined"


@dataclasses.dataclass(frozen=True)
class Sweep:
  """A method's sweep: one variant per level of one of its fields.

  Attributes:
    key: the sweep's key in report.json's `sweeps`.
    level: the section field each level sets (e.g. `sparsity`).
    reset: section fields set to None for every level (e.g. `m_by_n`).
  """
  key: str
  level: str
  reset: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Method:
  """One compression method.

  Attributes:
    name: the variant's name in report.json.
    section: the `RunConfig` attribute holding the method's config; the
      method runs when that config is `enabled`.
    build: `build(model, ctx) -> VariantResult`, from a trained model that
      it does not modify.
    report_key: the block the method adds to its variant's entry.
    stage: its stage name in the `combined` chain, or None (not chained).
    chain_rank: its place in the chain (lower first).
    sweep: its `Sweep`, or None.
    control: the variant this one must beat to claim anything (the
      distilled student's `student_scratch`), or None; the report compares
      the two on the same test samples.
  """
  name: str
  section: str
  build: Callable
  report_key: Optional[str]
  stage: Optional[str] = None
  chain_rank: Optional[int] = None
  sweep: Optional[Sweep] = None
  control: Optional[str] = None

  def enabled(self, config):
    return bool(getattr(config, self.section).enabled)


def _standard_extra(model):
  extra = {"sparsity": sparsity_report(model)}
  extra.update(macs_report(model))
  return extra


def _build_pruned(baseline, ctx):
  """Magnitude-prunes a copy of `baseline` while fine-tuning it."""
  config = ctx.config
  prune_config = config.prune.pruning_config(config.fit.finetune_epochs)
  with ctx.strategy.scope():
    model = pruning.prune_model(
        baseline, prune_config,
        steps_per_epoch=steps_per_epoch(ctx.splits, config.fit.batch_size))
    ctx.compile_fn(model)
  history = fine_tune(model, ctx, [pruning.PruningCallback()])
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
      "block_size": list(prune_config.block_size),
      "begin_epoch": prune_config.begin_epoch,
      "end_epoch": prune_config.end_epoch,
  }
  return VariantResult("pruned", stripped, history, extra)


def _build_sliced(baseline, ctx):
  """Removes the lowest-ranked filters of `baseline`, then fine-tunes."""
  slicing = ctx.config.slice
  with ctx.strategy.scope():
    result = pruning.slice_model(baseline, slicing.ratio,
                                 criterion=slicing.criterion)
    model = result.model
    ctx.compile_fn(model)
  history = fine_tune(model, ctx)
  extra = _standard_extra(model)
  extra["slicing"] = {
      "ratio": slicing.ratio,
      "criterion": slicing.criterion,
      "macs_before": result.macs_before,
      "macs_after": result.macs_after,
      "params_before": result.params_before,
      "params_after": result.params_after,
      "removed": {k: int(v) for k, v in result.removed.items()},
      "skipped": result.skipped,
      "per_layer": result.per_layer,
  }
  return VariantResult("sliced", model, history, extra)


def _freeze_callbacks(config):
  if config.qat.freeze_epoch is None:
    return []
  return [quantization.QATFreezeCallback(config.qat.freeze_epoch,
                                         verbose=bool(config.fit.verbose))]


def _build_qat(baseline, ctx):
  """Quantization-aware fine-tuning of a copy of `baseline`.

  The QAT model is what gets evaluated and exported: the converter turns its
  learnt ranges into a real int8 model. In a chain after pruning or
  clustering it keeps their zeros or clusters (PQAT, CQAT, PCQAT).
  """
  config = ctx.config
  pruned, clustered = "prune" in ctx.chained, "cluster" in ctx.chained
  with ctx.strategy.scope():
    if clustered:
      model = quantization.cqat_model(baseline, preserve_sparsity=pruned)
      scheme = "pcqat" if pruned else "cqat"
    elif pruned:
      model = quantization.pqat_model(baseline)
      scheme = "pqat"
    else:
      model = quantization.quantize_model(baseline, scheme=config.qat.scheme)
      scheme = config.qat.scheme
    ctx.compile_fn(model)
  history = fine_tune(model, ctx, _freeze_callbacks(config))
  extra = {"sparsity": sparsity_report(model)}
  extra.update(macs_report(quantization.strip_quantization(model)))
  extra["qat"] = {"scheme": scheme, "freeze_epoch": config.qat.freeze_epoch}
  if scheme == "16x8":
    # TFLite cannot run tfmot's 16-bit QAT graphs; export the QAT-trained
    # float weights post-training (use --export=int16x8).
    model = quantization.strip_quantization(model)
  return VariantResult("qat", model, history, extra)


def _build_clustered(baseline, ctx):
  """Weight clustering of a copy of `baseline`, then stripping.

  In a chain after pruning the clustering preserves the zeros.
  """
  cluster = ctx.config.cluster
  pruned = "prune" in ctx.chained
  with ctx.strategy.scope():
    if pruned:
      model = quantization.prune_then_cluster(baseline, cluster.count,
                                              init=cluster.init)
    else:
      model = quantization.cluster_model(baseline, cluster.count,
                                         init=cluster.init)
    ctx.compile_fn(model)
  history = fine_tune(model, ctx)
  stripped = quantization.strip_clustering(model)
  extra = _standard_extra(stripped)
  block = {"num_clusters": cluster.count, "init": cluster.init}
  if ctx.in_chain:
    block["preserve_sparsity"] = pruned
  block["unique_values"] = quantization.unique_values_per_layer(stripped)
  extra["clustering"] = block
  return VariantResult("clustered", stripped, history, extra)


def build_student(spec, splits, seed, keras_version=3):
  """The student: a registered model name, or a width multiplier of `cnn`.

  It is built in the baseline's Keras (`keras_version`, 3 or 2).
  """
  try:
    width = float(spec)
  except ValueError:
    return models_lib.build_model(spec, splits.input_shape,
                                  splits.num_classes, seed=seed + 17,
                                  keras_version=keras_version)
  if not width > 0:
    raise UserInputError(f"--distill_student width must be > 0, got {spec}")
  return models_lib.build_model("cnn", splits.input_shape, splits.num_classes,
                                width=width, seed=seed + 17,
                                keras_version=keras_version)


def _teacher(baseline, ctx):
  teacher_spec = ctx.config.distill.teacher
  if teacher_spec == "baseline":
    # The Distiller freezes its teacher; freeze a copy, not the baseline.
    return models_lib.clone_with_weights(baseline)
  teacher = models_lib.load_model(
      teacher_spec, safe_mode=not ctx.config.fit.allow_unsafe_load)
  models_lib.check_model_fits(teacher, ctx.splits.input_shape,
                              ctx.splits.num_classes,
                              source=f"--distill_teacher '{teacher_spec}'")
  return teacher


def _build_distilled(baseline, ctx):
  """Trains the student under the teacher (`Distiller`), cached logits.

  The student trains for `epochs`, like the baseline, so that
  `student_scratch` (same student, same epochs, no teacher) is the honest
  comparison.
  """
  config, splits = ctx.config, ctx.splits
  distill = config.distill
  with ctx.strategy.scope():
    # In the scope: tf_keras checks that every variable of the Distiller,
    # the teacher's too, belongs to the strategy.
    teacher = _teacher(baseline, ctx)
    student = build_student(distill.student, splits, config.fit.seed,
                            keras_version_of(baseline))
    distiller = distillation.Distiller(
        teacher, student, alpha=distill.alpha,
        temperature=distill.temperature,
        teacher_outputs=("probabilities" if outputs_probabilities(teacher)
                         else "logits"))
    ctx.compile_fn(distiller)
  # No augmentation: the teacher runs once over the data, not every epoch.
  train = distillation.cache_teacher_logits(
      teacher, splits.x_train, splits.y_train,
      batch_size=config.fit.batch_size, seed=config.fit.seed + 1)
  history = fit_epochs(distiller, ctx, config.fit.epochs, train=train)
  extra = _standard_extra(distiller.student)
  extra["distillation"] = {
      "teacher": distill.teacher, "student": distill.student,
      "temperature": distill.temperature, "alpha": distill.alpha}
  return VariantResult("distilled", distiller.student, history, extra)


def _build_student_scratch(baseline, ctx):
  """The distillation student trained on labels only, for comparison."""
  config = ctx.config
  with ctx.strategy.scope():
    # Only the baseline's Keras: the point is to train without it.
    student = build_student(config.distill.student, ctx.splits,
                            config.fit.seed, keras_version_of(baseline))
    ctx.compile_fn(student)
  history = fit_epochs(student, ctx, config.fit.epochs)
  return VariantResult("student_scratch", student, history,
                       _standard_extra(student))


def _build_adversarial(baseline, ctx):
  """Adversarial fine-tuning of a copy of `baseline` (`AdversarialModel`)."""
  adv = ctx.config.adversarial
  low, high = ctx.splits.value_range
  with ctx.strategy.scope():
    base = models_lib.clone_with_weights(baseline)
    base.trainable = True
    robust = adversarial.AdversarialModel(
        base, attack=adv.attack, epsilon=adv.epsilon, ratio=adv.ratio,
        steps=adv.steps, step_size=adv.step_size, clip_min=low,
        clip_max=high)
    ctx.compile_fn(robust)
  callbacks = []
  if adv.warmup_epochs:
    callbacks.append(adversarial.EpsilonWarmup(adv.warmup_epochs))
  history = fine_tune(robust, ctx, callbacks)
  extra = _standard_extra(robust.base_model)
  extra["adversarial_training"] = {
      "attack": adv.attack, "epsilon": adv.epsilon, "steps": adv.steps,
      "step_size": adv.step_size, "ratio": adv.ratio,
      "warmup_epochs": adv.warmup_epochs}
  return VariantResult("adversarial", robust.base_model, history, extra)


# The one registry. Variant order (the report's order) is list order.
METHODS = (
    Method("pruned", "prune", _build_pruned, "pruning", stage="prune",
           chain_rank=3, sweep=Sweep("sparsity", "sparsity", ("m_by_n",))),
    Method("sliced", "slice", _build_sliced, "slicing", stage="slice",
           chain_rank=2, sweep=Sweep("slice", "ratio")),
    Method("qat", "qat", _build_qat, "qat", stage="qat", chain_rank=5),
    Method("clustered", "cluster", _build_clustered, "clustering",
           stage="cluster", chain_rank=4),
    Method("distilled", "distill", _build_distilled, "distillation",
           stage="distill", chain_rank=0, control="student_scratch"),
    Method("student_scratch", "distill", _build_student_scratch, None),
    Method("adversarial", "adversarial", _build_adversarial,
           "adversarial_training", stage="adversarial", chain_rank=1),
)


def method(name):
  """The `Method` of a variant name."""
  for entry in METHODS:
    if entry.name == name:
      return entry
  raise KeyError(f"no method named {name!r}; methods: "
                 f"{[m.name for m in METHODS]}")


def enabled_methods(config):
  """The methods `config` turns on, in variant order."""
  return [m for m in METHODS if m.enabled(config)]


def chain_methods(config):
  """The enabled methods of the `combined` chain, in chain order."""
  chained = [m for m in enabled_methods(config) if m.stage is not None]
  return sorted(chained, key=lambda m: m.chain_rank)


def chain_stages(config):
  """The stage names `build_combined` runs for `config`, in order."""
  return [m.stage for m in chain_methods(config)]


def _level_name(prefix, level):
  """`pruned_80` for 0.8, `pruned_87.5` for 0.875."""
  return f"{prefix}_{round(level * 100, 2):g}"


def sweep_jobs(config):
  """`(method, variant name, level, level config, trained)` per sweep level.

  `trained` is True where the level equals the method's own setting: that
  variant is already built and is not trained again.
  """
  jobs = []
  for entry in METHODS:
    if entry.sweep is None:
      continue
    section = getattr(config, entry.section)
    changes = {entry.sweep.level: None}
    changes.update({f: None for f in entry.sweep.reset})
    for level in section.sweep:
      changes[entry.sweep.level] = level
      same = all(getattr(section, f) == v for f, v in changes.items())
      level_config = dataclasses.replace(config, **{
          entry.section: dataclasses.replace(section, **changes)})
      name = entry.name if same else _level_name(entry.name, level)
      jobs.append((entry, name, level, level_config, same))
  return jobs


def _concatenate(histories):
  """One History dict over all stages: the keys every stage has, in order."""
  histories = [h for h in histories if h]
  if not histories:
    return {}
  common = [k for k in histories[0] if all(k in h for h in histories)]
  return {k: [v for h in histories for v in h[k]] for k in common}


def build_combined(baseline, ctx):
  """Applies every enabled method, in chain order, each on the last's model.

  Returns:
    A `VariantResult` named `combined`: the model to evaluate and export (a
    QAT model when the chain ends in QAT, otherwise a plain one), the
    concatenated fine-tuning history, and `extra` holding each method's
    report block plus `combined: {"stages", "epochs_per_stage"}`.

  Raises:
    UserInputError: no method is configured.
  """
  chain = chain_methods(ctx.config)
  if not chain:
    raise UserInputError(
        "--combine needs at least one method to chain: set --distill, "
        "--adv_attack, --slice_ratio, --prune_sparsity, --prune_m_by_n, "
        "--cluster_count or --qat")
  model = baseline
  histories, extra, epochs, done = [], {}, {}, ()
  for entry in chain:
    step_ctx = dataclasses.replace(ctx, chained=done, in_chain=True)
    result = entry.build(model, step_ctx)
    model, history = result.model, result.history
    extra[entry.report_key] = result.extra[entry.report_key]
    histories.append(history)
    epochs[entry.stage] = (len(next(iter(history.values()), []))
                           if history else 0)
    done += (entry.stage,)
  deployed = (quantization.strip_quantization(model)
              if any(quantization.find_quantizers(model)) else model)
  extra["sparsity"] = sparsity_report(deployed)
  extra.update(macs_report(deployed))
  extra["combined"] = {"stages": [m.stage for m in chain],
                       "epochs_per_stage": epochs}
  return VariantResult(COMBINED_NAME, model, _concatenate(histories), extra)
