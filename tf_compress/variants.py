"""The compressed variants the train command builds next to the baseline.

Each builder takes the trained baseline and returns a `VariantResult`: the
model to evaluate and export (wrappers stripped), its training history, and
the method-specific report fields. The baseline itself is never modified.
"""

import dataclasses
import math
from typing import Optional

from tf_compress import adversarial
from tf_compress import distillation
from tf_compress import models as models_lib
from tf_compress import pruning
from tf_compress import quantization
from tf_compress._keras import keras
from tf_compress.errors import UserInputError
from tf_compress.analysis.flops import count_macs

__all__ = ["VariantResult", "steps_per_epoch", "fine_tune", "pruning_config_for",
           "build_pruned", "build_sliced", "build_qat", "build_clustered",
           "build_student", "build_distilled", "build_student_scratch",
           "build_adversarial", "robustness_report", "robust_examples", "history_dict",
           "outputs_probabilities",
           "sparsity_report", "macs_report"]


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
      m_by_n=config.prune_m_by_n,
      block_size=config.prune_block or (1, 1))


def fine_tune(model, splits, config, epochs, callbacks=()):
  """Fits `model` on the training split (validation split monitored).

  Returns:
    The History as a JSON-safe dict (`history_dict`).
  """
  validation = splits.validation(config.batch_size) if splits.num_val else None
  history = model.fit(splits.train(config.batch_size, seed=config.seed + 1),
                      validation_data=validation, epochs=epochs,
                      callbacks=list(callbacks), verbose=config.verbose)
  return history_dict(history)


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
  history = fine_tune(model, splits, config, config.finetune_epochs,
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
      "block_size": list(prune_config.block_size),
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
  history = fine_tune(model, splits, config, config.finetune_epochs)
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


def build_qat(baseline, splits, config, strategy, compile_fn):
  """Quantization-aware fine-tuning of a copy of `baseline` (tfmot).

  The QAT model is what gets evaluated and exported: the converter turns its
  learnt ranges into a real int8 model, so its `int8` export is the one to
  compare with the baseline's post-training `int8` export.

  Returns:
    A `VariantResult` named `qat`.
  """
  with strategy.scope():
    model = quantization.quantize_model(baseline, scheme=config.qat_scheme)
    compile_fn(model)
  callbacks = []
  if config.qat_freeze_epoch is not None:
    callbacks.append(quantization.QATFreezeCallback(
        config.qat_freeze_epoch, verbose=bool(config.verbose)))
  history = fine_tune(model, splits, config, config.finetune_epochs, callbacks)
  extra = {"sparsity": sparsity_report(model)}
  extra.update(macs_report(quantization.strip_quantization(model)))
  extra["qat"] = {"scheme": config.qat_scheme,
                  "freeze_epoch": config.qat_freeze_epoch}
  if config.qat_scheme == "16x8":
    # TFLite cannot run tfmot's 16-bit QAT graphs; export the QAT-trained
    # float weights post-training (use --export=int16x8).
    model = quantization.strip_quantization(model)
  return VariantResult("qat", model, history, extra)


def build_clustered(baseline, splits, config, strategy, compile_fn):
  """Weight clustering of a copy of `baseline` (tfmot), then stripping.

  Returns:
    A `VariantResult` named `clustered`, with the stripped model.
  """
  with strategy.scope():
    model = quantization.cluster_model(baseline, config.cluster_count,
                                       init=config.cluster_init)
    compile_fn(model)
  history = fine_tune(model, splits, config, config.finetune_epochs)
  stripped = quantization.strip_clustering(model)
  extra = {"sparsity": sparsity_report(stripped)}
  extra.update(macs_report(stripped))
  extra["clustering"] = {
      "num_clusters": config.cluster_count, "init": config.cluster_init,
      "unique_values": quantization.unique_values_per_layer(stripped)}
  return VariantResult("clustered", stripped, history, extra)


def build_student(spec, splits, seed):
  """The student: a registered model name, or a width multiplier of `cnn`."""
  try:
    width = float(spec)
  except ValueError:
    return models_lib.build_model(spec, splits.input_shape,
                                  splits.num_classes, seed=seed + 17)
  if not width > 0:
    raise UserInputError(f"--distill_student width must be > 0, got {spec}")
  return models_lib.build_model("cnn", splits.input_shape, splits.num_classes,
                                width=width, seed=seed + 17)


def _copy(model):
  copy = keras.models.clone_model(model)
  copy.set_weights(model.get_weights())
  return copy


def _teacher(baseline, config, splits):
  if config.distill_teacher == "baseline":
    # The Distiller freezes its teacher; freeze a copy, not the baseline.
    return _copy(baseline)
  teacher = models_lib.load_model(config.distill_teacher)
  models_lib.check_model_fits(teacher, splits.input_shape, splits.num_classes,
                              source=f"--distill_teacher "
                              f"'{config.distill_teacher}'")
  return teacher


def build_distilled(baseline, splits, config, strategy, compile_fn):
  """Trains the student under the teacher (`Distiller`), cached logits.

  The student trains for `config.epochs`, like the baseline, so that
  `student_scratch` (same student, same epochs, no teacher) is the honest
  comparison.

  Returns:
    A `VariantResult` named `distilled`, holding the plain student.
  """
  teacher = _teacher(baseline, config, splits)
  with strategy.scope():
    student = build_student(config.distill_student, splits, config.seed)
    distiller = distillation.Distiller(
        teacher, student, alpha=config.distill_alpha,
        temperature=config.distill_temperature,
        teacher_outputs=("probabilities" if outputs_probabilities(teacher)
                         else "logits"))
    compile_fn(distiller)
  # No augmentation: the teacher runs once over the data, not every epoch.
  train = distillation.cache_teacher_logits(
      teacher, splits.x_train, splits.y_train, batch_size=config.batch_size,
      seed=config.seed + 1)
  validation = splits.validation(config.batch_size) if splits.num_val else None
  history = distiller.fit(train, epochs=config.epochs,
                          validation_data=validation, verbose=config.verbose)
  extra = {"sparsity": sparsity_report(distiller.student)}
  extra.update(macs_report(distiller.student))
  extra["distillation"] = {
      "teacher": config.distill_teacher, "student": config.distill_student,
      "temperature": config.distill_temperature, "alpha": config.distill_alpha}
  return VariantResult("distilled", distiller.student,
                       history_dict(history), extra)


def build_student_scratch(baseline, splits, config, strategy, compile_fn):
  """The distillation student trained on labels only, for comparison."""
  del baseline  # the point is to train without it
  with strategy.scope():
    student = build_student(config.distill_student, splits, config.seed)
    compile_fn(student)
  history = fine_tune(student, splits, config, config.epochs)
  extra = {"sparsity": sparsity_report(student)}
  extra.update(macs_report(student))
  return VariantResult("student_scratch", student, history, extra)


def build_adversarial(baseline, splits, config, strategy, compile_fn):
  """Adversarial fine-tuning of a copy of `baseline` (`AdversarialModel`).

  Returns:
    A `VariantResult` named `adversarial`, holding the plain base model.
  """
  low, high = splits.value_range
  with strategy.scope():
    base = _copy(baseline)
    base.trainable = True
    robust = adversarial.AdversarialModel(
        base, attack=config.adv_attack, epsilon=config.adv_epsilon,
        ratio=config.adv_ratio, steps=config.adv_steps,
        step_size=config.adv_step_size, clip_min=low, clip_max=high)
    compile_fn(robust)
  callbacks = []
  if config.adv_warmup_epochs:
    callbacks.append(adversarial.EpsilonWarmup(config.adv_warmup_epochs))
  history = fine_tune(robust, splits, config, config.finetune_epochs, callbacks)
  extra = {"sparsity": sparsity_report(robust.base_model)}
  extra.update(macs_report(robust.base_model))
  extra["adversarial_training"] = {
      "attack": config.adv_attack, "epsilon": config.adv_epsilon,
      "steps": config.adv_steps, "step_size": config.adv_step_size,
      "ratio": config.adv_ratio, "warmup_epochs": config.adv_warmup_epochs}
  return VariantResult("adversarial", robust.base_model, history, extra)


def robustness_report(model, splits, config, tflite_path=None,
                      examples=None):
  """Accuracy under FGSM and PGD-20 at `config.robust_eval_epsilons`.

  Adversarial examples are crafted on the Keras `model`; with
  `tflite_path` they are then run through LiteRT.

  Args:
    model: the Keras model the attacks use.
    splits: the `DatasetSplits` (test split attacked).
    config: the `TrainConfig` (`robust_eval_epsilons`, `seed`).
    tflite_path: a TFLite export of `model` to evaluate instead.
    examples: `robust_examples(model, splits, config)`, crafted once and
      shared by the model and its exports.

  Returns:
    `{"fgsm@eps": acc, "pgd@eps": acc, ..., "catastrophic_overfitting"}`.
  """
  kwargs = _robust_kwargs(splits, config)
  kwargs["examples"] = examples
  if tflite_path is None:
    result = adversarial.robust_accuracy(model, splits.x_test, splits.y_test,
                                         **kwargs)
  else:
    result = adversarial.robust_accuracy_tflite(
        tflite_path, model, splits.x_test, splits.y_test, **kwargs)
  return {k: (float(v) if isinstance(v, float) else v)
          for k, v in result.items()}


def _robust_kwargs(splits, config):
  low, high = splits.value_range
  return dict(epsilons=tuple(config.robust_eval_epsilons), pgd_steps=20,
              random_start=True, clip_min=low, clip_max=high,
              seed=config.seed)


def robust_examples(model, splits, config):
  """The FGSM and PGD-20 test sets `robustness_report` evaluates on."""
  kwargs = _robust_kwargs(splits, config)
  return adversarial.craft_examples(model, splits.x_test, splits.y_test,
                                    **kwargs)


def outputs_probabilities(model):
  """True when the model's last layer applies a softmax (not logits)."""
  last = model.layers[-1]
  return (isinstance(last, keras.layers.Softmax) or
          getattr(last, "activation", None) is keras.activations.softmax)


def history_dict(history):
  """A Keras History as a JSON-safe dict of float lists."""
  return {k: [float(v) for v in values]
          for k, values in history.history.items()}
