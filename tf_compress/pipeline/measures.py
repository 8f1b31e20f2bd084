"""What the report measures on each variant: metrics, sparsity, MACs, robustness."""

import numpy as np

from tf_compress import adversarial
from tf_compress import inference
from tf_compress import pruning
from tf_compress.analysis import classification_metrics
from tf_compress.analysis import count_macs

__all__ = ["evaluate_model", "sparsity_report", "macs_report",
           "robustness_report", "robust_examples", "headline_metrics",
           "IMBALANCE_THRESHOLD"]

# Above this max/min class-count ratio the report leads with balanced
# accuracy and macro-F1 instead of top-1/top-K.
IMBALANCE_THRESHOLD = 1.5


def evaluate_model(model, splits, top_k=3, batch_size=256,
                   return_predictions=False):
  """Evaluates `model` on the test split: the report's standard metrics.

  With `return_predictions`, returns `(metrics, predictions)`: the test
  split's argmax classes as well, for the paired statistics.
  """
  scores = inference.predict_scores(model, splits.x_test, batch_size)
  metrics = classification_metrics(scores, splits.y_test, top_k=top_k)
  if model.compiled_loss is not None:
    metrics["test_loss"] = inference.test_loss(
        model, splits.x_test, splits.y_test, scores=scores,
        batch_size=batch_size)
  if return_predictions:
    return metrics, np.argmax(np.asarray(scores), axis=-1).astype(np.int64)
  return metrics


def sparsity_report(model):
  """`{"overall", "per_layer"}` over the pruned kernels of `model`."""
  rows = pruning.sparsity_table(model)
  return {"overall": float(pruning.overall_sparsity(rows)),
          "per_layer": rows}


def macs_report(model):
  """`macs` (total) and `macs_per_layer` of `model`."""
  macs = count_macs(model)
  return {"macs": macs["total"], "macs_per_layer": macs["per_layer"]}


def headline_metrics(config, analysis):
  """The metrics a report leads with: balanced ones under imbalance."""
  ratio = analysis.get("imbalance_ratio")
  if config.fit.class_weight == "balanced" or (
      ratio is None or ratio > IMBALANCE_THRESHOLD):
    return ["balanced_accuracy", "macro_f1"]
  return ["top1", "topk"]


def _robust_kwargs(splits, config):
  low, high = splits.value_range
  return dict(epsilons=tuple(config.eval.robust_eval_epsilons), pgd_steps=20,
              random_start=True, clip_min=low, clip_max=high,
              seed=config.fit.seed)


def robust_examples(model, splits, config):
  """The FGSM and PGD-20 test sets `robustness_report` evaluates on."""
  return adversarial.craft_examples(model, splits.x_test, splits.y_test,
                                    **_robust_kwargs(splits, config))


def robustness_report(model, splits, config, tflite_path=None,
                      examples=None):
  """Accuracy under FGSM and PGD-20 at `config.eval.robust_eval_epsilons`.

  Adversarial examples are crafted on the Keras `model`; with
  `tflite_path` they are then run through LiteRT.

  Args:
    model: the Keras model the attacks use.
    splits: the `DatasetSplits` (test split attacked).
    config: the `RunConfig`.
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
