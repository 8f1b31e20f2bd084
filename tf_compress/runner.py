"""The library behind `python -m tf_compress.train`: `run(config) -> report`.

The command-line module only turns flags into a `TrainConfig`; everything
else happens here, so tests and notebooks call `run()` directly.
"""

import os
import tempfile
import time

import dataclasses

from tf_compress import benchmark as benchmark_lib
from tf_compress import chain
from tf_compress import data as data_lib
from tf_compress import distribute
from tf_compress import export as export_lib
from tf_compress import models as models_lib
from tf_compress import repro
from tf_compress import variants as variants_lib
from tf_compress._keras import keras
from tf_compress.analysis import classification_metrics
from tf_compress.analysis import comparison_rows
from tf_compress.analysis import environment_info
from tf_compress.analysis import model_stats
from tf_compress.analysis import per_class_change
from tf_compress.analysis import write_reports
from tf_compress.config import TrainConfig
from tf_compress.errors import UserInputError
from tf_compress.io_utils import atomic_write_json

__all__ = ["run", "prepare_output_dir", "build_model_for", "compile_model",
           "evaluate_model", "export_variant", "measure_latency",
           "headline_metrics", "class_weights_for", "REPORT_NAME", "REPORT_SCHEMA_VERSION"]

REPORT_NAME = "report.json"
REPORT_SCHEMA_VERSION = 1
# Above this max/min class-count ratio the report leads with balanced
# accuracy and macro-F1 instead of top-1/top-K.
IMBALANCE_THRESHOLD = 1.5
# Calibrating int8 on the whole (small) training split avoids the output
# clipping seen with fewer samples; capped for large datasets.
_CALIBRATION_SAMPLES = 2000


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
          from_logits=not variants_lib.outputs_probabilities(model)),
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


def class_weights_for(config, splits):
  """`fit`'s class_weight for `--class_weight` (balanced: from the train split)."""
  if config.class_weight != "balanced":
    return None
  stats = data_lib.class_statistics(splits.y_train, splits.num_classes)
  return {int(k): float(v)
          for k, v in stats["suggested_class_weights"].items()
          if v is not None}


def measure_latency(path, config):
  """LiteRT latency of one file: `{"cpu": [per thread count], "gpu": ...}`.

  Each measurement runs in a child process (a LiteRT crash cannot take the
  run down). The GPU entry is `{"available": false, "reason": ...}` where the
  accelerator cannot be used.
  """
  report = benchmark_lib.benchmark_model(
      path, num_threads=config.benchmark_threads,
      num_runs=config.benchmark_runs, warmup_runs=config.benchmark_warmup,
      use_gpu=config.use_gpu, seed=config.seed)
  latency = {"cpu": [r for r in report["results"] if r["backend"] == "cpu"]}
  gpu = [r for r in report["results"] if r["backend"] == "gpu"]
  if gpu:
    latency["gpu"] = gpu[0]
  return latency


def export_variant(name, model, splits, config, output_dir,
                   robust_examples=None):
  """Exports `model` in every `config.export` mode and verifies each file.

  Each file, `<name>_<mode>.tflite`, is run on the test split with the
  LiteRT interpreter and compared with the Keras model.

  Args:
    name: the variant's name, the files' prefix.
    model: the Keras model to export.
    splits: the `DatasetSplits` (calibration and test data).
    config: the `TrainConfig` (`export`, `int8_io`, benchmark and
      robustness settings).
    output_dir: where the files go.
    robust_examples: adversarial test sets already crafted on `model`
      (`variants.robust_examples`); crafted here when None and needed.

  Returns:
    A list of report entries: `mode`, `path`, `bytes`, `gzip_bytes`,
    `tflite_top1`, `agreement`, `max_abs_diff`, plus the flatbuffer's ops,
    weight dtypes and `nonzero_fraction`.
  """
  entries = []
  calibration = splits.x_train[:_CALIBRATION_SAMPLES]
  for mode in config.export:
    path = os.path.join(output_dir, f"{name}_{mode}.tflite")
    info = export_lib.export_tflite(
        model, path, mode, representative_data=calibration,
        int8_io=config.int8_io and mode == "int8",
        num_calibration_samples=len(calibration))
    check = export_lib.verify_tflite(path, splits.x_test, splits.y_test,
                                     keras_model=model, isolate=False)
    entry = {"mode": mode, "path": os.path.basename(path)}
    for key in ("bytes", "gzip_bytes", "nonzero_fraction",
                "kernel_nonzero_fraction", "ops", "weight_dtypes",
                "kernel_dtypes", "activation_dtypes"):
      entry[key] = info.get(key)
    for key in ("tflite_top1", "agreement", "max_abs_diff", "mean_abs_diff",
                "input_dtype", "output_dtype"):
      entry[key] = check.get(key)
    if config.benchmark_runs:
      entry["latency"] = measure_latency(path, config)
    if config.robust_eval_epsilons:
      if robust_examples is None:
        robust_examples = variants_lib.robust_examples(model, splits, config)
      entry["robust_accuracy"] = variants_lib.robustness_report(
          model, splits, config, tflite_path=path, examples=robust_examples)
    entry["per_class_accuracy"] = check.get("per_class_accuracy")
    entries.append(entry)
  return entries


def _record_variant(name, model, splits, config, output_dir, extra):
  """Saves `model` as `<name>.keras` and returns its report entry."""
  model_path = os.path.join(output_dir, f"{name}.keras")
  if model.optimizer is None:
    compile_model(model, config)
  models_lib.save_model(model, model_path, include_optimizer=False)
  entry = {"name": name}
  entry.update(evaluate_model(model, splits, top_k=config.top_k))
  entry.update(model_stats(model, saved_path=model_path))
  entry["model_path"] = os.path.basename(model_path)
  entry.update(extra)
  examples = None
  if config.robust_eval_epsilons:
    # Crafted once, attacked through the Keras model and every export.
    examples = variants_lib.robust_examples(model, splits, config)
    entry["robust_accuracy"] = variants_lib.robustness_report(
        model, splits, config, examples=examples)
  entry["tflite"] = export_variant(name, model, splits, config, output_dir,
                                   robust_examples=examples)
  for export in entry["tflite"]:
    if export.get("per_class_accuracy") is not None:
      # Who pays for the conversion: the export against its Keras model.
      export["per_class_change"] = per_class_change(
          entry["per_class_accuracy"], export["per_class_accuracy"])
  return entry


def _level_name(prefix, level):
  """`pruned_80` for 0.8, `pruned_87.5` for 0.875."""
  return f"{prefix}_{round(level * 100, 2):g}"


def _sweep_row(level, entry):
  """One point of a params-vs-accuracy curve."""
  p50 = {}
  for export in entry["tflite"]:
    cpu = (export.get("latency") or {}).get("cpu") or []
    p50[export["mode"]] = cpu[0].get("p50_ms") if cpu else None
  return {
      "level": level, "variant": entry["name"], "params": entry["params"],
      "nonzero_params": entry["nonzero_params"],
      "sparsity": entry.get("sparsity", {}).get("overall"),
      "macs": entry.get("macs"), "top1": entry["top1"],
      "topk": entry["topk"], "top_k": entry["top_k"],
      "balanced_accuracy": entry["balanced_accuracy"],
      "macro_f1": entry["macro_f1"],
      "gzip_bytes": {e["mode"]: e["gzip_bytes"] for e in entry["tflite"]},
      "p50_ms": p50,
  }


def _sweep_builders(config):
  """(sweep key, variant name, level, builder, config) per sweep level."""
  jobs = []
  for level in config.sweep_sparsity:
    # The level the `pruned` variant already trained is not trained again.
    same = config.prune_sparsity == level and config.prune_m_by_n is None
    jobs.append(("sparsity", "pruned" if same else _level_name("pruned", level),
                 level, None if same else variants_lib.build_pruned,
                 dataclasses.replace(config, prune_sparsity=level,
                                     prune_m_by_n=None)))
  for level in config.sweep_slice:
    same = config.slice_ratio == level
    jobs.append(("slice", "sliced" if same else _level_name("sliced", level),
                 level, None if same else variants_lib.build_sliced,
                 dataclasses.replace(config, slice_ratio=level)))
  return jobs


def headline_metrics(config, analysis):
  """The metrics a report leads with: balanced ones under imbalance."""
  ratio = analysis.get("imbalance_ratio")
  if config.class_weight == "balanced" or (
      ratio is None or ratio > IMBALANCE_THRESHOLD):
    return ["balanced_accuracy", "macro_f1"]
  return ["top1", "topk"]


def run(config: TrainConfig, argv=None):
  """Trains the baseline and the configured compressed variants.

  The baseline is trained first; each compressed variant (`pruned` with
  `prune_sparsity`/`prune_m_by_n`, `sliced` with `slice_ratio`) starts from
  a copy of it and is fine-tuned. Every variant is evaluated on the test
  split. Writes into `config.output_dir`, each file atomically:
  `report.json`, `<variant>.keras`, the `.tflite` exports, `history.json`,
  and the results report: `report.html`, `report.md` and the plots (see
  `tf_compress.analysis.write_reports`).

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
      class_weight=class_weights_for(config, splits), verbose=config.verbose)
  timing = {"baseline_train_seconds": round(time.perf_counter() - started, 3)}
  histories = {"baseline": variants_lib.history_dict(history)}
  atomic_write_json(os.path.join(output_dir, "history.json"), histories)

  baseline_extra = {"sparsity": variants_lib.sparsity_report(model)}
  baseline_extra.update(variants_lib.macs_report(model))
  entries = [_record_variant("baseline", model, splits, config, output_dir,
                             baseline_extra)]
  # In memory for the weight histograms: a QAT .keras file does not reload.
  models = {"baseline": model}
  compile_fn = lambda m: compile_model(m, config)
  builders = []
  if variants_lib.pruning_config_for(config) is not None:
    builders.append(("pruned", variants_lib.build_pruned))
  if config.slice_ratio is not None:
    builders.append(("sliced", variants_lib.build_sliced))
  if config.qat:
    builders.append(("qat", variants_lib.build_qat))
  if config.cluster_count is not None:
    builders.append(("clustered", variants_lib.build_clustered))
  if config.distill:
    builders.append(("distilled", variants_lib.build_distilled))
    builders.append(("student_scratch", variants_lib.build_student_scratch))
  if config.adv_attack is not None:
    builders.append(("adversarial", variants_lib.build_adversarial))
  if config.combine:
    builders.append((chain.COMBINED_NAME, chain.build_combined))
  jobs = [(name, builder, config, None) for name, builder in builders]
  jobs += [(name, builder, level_config, (key, level))
           for key, name, level, builder, level_config
           in _sweep_builders(config)]
  sweeps = {}
  for name, builder, variant_config, sweep in jobs:
    if builder is None:
      entry = next(e for e in entries if e["name"] == name)
      sweeps.setdefault(sweep[0], []).append(_sweep_row(sweep[1], entry))
      continue
    started = time.perf_counter()
    result = builder(model, splits, variant_config, strategy, compile_fn)
    timing[f"{name}_train_seconds"] = round(time.perf_counter() - started, 3)
    histories[name] = result.history
    atomic_write_json(os.path.join(output_dir, "history.json"), histories)
    entry = _record_variant(name, result.model, splits, variant_config,
                            output_dir, result.extra)
    entry["per_class_change"] = per_class_change(
        entries[0]["per_class_accuracy"], entry["per_class_accuracy"])
    entries.append(entry)
    models[name] = result.model
    if sweep is not None:
      sweeps.setdefault(sweep[0], []).append(_sweep_row(sweep[1], entry))

  # write_reports draws these curves, under these names, with the rest.
  plots = {"baseline": "training_curves.png"}
  for name, history in histories.items():
    if name != "baseline" and history:
      plots[name] = f"training_curves_{name}.png"
  report = {
      "schema_version": REPORT_SCHEMA_VERSION,
      "dataset": analysis,
      "variants": entries,
      "comparison": comparison_rows(entries),
      "headline_metrics": headline_metrics(config, analysis),
      "sweeps": sweeps,
      "history": histories,
      "config": config.to_dict(),
      "command": list(argv) if argv is not None else None,
      "environment": environment_info(config.seed, config.deterministic),
      "artifacts": {
          "report": REPORT_NAME,
          "history": "history.json",
          "training_curves": "training_curves.png",
          "training_curves_per_variant": plots,
          "models": {e["name"]: e["model_path"] for e in entries},
      },
      "timing": timing,
  }
  report_path = os.path.join(output_dir, REPORT_NAME)
  # report.json first: the results are safe even if a plot fails.
  atomic_write_json(report_path, report)
  started = time.perf_counter()
  written = write_reports(report, output_dir, models=models)
  report["artifacts"]["report_html"] = written["html"]
  report["artifacts"]["report_md"] = written["markdown"]
  report["artifacts"]["plots"] = written["plots"]
  report["timing"]["reports_seconds"] = round(
      time.perf_counter() - started, 3)
  atomic_write_json(report_path, report)
  return report

