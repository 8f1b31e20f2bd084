"""Trial records, Pareto front, best choice under constraints, output files."""

import csv
import dataclasses
import json

from absl.testing import flagsaver
import optuna
from optuna.distributions import FloatDistribution
import pytest

import tf_compress
from tf_compress.cli import train as train_cli
from tf_compress.analysis import pareto_mask
from tf_compress.cli.common import parse_flags_or_exit
from tf_compress.pipeline.tuning import outputs
from tf_compress.pipeline.tuning.objectives import Constraints

train_cli.define_flags()  # the command's flags, on absl's FLAGS

OBJECTIVES = ("accuracy", "gzip_bytes")
DIRECTIONS = ("maximize", "minimize")
# (accuracy, gzip bytes) of hand-made trials; baseline accuracy 0.97.
POINTS = {
    0: (0.970, 20000),   # front: most accurate
    1: (0.960, 9000),    # front
    2: (0.950, 9000),    # dominated by 1
    3: (0.940, 4000),    # front, but drops 3 points
    4: (0.960, 9500),    # dominated by 1
    5: (0.965, 12000),   # front
}


def _trial(number, accuracy, size, state=optuna.trial.TrialState.COMPLETE,
           **attrs):
  mean = {"accuracy": accuracy, "balanced_accuracy": accuracy,
          "gzip_bytes": size, "p50_ms": None, "robust_accuracy": None,
          "baseline_accuracy": 0.97}
  user_attrs = {"mean": mean, "std": {"accuracy": 0.01, "gzip_bytes": 0.0},
                "folds": [dict(mean, export="int8")]}
  user_attrs.update(attrs)
  return optuna.trial.create_trial(
      state=state, values=[accuracy, size] if state.name == "COMPLETE"
      else None, params={"prune_sparsity": 0.5 + number / 100},
      distributions={"prune_sparsity": FloatDistribution(0.0, 0.99)},
      user_attrs=user_attrs)


@pytest.fixture
def trials():
  study = optuna.create_study(directions=list(DIRECTIONS))
  for number, (accuracy, size) in POINTS.items():
    study.add_trial(_trial(number, accuracy, size))
  study.add_trial(_trial(6, 0.1, 1, state=optuna.trial.TrialState.FAIL,
                         error="ModelError: boom"))
  study.add_trial(_trial(7, 0.99, 100, surplus=True,
                         state=optuna.trial.TrialState.FAIL))
  return study.get_trials()


def test_pareto_membership_on_hand_made_trials(trials):
  records = outputs.trial_records(trials, OBJECTIVES, Constraints())
  assert [r["number"] for r in records] == [0, 1, 2, 3, 4, 5, 6]  # no surplus
  assert outputs.pareto_numbers(records, OBJECTIVES, DIRECTIONS) == [
      0, 1, 3, 5]
  # The same answer as the shared Pareto helper on the raw points.
  mask = pareto_mask(list(POINTS.values()), DIRECTIONS)
  assert [n for n, keep in zip(POINTS, mask) if keep] == [0, 1, 3, 5]
  failed = records[6]
  assert failed["state"] == "FAIL" and failed["error"] == "ModelError: boom"
  assert failed["values"] == {} and not failed["feasible"]


def test_best_without_constraints_is_the_most_accurate(trials):
  records = outputs.trial_records(trials, OBJECTIVES, Constraints())
  pareto = outputs.pareto_numbers(records, OBJECTIVES, DIRECTIONS)
  assert outputs.select_best(records, pareto, OBJECTIVES)["number"] == 0


def test_constraints_exclude_violating_configurations(trials):
  # At most 1.1 points below 0.97 and at most 15 kB: trials 0 (20 kB),
  # 3 and 2 (too inaccurate) are out; 5 is the most accurate left.
  constraints = Constraints(max_accuracy_drop=0.011, max_size_bytes=15000)
  records = outputs.trial_records(trials, OBJECTIVES, constraints)
  feasible = [r["number"] for r in records if r["feasible"]]
  assert feasible == [1, 4, 5]
  assert records[0]["violations"] == {"max_accuracy_drop": pytest.approx(
      -0.011), "max_size_bytes": 5000.0}
  pareto = outputs.pareto_numbers(records, OBJECTIVES, DIRECTIONS)
  assert pareto == [1, 5]
  assert outputs.select_best(records, pareto, OBJECTIVES)["number"] == 5
  # Nothing feasible: no best.
  none = Constraints(max_size_bytes=10)
  records = outputs.trial_records(trials, OBJECTIVES, none)
  assert outputs.select_best(records, outputs.pareto_numbers(
      records, OBJECTIVES, DIRECTIONS), OBJECTIVES) is None


def test_ties_go_to_the_smaller_size():
  records = [{"number": n, "mean": {"accuracy": 0.9, "gzip_bytes": s}}
             for n, s in ((0, 5000), (1, 4000), (2, 4000))]
  assert outputs.select_best(records, [0, 1, 2], OBJECTIVES)["number"] == 1


def test_reference_point_uses_the_baseline():
  records = [{"values": {"accuracy": 0.9, "gzip_bytes": 5000.0}}]
  assert outputs.reference_point(records, OBJECTIVES, {
      "gzip_bytes": 30000}) == [0.0, 30000.0]
  # Unknown (or better than every trial): the worst seen plus 10%.
  assert outputs.reference_point(records, OBJECTIVES, {}) == [
      0.0, pytest.approx(5500.0)]


def test_flagfile_parses_back_into_the_same_train_config(tmp_path):
  config = tf_compress.TrainConfig(
      output_dir=str(tmp_path / "run"), model="mlp", width=0.5, epochs=3,
      prune_sparsity=0.8123456789012345, prune_end_epoch=2.5, qat=True,
      cluster_count=8, export=("int8",), combine=True, deterministic=True,
      learning_rate=0.003, robust_eval_epsilons=(0.1,), image_size=None)
  path = tmp_path / "best.flags"
  path.write_text(outputs.flagfile_text(config, comment="trial 3\nline 2"))
  text = path.read_text()
  assert text.startswith("# trial 3\n# line 2\n")
  assert "--combine\n" in text and "--noint8_io\n" in text
  with flagsaver.flagsaver():
    parse_flags_or_exit(["train", f"--flagfile={path}"])
    parsed = train_cli.config_from_flags()
  assert parsed == config
  assert parsed.prune.sparsity == 0.8123456789012345  # exact float


def test_write_outputs(tmp_path, trials):
  constraints = Constraints(max_accuracy_drop=0.011, max_size_bytes=15000)
  records = outputs.trial_records(trials, OBJECTIVES, constraints)
  best_config = tf_compress.TrainConfig(prune_sparsity=0.55, combine=True)
  final = [{"number": 5, "params": {"prune_sparsity": 0.55},
            "test": {"top1": 0.95, "balanced_accuracy": 0.95,
                     "gzip_bytes": 12100, "p50_ms": None}}]
  summary = outputs.write_outputs(
      str(tmp_path), records, OBJECTIVES, DIRECTIONS, constraints,
      {"gzip_bytes": 30000}, best_config, final)
  saved = json.loads((tmp_path / "tuning.json").read_text())
  assert saved == json.loads(json.dumps(summary))
  assert saved["objectives"] == list(OBJECTIVES)
  assert saved["directions"] == list(DIRECTIONS)
  assert saved["constraints"] == {"max_accuracy_drop": 0.011,
                                  "max_size_bytes": 15000,
                                  "max_latency_ms": None}
  assert saved["num_trials"] == 7
  assert saved["pareto"] == [1, 5]
  assert saved["best"]["number"] == 5 and saved["best"]["flagfile"] == (
      "best.flags")
  assert saved["final"] == final
  assert saved["plots"] == {"pareto": "pareto.png"}
  # Hypervolume of the front {1, 5} against (0 accuracy, 30 kB), by hand:
  # 0.96 * (30000 - 9000) + (0.965 - 0.96) * (30000 - 12000).
  assert saved["hypervolume"] == pytest.approx(0.96 * 21000 + 0.005 * 18000)
  trial_keys = {"number", "state", "params", "values", "std", "feasible"}
  assert all(trial_keys <= set(t) for t in saved["trials"])
  pareto = json.loads((tmp_path / "pareto.json").read_text())
  assert [t["number"] for t in pareto["trials"]] == [1, 5]
  assert (tmp_path / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert "--prune_sparsity=0.55" in (tmp_path / "best.flags").read_text()
  rows = list(csv.DictReader((tmp_path / "trials.csv").open()))
  assert [int(r["number"]) for r in rows] == list(range(7))
  assert json.loads(rows[0]["values"]) == {"accuracy": 0.97,
                                           "gzip_bytes": 20000.0}
  assert rows[6]["error"] == "ModelError: boom"
  full = json.loads((tmp_path / "trials.json").read_text())
  assert full[1]["fold_scores"][0]["export"] == "int8"
  assert not list(tmp_path.glob(".partial-*"))  # atomic writes left nothing
  assert dataclasses.replace(best_config) == best_config
