"""The train command's work: `run(config) -> report`.

Train the baseline, build each enabled method's variant (and the sweeps and
the `combined` chain) from `pipeline.methods.METHODS`, export and verify
every variant on LiteRT, benchmark it, and write the report. The
command-line module only turns flags into a `RunConfig`, so tests and
notebooks call `run()` directly.
"""

import contextlib
import copy
import functools
import os
import time

from tf_compress import benchmark as benchmark_lib
from tf_compress import data as data_lib
from tf_compress import distribute
from tf_compress import export as export_lib
from tf_compress import models as models_lib
from tf_compress import repro
from tf_compress._keras import clear_sessions
from tf_compress._keras import engine_name
from tf_compress.analysis import comparison_rows
from tf_compress.analysis import environment_info
from tf_compress.analysis import model_stats
from tf_compress.analysis import per_class_change
from tf_compress.analysis import sensitivity
from tf_compress.analysis import summarize_seeds
from tf_compress.analysis import write_reports
from tf_compress.analysis.report_schema import HISTORY_NAME
from tf_compress.analysis.report_schema import PREDICTIONS_NAME
from tf_compress.analysis.report_schema import REPORT_NAME
from tf_compress.analysis.report_schema import REPORT_SCHEMA_VERSION
from tf_compress.errors import UserInputError
from tf_compress.io_utils import atomic_write_bytes
from tf_compress.io_utils import atomic_write_json
from tf_compress.io_utils import make_partial_file
from tf_compress.io_utils import remove_stale_partial_files
from tf_compress.pipeline import measures
from tf_compress.pipeline import methods as methods_lib
from tf_compress.pipeline import paired
from tf_compress.pipeline.config import RunConfig
from tf_compress.pipeline.training import backup_callbacks
from tf_compress.pipeline.training import BuildContext
from tf_compress.pipeline.training import build_model_for
from tf_compress.pipeline.training import class_weights_for
from tf_compress.pipeline.training import compile_model
from tf_compress.pipeline.training import history_dict

__all__ = ["run", "run_seeds", "prepare_output_dir", "export_variant", "measure_latency",
           "CALIBRATION_SAMPLES"]

# Calibrating int8 on the whole (small) training split avoids the output
# clipping seen with fewer samples; capped for large datasets.
CALIBRATION_SAMPLES = 2000


def prepare_output_dir(path):
  """Creates `path` if needed and checks that files can be written there.

  Partial files that a killed run left there are removed (see
  `io_utils.remove_stale_partial_files`); whole files are kept, and the run
  rewrites them.

  Raises:
    UserInputError: naming `--output_dir` when it cannot be written.
  """
  path = os.fspath(path)
  if os.path.exists(path) and not os.path.isdir(path):
    raise UserInputError(f"--output_dir '{path}' exists and is not a "
                         "directory")
  try:
    os.makedirs(path, exist_ok=True)
    fd, check = make_partial_file(os.path.join(path, "write-check"))
    os.close(fd)
    os.remove(check)
    remove_stale_partial_files(path)
  except OSError as exc:
    raise UserInputError(f"--output_dir '{path}' cannot be written: "
                         f"{exc.strerror or exc}") from None
  return path


def measure_latency(path, config):
  """LiteRT latency of one file: `{"cpu": [per thread count], "gpu": ...}`.

  Each measurement runs in a child process (a LiteRT crash cannot take the
  run down). The GPU entry is `{"available": false, "reason": ...}` where the
  accelerator cannot be used.
  """
  latency_config = config.latency
  report = benchmark_lib.benchmark_model(
      path, num_threads=latency_config.threads,
      num_runs=latency_config.runs, warmup_runs=latency_config.warmup,
      use_gpu=latency_config.use_gpu, seed=config.fit.seed)
  latency = {"cpu": [r for r in report["results"] if r["backend"] == "cpu"]}
  gpu = [r for r in report["results"] if r["backend"] == "gpu"]
  if gpu:
    latency["gpu"] = gpu[0]
  return latency


def export_variant(name, model, splits, config, output_dir,
                   robust_examples=None, predictions=None):
  """Exports `model` in every configured mode and verifies each file.

  Each file, `<name>_<mode>.tflite`, is run on the test split with the
  LiteRT interpreter and compared with the Keras model.

  Args:
    name: the variant's name, the files' prefix.
    model: the Keras model to export.
    splits: the `DatasetSplits` (calibration and test data).
    config: the `RunConfig`.
    output_dir: where the files go.
    robust_examples: adversarial test sets already crafted on `model`
      (`measures.robust_examples`); crafted here when None and needed.
    predictions: a dict that receives each file's test predictions, by
      mode, for the paired statistics.

  Returns:
    A list of report entries: `mode`, `path`, `bytes`, `gzip_bytes`,
    `tflite_top1`, `agreement`, `max_abs_diff`, plus the flatbuffer's ops,
    weight dtypes and `nonzero_fraction`.
  """
  entries = []
  calibration = splits.x_train[:CALIBRATION_SAMPLES]
  for mode in config.export.modes:
    path = os.path.join(output_dir, f"{name}_{mode}.tflite")
    info = export_lib.export_tflite(
        model, path, mode, representative_data=calibration,
        int8_io=config.export.int8_io and mode == "int8",
        num_calibration_samples=len(calibration))
    check = export_lib.verify_tflite(path, splits.x_test, splits.y_test,
                                     keras_model=model, isolate=False,
                                     return_predictions=True)
    if predictions is not None:
      predictions[mode] = check["predictions"]
    entry = {"mode": mode, "path": os.path.basename(path)}
    for key in ("bytes", "gzip_bytes", "nonzero_fraction",
                "kernel_nonzero_fraction", "ops", "weight_dtypes",
                "kernel_dtypes", "activation_dtypes"):
      entry[key] = info.get(key)
    for key in ("tflite_top1", "agreement", "max_abs_diff", "mean_abs_diff",
                "input_dtype", "output_dtype"):
      entry[key] = check.get(key)
    if config.latency.runs:
      entry["latency"] = measure_latency(path, config)
    if config.eval.robust_eval_epsilons:
      if robust_examples is None:
        robust_examples = measures.robust_examples(model, splits, config)
      entry["robust_accuracy"] = measures.robustness_report(
          model, splits, config, tflite_path=path, examples=robust_examples)
    entry["per_class_accuracy"] = check.get("per_class_accuracy")
    entries.append(entry)
  return entries


def _record_variant(name, model, splits, config, output_dir, extra,
                    predictions):
  """Saves `model` as `<name>.keras` and returns its report entry.

  `predictions[name]` receives the test predictions of the model and of
  each export.
  """
  model_path = os.path.join(output_dir, f"{name}.keras")
  if getattr(model, "optimizer", None) is None:  # Keras 3: unset
    # In the strategy its variables were made in (a distilled student
    # built under --strategy=mirrored), or evaluate mixes strategies.
    strategy = getattr(model, "distribute_strategy", None)
    with strategy.scope() if strategy else contextlib.nullcontext():
      compile_model(model, config)
  models_lib.save_model(model, model_path, include_optimizer=False)
  entry = {"name": name}
  metrics, keras_predictions = measures.evaluate_model(
      model, splits, top_k=config.eval.top_k, return_predictions=True)
  entry.update(metrics)
  own = predictions[name] = {paired.KERAS: keras_predictions}
  entry.update(model_stats(model, saved_path=model_path))
  entry["model_path"] = os.path.basename(model_path)
  entry.update(extra)
  examples = None
  if config.eval.robust_eval_epsilons:
    # Crafted once, attacked through the Keras model and every export.
    examples = measures.robust_examples(model, splits, config)
    entry["robust_accuracy"] = measures.robustness_report(
        model, splits, config, examples=examples)
  entry["tflite"] = export_variant(name, model, splits, config, output_dir,
                                   robust_examples=examples, predictions=own)
  for export in entry["tflite"]:
    if export.get("per_class_accuracy") is not None:
      # Who pays for the conversion: the export against its Keras model.
      export["per_class_change"] = per_class_change(
          entry["per_class_accuracy"], export["per_class_accuracy"])
  return entry


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


def _variant_jobs(config):
  """`(name, build, config, sweep)` per variant: methods, combined, sweeps.

  `build` is None for a sweep level that an earlier variant already trained;
  `sweep` is `(key, level)` for sweep levels, else None.
  """
  jobs = [(m.name, m.build, config, None)
          for m in methods_lib.enabled_methods(config)]
  if config.combine:
    jobs.append((methods_lib.COMBINED_NAME, methods_lib.build_combined,
                 config, None))
  for entry, name, level, level_config, trained in methods_lib.sweep_jobs(
      config):
    jobs.append((name, None if trained else entry.build, level_config,
                 (entry.sweep.key, level)))
  return jobs


def _set_up(config):
  """Output directory, devices, seeds; returns the output directory."""
  if config.fit.strategy == "multi_worker":
    # Before any op runs: it configures the process's collective ops.
    distribute.make_strategy("multi_worker")
  output_dir = prepare_output_dir(config.output_dir)
  if config.fit.strategy == "mirrored":
    distribute.configure_logical_cpus(config.fit.num_cpu_devices)
  clear_sessions()
  repro.set_seed(config.fit.seed)
  if config.fit.deterministic:
    repro.enable_determinism()
  return output_dir


def _chief_writes(run_fn):
  """Runs `run_fn(config, argv)` in the directory this worker may write.

  Under `--strategy=multi_worker` every worker runs the whole pipeline (the
  collective ops must match), but only the chief writes `output_dir`; the
  others write into a temporary directory that is removed afterwards
  (`distribute.chief_output_dir`).
  """
  @functools.wraps(run_fn)
  def wrapper(config, argv=None):
    if config.fit.strategy != "multi_worker":
      return run_fn(config, argv)
    with distribute.chief_output_dir(config.output_dir) as output_dir:
      if output_dir != config.output_dir:
        config = config.replace(output_dir=output_dir)
      return run_fn(config, argv)
  return wrapper


@_chief_writes
def run(config: RunConfig, argv=None):
  """Trains the baseline and the configured compressed variants.

  With `config.fit.seeds`, runs everything once per seed instead (see
  `run_seeds`). Under `--strategy=multi_worker` only the chief writes
  `output_dir`; every worker returns the report.

  The baseline is trained first; each enabled method's variant starts from
  it (see `pipeline.methods`). Every variant is evaluated on the test split,
  exported and verified. Writes into `config.output_dir`, each file
  atomically: `report.json`, `<variant>.keras`, the `.tflite` exports,
  `history.json`, and the results report: `report.html`, `report.md` and the
  plots (see `tf_compress.analysis.write_reports`).

  Args:
    config: the `RunConfig`.
    argv: the command line, recorded in the report for re-running.

  Returns:
    The report, as written to `report.json`.

  Raises:
    UserInputError: bad dataset, model or output directory.
  """
  if config.fit.seeds:
    return run_seeds(config, argv)
  output_dir = _set_up(config)
  fit = config.fit
  data = config.data
  splits = data_lib.load_dataset(
      data.dataset, validation_fraction=data.validation_fraction,
      test_fraction=data.test_fraction, normalization=data.normalization,
      image_size=data.image_size, seed=fit.seed)
  analysis = splits.analyze()
  if config.eval.sensitivity and not splits.num_val:
    raise UserInputError(
        "--sensitivity is measured on the validation split, which is empty; "
        "set --validation_fraction above 0.")

  strategy = distribute.make_strategy(fit.strategy, fit.num_cpu_devices)
  with strategy.scope():
    model = build_model_for(config, splits)
    compile_model(model, config)

  validation = splits.validation(fit.batch_size) if splits.num_val else None
  started = time.perf_counter()
  history = model.fit(
      splits.train(fit.batch_size, seed=fit.seed),
      validation_data=validation, epochs=fit.epochs,
      class_weight=class_weights_for(config, splits), verbose=fit.verbose,
      callbacks=backup_callbacks(config, "baseline", model),
      shuffle=False)  # shuffled by the dataset itself
  timing = {"baseline_train_seconds": round(time.perf_counter() - started, 3)}
  histories = {"baseline": history_dict(history)}
  history_path = os.path.join(output_dir, HISTORY_NAME)
  atomic_write_json(history_path, histories)

  baseline_extra = {"sparsity": measures.sparsity_report(model)}
  baseline_extra.update(measures.macs_report(model))
  predictions = {}
  entries = [_record_variant("baseline", model, splits, config, output_dir,
                             baseline_extra, predictions)]
  # In memory for the weight histograms: a QAT .keras file does not reload.
  models = {"baseline": model}
  layer_sensitivity = None
  if config.eval.sensitivity:
    started = time.perf_counter()
    layer_sensitivity = sensitivity(
        model, splits, config.eval.sensitivity,
        num_resamples=config.eval.bootstrap_resamples, seed=fit.seed,
        representative_data=splits.x_train[:CALIBRATION_SAMPLES],
        num_calibration_samples=CALIBRATION_SAMPLES)
    timing["sensitivity_seconds"] = round(time.perf_counter() - started, 3)
  sweeps = {}
  for name, build, variant_config, sweep in _variant_jobs(config):
    if build is None:
      entry = next(e for e in entries if e["name"] == name)
      sweeps.setdefault(sweep[0], []).append(_sweep_row(sweep[1], entry))
      continue
    ctx = BuildContext(
        config=variant_config, splits=splits, strategy=strategy,
        compile_fn=lambda m, c=variant_config: compile_model(m, c),
        # The chain runs several fits: one backup would cross them.
        callbacks=(() if name == methods_lib.COMBINED_NAME else
                   tuple(backup_callbacks(variant_config, name, model))))
    started = time.perf_counter()
    result = build(model, ctx)
    timing[f"{name}_train_seconds"] = round(time.perf_counter() - started, 3)
    histories[name] = result.history
    atomic_write_json(history_path, histories)
    entry = _record_variant(name, result.model, splits, variant_config,
                            output_dir, result.extra, predictions)
    entry["per_class_change"] = per_class_change(
        entries[0]["per_class_accuracy"], entry["per_class_accuracy"])
    entries.append(entry)
    models[name] = result.model
    if sweep is not None:
      sweeps.setdefault(sweep[0], []).append(_sweep_row(sweep[1], entry))

  # write_reports draws these curves, under these names, with the rest.
  plots = {"baseline": "training_curves.png"}
  for name, variant_history in histories.items():
    if name != "baseline" and variant_history:
      plots[name] = f"training_curves_{name}.png"
  headline = measures.headline_metrics(config, analysis)
  statistics = paired.attach_significance(
      entries, splits.y_test, predictions, headline,
      num_resamples=config.eval.bootstrap_resamples, seed=fit.seed,
      num_classes=splits.num_classes,
      controls={m.name: m.control for m in methods_lib.METHODS
                if m.control})
  predictions_path = os.path.join(output_dir, PREDICTIONS_NAME)
  atomic_write_bytes(predictions_path,
                     paired.predictions_npz(splits.y_test, predictions))
  report = {
      "schema_version": REPORT_SCHEMA_VERSION,
      # "keras3": the native Keras 3 engine; "tfmot": tf_keras through tfmot.
      "engine": engine_name(model),
      "dataset": analysis,
      "variants": entries,
      "comparison": comparison_rows(entries),
      "headline_metrics": headline,
      # Each variant and export against the baseline: see pipeline.paired.
      "statistics": statistics,
      "sweeps": sweeps,
      "history": histories,
      "config": config.to_dict(),
      "command": list(argv) if argv is not None else None,
      "environment": environment_info(fit.seed, fit.deterministic),
      "artifacts": {
          "report": REPORT_NAME,
          "history": HISTORY_NAME,
          "predictions": PREDICTIONS_NAME,
          "training_curves": "training_curves.png",
          "training_curves_per_variant": plots,
          "models": {e["name"]: e["model_path"] for e in entries},
      },
      "timing": timing,
  }
  if layer_sensitivity is not None:
    # One layer at a time, on the validation split (analysis.sensitivity).
    report["sensitivity"] = layer_sensitivity
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


def _relocated(report, run_name):
  """A copy of `report` whose file references point into `run_name/`."""
  report = copy.deepcopy(report)
  for variant in report["variants"]:
    variant["model_path"] = f"{run_name}/{variant['model_path']}"
    for export in variant.get("tflite", []):
      export["path"] = f"{run_name}/{export['path']}"
  artifacts = report["artifacts"]
  artifacts["models"] = {name: f"{run_name}/{path}"
                         for name, path in artifacts["models"].items()}
  for key in ("history", "predictions"):
    artifacts[key] = f"{run_name}/{artifacts[key]}"
  return report


@_chief_writes
def run_seeds(config: RunConfig, argv=None):
  """Runs the whole pipeline once per seed of `config.fit.seeds`.

  Each seed's run, baseline included, goes into `<output_dir>/seed_<s>`
  as a complete run directory of its own. The multi-seed directory's
  report.json is the first seed's report (its file references pointing
  into that seed's directory), with `seeds`: every figure of every model
  across the seeds (`analysis.summarize_seeds`), `config` and `command` of
  the whole run; its report.html and report.md add the across-seed table
  and plot.

  Returns:
    The multi-seed report, as written to `<output_dir>/report.json`.
  """
  output_dir = prepare_output_dir(config.output_dir)
  seeds = config.fit.seeds
  reports, runs = [], []
  for seed in seeds:
    name = f"seed_{seed}"
    one = config.replace(seed=seed, seeds=(),
                         output_dir=os.path.join(output_dir, name))
    if config.fit.backup_dir is not None:
      one = one.replace(backup_dir=os.path.join(config.fit.backup_dir, name))
    # A non-chief's nested run stays in its directory (chief_output_dir).
    reports.append(run(one, argv))
    runs.append(name)
  report = _relocated(reports[0], runs[0])
  report["seeds"] = summarize_seeds(reports, seeds, runs)
  report["config"] = config.to_dict()
  report["command"] = list(argv) if argv is not None else None
  report["timing"] = {"runs_seconds": [r["timing"] for r in reports]}
  for key in ("report_html", "report_md", "plots"):
    report["artifacts"].pop(key, None)
  report_path = os.path.join(output_dir, REPORT_NAME)
  atomic_write_json(report_path, report)
  written = write_reports(report, output_dir)
  report["artifacts"]["report_html"] = written["html"]
  report["artifacts"]["report_md"] = written["markdown"]
  report["artifacts"]["plots"] = written["plots"]
  atomic_write_json(report_path, report)
  return report
