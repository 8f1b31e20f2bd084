"""A study's results: trial records, the Pareto front, the best configuration.

Everything here is computed from the stored trials, so any worker (or a
re-run) writes the same files. Files, each written atomically:

* `trials.csv`, `trials.json`: every trial (number, state, params, fold
  scores, means, standard deviations, objective values, constraint
  violations, error);
* `pareto.json`, `pareto.png`: the front of the feasible completed trials;
* `best.flags`: the chosen configuration as a flagfile for
  `python -m tf_compress.train` (with `--combine`);
* `tuning.json`: the summary the HTML report renders.

The best configuration: among the Pareto-optimal feasible trials, the one
with the highest mean accuracy (balanced accuracy when that, and not
accuracy, is an objective); ties go to the smaller gzip size, then to the
lower trial number.
"""

import csv
import io
import json
import math
import os

import matplotlib

matplotlib.use("Agg")
# pylint: disable=g-import-not-at-top
import matplotlib.pyplot as plt
import optuna

from tf_compress.analysis import hypervolume
from tf_compress.analysis import pareto_front
from tf_compress.analysis.report_tables import config_flagfile
from tf_compress.io_utils import atomic_write_bytes
from tf_compress.io_utils import atomic_write_json
from tf_compress.io_utils import atomic_write_text
from tf_compress.pipeline.tuning import study as study_lib

__all__ = ["trial_records", "pareto_numbers", "select_best",
           "reference_point", "flagfile_text", "write_trials",
           "plot_pareto", "write_outputs", "CSV_COLUMNS"]

CSV_COLUMNS = ("number", "state", "kind", "params", "values", "std",
               "fold_scores", "mean", "violations", "feasible", "error",
               "retry_of", "worker", "duration_s")


def _finite(value):
  return value is not None and not (isinstance(value, float) and
                                    not math.isfinite(value))


def trial_records(trials, objectives, constraints):
  """One JSON-safe dict per trial (surplus trials left out).

  Args:
    trials: `optuna.trial.FrozenTrial`s.
    objectives: the objective names.
    constraints: the `objectives.Constraints` (feasibility is recomputed
      from the stored means, so changing a limit on resume applies).
  """
  retried = study_lib.retried_numbers(trials)
  records = []
  for trial in sorted(trials, key=lambda t: t.number):
    kind = study_lib.trial_kind(trial, retried)
    if kind == "surplus":
      continue
    attrs = trial.user_attrs
    mean = attrs.get("mean") or {}
    std = attrs.get("std") or {}
    complete = trial.state == optuna.trial.TrialState.COMPLETE
    values = ({name: value for name, value in zip(objectives, trial.values)}
              if complete and trial.values else {})
    violations = (constraints.violations(mean, mean.get("baseline_accuracy"))
                  if complete else {})
    error = attrs.get("error")
    if kind == "superseded":
      error = "worker stopped (no heartbeat); re-queued"
    elif kind == "interrupted":
      error = "interrupted"
    duration = (trial.duration.total_seconds()
                if trial.duration is not None else None)
    records.append({
        "number": trial.number,
        "state": trial.state.name,
        "kind": kind,
        "params": dict(trial.params),
        "values": values,
        "std": {name: std.get(name) for name in objectives} if complete
               else {},
        "fold_scores": attrs.get("folds", []),
        "mean": mean,
        "violations": violations,
        "feasible": bool(complete and all(v <= 0 for v in
                                          violations.values())),
        "error": error,
        "stopped": attrs.get("stopped"),
        "retry_of": trial.system_attrs.get("failed_trial"),
        "worker": attrs.get("worker"),
        "duration_s": duration,
        "overrides": attrs.get("overrides"),
    })
  return records


def pareto_numbers(records, objectives, directions):
  """Trial numbers on the Pareto front of the feasible completed trials."""
  candidates = [r for r in records if r["feasible"] and
                all(_finite(r["values"].get(o)) for o in objectives)]
  points = [[r["values"][o] for o in objectives] for r in candidates]
  return [candidates[i]["number"] for i in pareto_front(points, directions)]


def _primary_metric(objectives):
  if "balanced_accuracy" in objectives and "accuracy" not in objectives:
    return "balanced_accuracy"
  return "accuracy"


def select_best(records, pareto, objectives):
  """The best feasible Pareto-optimal record (module docstring), or None."""
  metric = _primary_metric(objectives)
  front = [r for r in records if r["number"] in set(pareto)]
  if not front:
    return None
  def key(record):
    mean = record["mean"]
    accuracy = mean.get(metric)
    size = mean.get("gzip_bytes")
    return (-(accuracy if accuracy is not None else -1.0),
            size if size is not None else float("inf"), record["number"])
  return min(front, key=key)


def reference_point(records, objectives, baseline_reference):
  """The hypervolume's reference: the worst acceptable value per objective.

  0 for the accuracies; the baseline's float32 TFLite gzip size and p50
  latency for size and latency (the worst value seen, plus 10%, where the
  baseline's is unknown or better than every trial's).
  """
  reference = []
  for name in objectives:
    if name in ("accuracy", "balanced_accuracy", "robust_accuracy"):
      reference.append(0.0)
      continue
    seen = [r["values"][name] for r in records
            if _finite(r["values"].get(name))]
    value = baseline_reference.get(name)
    if value is None or (seen and value <= min(seen)):
      value = max(seen) * 1.1 if seen else 1.0
    reference.append(float(value))
  return reference


def flagfile_text(config, comment=None):
  """`config` (a `RunConfig`) as a flagfile for `python -m tf_compress.train`.

  The same text as the report's `run.flags`
  (`analysis.report_tables.config_flagfile`): every flag of the run, with
  booleans as `--name` / `--noname` and unset (None) fields left out.
  """
  lines = [f"# {line}" for line in (comment or "").splitlines()]
  lines.append(config_flagfile(config.to_dict()))
  return "\n".join(lines) + "\n"


def write_trials(output_dir, records):
  """Writes `trials.json` and `trials.csv` (nested fields as JSON text)."""
  atomic_write_json(os.path.join(output_dir, "trials.json"), records)
  buffer = io.StringIO()
  writer = csv.writer(buffer)
  writer.writerow(CSV_COLUMNS)
  for record in records:
    row = []
    for column in CSV_COLUMNS:
      value = record.get(column)
      if column == "fold_scores":
        value = record["fold_scores"]
      if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True)
      row.append("" if value is None else value)
    writer.writerow(row)
  atomic_write_text(os.path.join(output_dir, "trials.csv"), buffer.getvalue())


def plot_pareto(records, pareto, objectives, path, best=None):
  """Scatter of the completed trials, front highlighted, to a PNG.

  The first objective is on the y axis against each other objective (one
  panel each); a single objective is plotted against the trial number.
  """
  complete = [r for r in records if r["values"]]
  others = objectives[1:] or ("number",)
  fig, axes = plt.subplots(1, len(others), figsize=(5 * len(others), 4),
                           squeeze=False)
  front = set(pareto)
  for axis, name in zip(axes[0], others):
    def xy(rows, x_name=name):
      xs = [r["number"] if x_name == "number" else r["values"][x_name]
            for r in rows]
      return xs, [r["values"][objectives[0]] for r in rows]
    infeasible = [r for r in complete if not r["feasible"]]
    feasible = [r for r in complete if r["feasible"]
                and r["number"] not in front]
    on_front = sorted((r for r in complete if r["number"] in front),
                      key=lambda r: xy([r])[0][0])
    if infeasible:
      axis.scatter(*xy(infeasible), marker="x", color="0.6",
                   label="violates a constraint")
    if feasible:
      axis.scatter(*xy(feasible), color="tab:blue", label="feasible")
    if on_front:
      axis.plot(*xy(on_front), "o-", color="tab:red", label="Pareto front")
    if best is not None and best["values"]:
      axis.scatter(*xy([best]), s=160, facecolors="none",
                   edgecolors="black", label="best (best.flags)")
    axis.set_xlabel(name)
    axis.set_ylabel(objectives[0])
    axis.grid(alpha=0.3)
    if axis.get_legend_handles_labels()[0]:
      axis.legend(fontsize=8)
  fig.suptitle(f"{len(complete)} completed trials, {len(front)} on the "
               "front")
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100)
  plt.close(fig)
  atomic_write_bytes(path, buffer.getvalue())
  return path


def write_outputs(output_dir, records, objectives, directions, constraints,
                  baseline_reference, best_config=None, final=None):
  """Writes every output file; returns the `tuning.json` dict.

  Args:
    output_dir: the study's directory.
    records: `trial_records(...)`.
    objectives: objective names.
    directions: their directions.
    constraints: the `Constraints`.
    baseline_reference: `{"gzip_bytes", "p50_ms"}` of the baseline, for
      the hypervolume's reference point.
    best_config: the best trial's `RunConfig` for `best.flags`, or None.
    final: the test-split results of the retrained Pareto configurations.
  """
  write_trials(output_dir, records)
  pareto = pareto_numbers(records, objectives, directions)
  best = select_best(records, pareto, objectives)
  front_records = [r for r in records if r["number"] in set(pareto)]
  reference = reference_point(records, objectives, baseline_reference)
  volume = hypervolume([[r["values"][o] for o in objectives]
                        for r in front_records], directions, reference)
  atomic_write_json(os.path.join(output_dir, "pareto.json"), {
      "objectives": list(objectives), "directions": list(directions),
      "reference_point": reference, "hypervolume": volume,
      "trials": [{"number": r["number"], "params": r["params"],
                  "values": r["values"], "std": r["std"]}
                 for r in front_records]})
  plot_pareto(records, pareto, objectives,
              os.path.join(output_dir, "pareto.png"), best)
  best_entry = None
  if best is not None:
    best_entry = {"number": best["number"], "params": best["params"],
                  "values": best["values"], "flagfile": None}
    if best_config is not None:
      atomic_write_text(os.path.join(output_dir, "best.flags"), flagfile_text(
          best_config, comment=(
              f"Trial {best['number']} of the tuning study: "
              f"{json.dumps(best['params'], sort_keys=True)}\n"
              "Reproduce with: python -m tf_compress.train "
              "--flagfile=best.flags")))
      best_entry["flagfile"] = "best.flags"
  summary = {
      "objectives": list(objectives),
      "directions": list(directions),
      "constraints": constraints.to_dict(),
      "num_trials": sum(1 for r in records if r["kind"] == "done"),
      "trials": [{"number": r["number"], "state": r["state"],
                  "params": r["params"], "values": r["values"],
                  "std": r["std"], "feasible": r["feasible"],
                  "error": r["error"]} for r in records],
      "pareto": pareto,
      "best": best_entry,
      "final": list(final or []),
      "plots": {"pareto": "pareto.png"},
      "hypervolume": volume,
      "reference_point": reference,
  }
  atomic_write_json(os.path.join(output_dir, "tuning.json"), summary)
  return summary
