"""Training steps shared by the baseline and every method: build, compile, fit.

`BuildContext` is what a method's `build(model, ctx)` receives: the run
config, the data, the distribution strategy, the compile function, the
callbacks to add to every fit (the tuner's early stopping), and the stages a
chain has already applied.
"""

import dataclasses
import math
import os
from typing import Callable, Tuple

from tf_compress import data as data_lib
from tf_compress import keras3_backup
from tf_compress import models as models_lib
from tf_compress._keras import keras_of
from tf_compress._keras import keras_version_of
from tf_compress.errors import UserInputError

__all__ = ["BuildContext", "VariantResult", "build_model_for",
           "compile_model", "fine_tune", "fit_epochs", "steps_per_epoch",
           "class_weights_for", "history_dict", "outputs_probabilities",
           "backup_callbacks"]


@dataclasses.dataclass(frozen=True)
class BuildContext:
  """What a method needs besides the model it starts from.

  Attributes:
    config: the `RunConfig`.
    splits: the `DatasetSplits` (a tuner's search view holds no test data).
    strategy: the `tf.distribute` strategy models are built under.
    compile_fn: `compile_fn(model)` compiles a model like the baseline.
    callbacks: Keras callbacks added to every fit a method runs.
    chained: the stages a `combined` chain applied before this one.
    in_chain: True inside the `combined` chain.
  """
  config: object
  splits: object
  strategy: object
  compile_fn: Callable
  callbacks: Tuple = ()
  chained: Tuple[str, ...] = ()
  in_chain: bool = False


@dataclasses.dataclass
class VariantResult:
  """One compressed variant, ready for evaluation.

  Attributes:
    name: the variant's name in report.json (`pruned`, `sliced`, ...).
    model: the Keras model to evaluate, save and export.
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


def build_model_for(config, splits):
  """Builds the registered model, or loads the saved one, for `splits`.

  A registered model is built in Keras 3 unless `--keras=2`; a saved file
  keeps the Keras it was saved by (`--keras`, when given, must match it).
  """
  fit = config.fit
  if fit.model in models_lib.available_models():
    return models_lib.build_model(fit.model, splits.input_shape,
                                  splits.num_classes, width=fit.width,
                                  seed=fit.seed,
                                  keras_version=fit.keras or 3)
  looks_like_path = (os.sep in fit.model or fit.model.endswith(
      (".keras", ".h5", ".hdf5")) or os.path.exists(fit.model))
  if not looks_like_path:
    # Let the registry produce its "unknown model" message.
    models_lib.build_model(fit.model, splits.input_shape, splits.num_classes)
  model = models_lib.load_model(fit.model,
                                safe_mode=not fit.allow_unsafe_load)
  saved = keras_version_of(model)
  if fit.keras is not None and fit.keras != saved:
    raise UserInputError(
        f"--model '{fit.model}' was saved by "
        f"{'Keras 3' if saved == 3 else 'tf_keras (Keras 2)'}, but "
        f"--keras={fit.keras}; leave --keras unset to compress it with its "
        f"own engine, or pass --keras={saved}")
  models_lib.check_model_fits(model, splits.input_shape, splits.num_classes,
                              source=f"--model '{fit.model}'")
  return model


def outputs_probabilities(model):
  """True when the model's last layer applies a softmax (not logits)."""
  last = model.layers[-1]
  keras = keras_of(model)
  return (isinstance(last, keras.layers.Softmax) or
          getattr(last, "activation", None) is keras.activations.softmax)


def compile_model(model, config):
  """Compiles `model` with the configured optimizer and a matching loss.

  The optimizer and loss come from the model's own Keras (3 or tf_keras).
  """
  keras = keras_of(model)
  optimizers = {
      "adam": keras.optimizers.Adam,
      "sgd": keras.optimizers.SGD,
      "rmsprop": keras.optimizers.RMSprop,
  }
  model.compile(
      optimizer=optimizers[config.fit.optimizer](
          learning_rate=config.fit.learning_rate),
      loss=keras.losses.SparseCategoricalCrossentropy(
          from_logits=not outputs_probabilities(model)),
      metrics=["accuracy"])
  return model


def class_weights_for(config, splits):
  """`fit`'s class_weight for `--class_weight` (balanced: from the train split)."""
  if config.fit.class_weight != "balanced":
    return None
  stats = data_lib.class_statistics(splits.y_train, splits.num_classes)
  return {int(k): float(v)
          for k, v in stats["suggested_class_weights"].items()
          if v is not None}


def backup_callbacks(config, name, model):
  """`[BackupAndRestore(<backup_dir>/<name>)]` for `--backup_dir`, else `[]`.

  The callback comes from `model`'s own Keras. Each model has its own
  directory, so that a restarted run restores each fit from its own state
  only; `name` must run one fit (a backup is deleted when its fit ends).
  The weights, the optimizer and the pruning step are restored, at the last
  epoch boundary; the data's shuffle order starts afresh. Keras 3 models
  get `keras3_backup.BackupAndRestore` (only the chief writes, atomically).
  """
  if config.fit.backup_dir is None:
    return []
  path = os.path.join(config.fit.backup_dir, name)
  if keras_version_of(model) == 3:
    return [keras3_backup.BackupAndRestore(path)]
  return [keras_of(model).callbacks.BackupAndRestore(path)]


def history_dict(history):
  """A Keras History as a JSON-safe dict of float lists."""
  return {k: [float(v) for v in values]
          for k, values in history.history.items()}


def fit_epochs(model, ctx, epochs, callbacks=(), train=None):
  """Fits `model` for `epochs` (validation split monitored).

  Args:
    model: the compiled model.
    ctx: the `BuildContext`; its callbacks are added after `callbacks`.
    epochs: how many epochs.
    callbacks: the method's own callbacks.
    train: the training dataset; default: the training split, shuffled
      with seed + 1.

  Returns:
    The History as a JSON-safe dict.
  """
  config, splits = ctx.config, ctx.splits
  if train is None:
    train = splits.train(config.fit.batch_size, seed=config.fit.seed + 1)
  validation = (splits.validation(config.fit.batch_size) if splits.num_val
                else None)
  # shuffle=False: the dataset is shuffled already (Keras 3 warns else).
  history = model.fit(train, validation_data=validation, epochs=epochs,
                      callbacks=list(callbacks) + list(ctx.callbacks),
                      verbose=config.fit.verbose, shuffle=False)
  return history_dict(history)


def fine_tune(model, ctx, callbacks=()):
  """`fit_epochs` for the configured `finetune_epochs`."""
  return fit_epochs(model, ctx, ctx.config.fit.finetune_epochs, callbacks)
