"""The library behind `python -m tf_compress.train`: `run(config) -> report`.

The command-line module only turns flags into a `TrainConfig`; everything
else happens here, so tests and notebooks call `run()` directly.
"""

import os
import tempfile
import time

from tf_compress import data as data_lib
from tf_compress import distribute
from tf_compress import models as models_lib
from tf_compress import repro
from tf_compress._keras import keras
from tf_compress.analysis import classification_metrics
from tf_compress.analysis import environment_info
from tf_compress.analysis import model_stats
from tf_compress.analysis import plot_training_curves
from tf_compress.config import TrainConfig
from tf_compress.errors import UserInputError
from tf_compress.io_utils import atomic_write_json

__all__ = ["run", "prepare_output_dir", "build_model_for", "compile_model",
           "evaluate_model", "REPORT_NAME", "REPORT_SCHEMA_VERSION"]

REPORT_NAME = "report.json"
REPORT_SCHEMA_VERSION = 1


def prepare_output_dir(path):
  """Creates `path` if needed and checks that files can be written there.

  Raises:
    UserInputError: naming `--output_dir` when it cannot be written.
  """
  path = os.fspath(path)
  if os.path.exists(path) and not os.path.isdir(path):
    raise UserInputError(f"--output_dir '{path}' exists and is not a "
                         "directory")
  try:
    os.makedirs(path, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
      pass
  except OSError as exc:
    raise UserInputError(f"--output_dir '{path}' cannot be written: "
                         f"{exc.strerror or exc}") from None
  return path


def outputs_probabilities(model):
  """True when the model's last layer applies a softmax (not logits)."""
  last = model.layers[-1]
  if isinstance(last, keras.layers.Softmax):
    return True
  activation = getattr(last, "activation", None)
  return activation is keras.activations.softmax


def build_model_for(config, splits):
  """Builds the registered model, or loads the saved one, for `splits`."""
  if config.model in models_lib.available_models():
    return models_lib.build_model(config.model, splits.input_shape,
                                  splits.num_classes, width=config.width,
                                  seed=config.seed)
  looks_like_path = (os.sep in config.model or config.model.endswith(
      (".keras", ".h5", ".hdf5")) or os.path.exists(config.model))
  if not looks_like_path:
    # Let the registry produce its "unknown model" message.
    models_lib.build_model(config.model, splits.input_shape,
                           splits.num_classes)
  model = models_lib.load_model(config.model)
  models_lib.check_model_fits(model, splits.input_shape, splits.num_classes,
                              source=f"--model '{config.model}'")
  return model


def compile_model(model, config):
  """Compiles `model` with the configured optimizer and a matching loss."""
  optimizers = {
      "adam": keras.optimizers.Adam,
      "sgd": keras.optimizers.SGD,
      "rmsprop": keras.optimizers.RMSprop,
  }
  model.compile(
      optimizer=optimizers[config.optimizer](learning_rate=config.learning_rate),
      loss=keras.losses.SparseCategoricalCrossentropy(
          from_logits=not outputs_probabilities(model)),
      metrics=["accuracy"])
  return model


def evaluate_model(model, splits, top_k=3, batch_size=256):
  """Evaluates `model` on the test split: the report's standard metrics."""
  scores = model.predict(splits.x_test, batch_size=batch_size, verbose=0)
  metrics = classification_metrics(scores, splits.y_test, top_k=top_k)
  if model.compiled_loss is not None:
    metrics["test_loss"] = float(
        model.evaluate(splits.x_test, splits.y_test, batch_size=batch_size,
                       verbose=0, return_dict=True)["loss"])
  return metrics


def _class_weights(config, splits):
  if config.class_weight != "balanced":
    return None
  stats = data_lib.class_statistics(splits.y_train, splits.num_classes)
  return {int(k): float(v)
          for k, v in stats["suggested_class_weights"].items()
          if v is not None}


def _history_dict(history):
  return {key: [float(v) for v in values]
          for key, values in history.history.items()}


def run(config: TrainConfig, argv=None):
  """Trains and evaluates the baseline, then writes the run's artifacts.

  Writes into `config.output_dir`: `report.json`, `baseline.keras`,
  `history.json` and `training_curves.png`, each atomically.

  Args:
    config: the run configuration.
    argv: the command line, recorded in the report for re-running.

  Returns:
    The report, as written to `report.json`.

  Raises:
    UserInputError: bad dataset, model or output directory.
  """
  output_dir = prepare_output_dir(config.output_dir)
  if config.strategy == "mirrored":
    distribute.configure_logical_cpus(config.num_cpu_devices)
  keras.backend.clear_session()
  repro.set_seed(config.seed)
  if config.deterministic:
    repro.enable_determinism()

  splits = data_lib.load_dataset(
      config.dataset, validation_fraction=config.validation_fraction,
      test_fraction=config.test_fraction, normalization=config.normalization,
      image_size=config.image_size, seed=config.seed)
  analysis = splits.analyze()

  strategy = distribute.make_strategy(config.strategy, config.num_cpu_devices)
  with strategy.scope():
    model = build_model_for(config, splits)
    compile_model(model, config)

  validation = splits.validation(config.batch_size) if splits.num_val else None
  started = time.perf_counter()
  history = model.fit(
      splits.train(config.batch_size, seed=config.seed),
      validation_data=validation, epochs=config.epochs,
      class_weight=_class_weights(config, splits), verbose=config.verbose)
  train_seconds = time.perf_counter() - started
  histories = {"baseline": _history_dict(history)}
  atomic_write_json(os.path.join(output_dir, "history.json"), histories)

  model_path = os.path.join(output_dir, "baseline.keras")
  models_lib.save_model(model, model_path)
  variant = {"name": "baseline"}
  variant.update(evaluate_model(model, splits, top_k=config.top_k))
  variant.update(model_stats(model, saved_path=model_path))
  variant["model_path"] = os.path.basename(model_path)

  plot_training_curves(histories["baseline"],
                       os.path.join(output_dir, "training_curves.png"),
                       title=f"baseline ({model.name}) on {splits.name}")
  report = {
      "schema_version": REPORT_SCHEMA_VERSION,
      "dataset": analysis,
      "variants": [variant],
      "history": histories,
      "config": config.to_dict(),
      "command": list(argv) if argv is not None else None,
      "environment": environment_info(config.seed, config.deterministic),
      "artifacts": {
          "report": REPORT_NAME,
          "history": "history.json",
          "training_curves": "training_curves.png",
          "models": {"baseline": variant["model_path"]},
      },
      "timing": {"baseline_train_seconds": round(train_seconds, 3)},
  }
  atomic_write_json(os.path.join(output_dir, REPORT_NAME), report)
  return report

