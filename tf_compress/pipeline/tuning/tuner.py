"""`tune(config) -> summary`: the library behind `python -m tf_compress.tune`.

1. Load the dataset; the search sees only `cv.fold_splits` views of it (no
   test data).
2. Train (or load from the cache) one baseline per fold.
3. Run Optuna trials until the study holds `config.trials` finished ones:
   each draws a configuration, builds its `combined` variant on every fold,
   exports and measures it (`evaluate.evaluate_fold`), and returns the fold
   means of the objectives. Failures are recorded and the study goes on.
4. Write the outputs (`outputs.write_outputs`); with `final_eval`, retrain
   the Pareto-optimal configurations on the full training split and test
   them (`final.evaluate_final`), then write the outputs again with those
   figures.
"""

import dataclasses
import os
import socket

import optuna

from tf_compress import analysis
from tf_compress import data as data_lib
from tf_compress import distribute
from tf_compress import repro
from tf_compress.analysis.report_schema import REPORT_NAME
from tf_compress.pipeline.run import prepare_output_dir
from tf_compress.errors import one_line
from tf_compress.errors import UserInputError
from tf_compress.pipeline.tuning import baselines
from tf_compress.pipeline.tuning import cv
from tf_compress.pipeline.tuning import evaluate
from tf_compress.pipeline.tuning import final as final_lib
from tf_compress.pipeline.tuning import objectives as objectives_lib
from tf_compress.pipeline.tuning import outputs
from tf_compress.pipeline.tuning import space as space_lib
from tf_compress.pipeline.tuning import study as study_lib
from tf_compress.pipeline.tuning.early_stopping import HopelessTrialStopper
from tf_compress.pipeline.tuning.tune_config import TuneConfig

__all__ = ["tune", "load_splits", "prepare_search", "run_search", "finalize",
           "make_objective", "SurplusTrial"]


class SurplusTrial(Exception):
  """A worker started a trial after the study had reached its size."""


def load_splits(train):
  """The dataset the base `RunConfig` names, split as `train` splits it."""
  return data_lib.load_dataset(
      train.data.dataset, validation_fraction=train.data.validation_fraction,
      test_fraction=train.data.test_fraction, normalization=train.data.normalization,
      image_size=train.data.image_size, seed=train.fit.seed)


@dataclasses.dataclass
class SearchContext:
  """What every trial needs: folds, their baselines, the measurement plan."""
  config: TuneConfig
  folds: list
  baselines: list
  settings: dict
  workdir: str
  # With `--seeds` in place of folds: each evaluation's seed.
  fold_seeds: tuple = ()

  def fold_config(self, train, index):
    """`train` as evaluation `index` runs it (its seed, with `--seeds`)."""
    if not self.fold_seeds:
      return train
    return train.replace(seed=self.fold_seeds[index], seeds=())

  @property
  def baseline_reference(self):
    reference = {}
    for name in ("gzip_bytes", "p50_ms"):
      values = [b.get(name) for b in self.baselines]
      if values and all(v is not None for v in values):
        reference[name] = sum(values) / len(values)
    return reference


def prepare_search(config, splits, baseline_fn=None):
  """Cuts the folds (test removed) and gets each fold's baseline.

  Args:
    config: the `TuneConfig`.
    splits: the full `DatasetSplits`; only its search views are kept.
    baseline_fn: replaces `baselines.fold_baseline` (tests).

  Returns:
    A `SearchContext`.
  """
  baseline_fn = baseline_fn or baselines.fold_baseline
  cv.check_cv_folds(config.cv_folds, splits.y_train)
  seeds = tuple(config.train.fit.seeds)
  if seeds:
    # Seeds in place of folds: the same validation split, a baseline and
    # a trial model trained per seed.
    folds = cv.fold_splits(splits, 0, config.train.fit.seed) * len(seeds)
  else:
    folds = cv.fold_splits(splits, config.cv_folds, config.train.fit.seed)
  settings = {
      "latency": objectives_lib.needs_latency(config.objectives,
                                              config.constraints),
      "robust": ((config.robust_attack, config.robust_epsilon)
                 if objectives_lib.needs_robustness(config.objectives)
                 else None)}
  cache = os.path.join(config.output_dir, "baselines")
  context = SearchContext(config, [f for f, _ in folds], [], settings,
                          os.path.join(config.output_dir, "work"), seeds)
  context.baselines = [
      baseline_fn(context.fold_config(config.train, index), fold, index,
                  cache, latency=settings["latency"])
      for index, (fold, _) in enumerate(folds)]
  os.makedirs(context.workdir, exist_ok=True)
  return context


def _record_error(trial, exc):
  trial.set_user_attr("error", f"{type(exc).__name__}: {one_line(exc)}"[:2000])


def make_objective(context, study, evaluate_fn=None):
  """The Optuna objective of a study (see the module docstring).

  Args:
    context: the `SearchContext`.
    study: the study (to check for surplus trials).
    evaluate_fn: replaces `evaluate.evaluate_fold` (tests).
  """
  config = context.config
  evaluate_fn = evaluate_fn or evaluate.evaluate_fold
  worker = f"{socket.gethostname()}:{os.getpid()}"

  def objective(trial):
    trial.set_user_attr("worker", worker)
    if study_lib.is_surplus(study, trial.number, config.trials):
      trial.set_user_attr("surplus", True)
      raise SurplusTrial(f"trial {trial.number}: the study already has "
                         f"{config.trials} trials")
    scores = []
    try:
      params = space_lib.suggest(trial, config.space)
      overrides = space_lib.train_overrides(params, config.space,
                                            config.train)
      trial.set_user_attr("overrides", _json_safe(overrides))
      trial_config = config.train.replace(**overrides)
      for index, fold in enumerate(context.folds):
        callbacks = []
        if config.max_accuracy_drop is not None:
          threshold = (context.baselines[index]["val_accuracy"] -
                       config.max_accuracy_drop - config.early_stop_margin)
          callbacks.append(HopelessTrialStopper(threshold, trial=trial))
        scores.append(evaluate_fn(context.fold_config(trial_config, index),
                                  fold,
                                  context.baselines[index], context.settings,
                                  callbacks=callbacks,
                                  workdir=context.workdir))
        trial.set_user_attr("folds", scores)
    except optuna.TrialPruned:
      raise
    except KeyboardInterrupt:
      trial.set_user_attr("interrupted", True)
      raise
    except Exception as exc:  # pylint: disable=broad-except
      _record_error(trial, exc)
      raise
    mean, std = evaluate.summarize(scores)
    violations = config.constraints.violations(mean,
                                               mean["baseline_accuracy"])
    trial.set_user_attr("mean", mean)
    trial.set_user_attr("std", std)
    trial.set_user_attr("violations", violations)
    study_lib.set_constraints(trial, violations)
    return [mean[name] for name in config.objectives]

  return objective


def _json_safe(overrides):
  return {k: (list(v) if isinstance(v, tuple) else v)
          for k, v in overrides.items()}


def _open_study(config):
  url = config.storage or study_lib.default_storage_url(config.output_dir)
  storage = study_lib.open_storage(url, config.heartbeat_interval,
                                   config.grace_period)
  sampler = study_lib.make_sampler(config.sampler, config.train.fit.seed,
                                   config.trials,
                                   len(config.constraints.active()))
  return study_lib.open_study(storage, config.study_name, config.directions,
                              sampler, config.fingerprint())


def run_search(config, splits, evaluate_fn=None, baseline_fn=None):
  """Runs the search part of a study on `splits` (no final test).

  Args:
    config: the `TuneConfig`.
    splits: the `DatasetSplits`; only train/validation data reaches the
      trials.
    evaluate_fn: replaces `evaluate.evaluate_fold` (tests).
    baseline_fn: replaces `baselines.fold_baseline` (tests).

  Returns:
    `(study, context)`.
  """
  prepare_output_dir(config.output_dir)
  study = _open_study(config)
  context = prepare_search(config, splits, baseline_fn)
  objective = make_objective(context, study, evaluate_fn)
  study_lib.run_worker(study, objective, config.trials,
                       timeout=config.timeout,
                       poll_interval=config.poll_interval)
  return study, context


def _overrides_of(record, config):
  params = record["params"]
  return space_lib.train_overrides(params, config.space, config.train)


def finalize(config, study, context):
  """Writes the outputs; retrains and tests the Pareto-optimal configurations.

  Returns:
    The `tuning.json` summary.
  """
  records = outputs.trial_records(study.get_trials(deepcopy=False),
                                  config.objectives, config.constraints)
  pareto = outputs.pareto_numbers(records, config.objectives,
                                  config.directions)
  best = outputs.select_best(records, pareto, config.objectives)
  final_dir = os.path.join(config.output_dir, "final")
  robust = context.settings["robust"]
  best_config = None
  if best is not None:
    best_config = final_lib.final_config(
        config.train, _overrides_of(best, config),
        os.path.join(final_dir, f"trial_{best['number']}"), robust)
  final = []
  if config.final_eval and pareto:
    by_number = {r["number"]: r for r in records}
    ordered = sorted(pareto, key=lambda n: n != (best or {}).get("number"))
    if config.final_max:
      ordered = ordered[:config.final_max]
    for number in ordered:
      record = by_number[number]
      run_config = final_lib.final_config(
          config.train, _overrides_of(record, config),
          os.path.join(final_dir, f"trial_{number}"), robust)
      entry = {"number": number, "params": record["params"],
               "validation": record["values"], "test": None,
               "report": os.path.relpath(
                   os.path.join(run_config.output_dir, REPORT_NAME),
                   config.output_dir)}
      try:
        entry["test"], _ = final_lib.evaluate_final(run_config, robust)
      except Exception as exc:  # pylint: disable=broad-except
        # One configuration failing to retrain must not lose the study's
        # outputs; the error is reported in its place.
        entry["error"] = f"{type(exc).__name__}: {one_line(exc)}"[:2000]
        entry["report"] = None
      final.append(entry)
  summary = outputs.write_outputs(
      config.output_dir, records, config.objectives, config.directions,
      config.constraints, context.baseline_reference, best_config, final)
  _write_html_report(config.output_dir, summary)
  return summary


def _write_html_report(output_dir, summary):
  """report.html/.md in the study's directory: the tuning section, and the
  retrained best configuration's run (its variants, plots and who pays)."""
  best = (summary.get("best") or {}).get("number")
  entry = next((f for f in summary.get("final") or []
                if f.get("number") == best and f.get("report")), None)
  if entry is None:
    return
  run_dir = os.path.dirname(os.path.join(output_dir, entry["report"]))
  report = analysis.load_report(run_dir)
  analysis.write_reports(report, run_dir, output_dir=output_dir,
                         tuning=summary)


def tune(config: TuneConfig, splits=None):
  """Runs (or resumes) a study and writes its outputs.

  Args:
    config: the `TuneConfig`.
    splits: the `DatasetSplits` to search on; None loads the dataset that
      `config.train` names. The final test always uses that dataset, as
      `python -m tf_compress.train` would.

  Returns:
    The `tuning.json` summary.

  Raises:
    UserInputError: bad dataset, storage, folds or output directory.
  """
  if not isinstance(config, TuneConfig):
    raise UserInputError(f"tune() needs a TuneConfig, got "
                         f"{type(config).__name__}")
  prepare_output_dir(config.output_dir)
  if config.train.fit.strategy == "mirrored":
    distribute.configure_logical_cpus(config.train.fit.num_cpu_devices)
  if config.train.fit.deterministic:
    repro.enable_determinism()
  if splits is None:
    splits = load_splits(config.train)
  cv.check_cv_folds(config.cv_folds, splits.y_train)
  study, context = run_search(config, splits)
  return finalize(config, study, context)
