"""`python -m tf_compress.tune`: bad input, two workers, best.flags.

The worker test starts two worker processes on one study, kills one with
SIGKILL while it runs a trial, and re-runs the command as a new worker; the
two living workers finish the study (the killed trial is retried once) and
the new one retrains the best configuration. Then
`python -m tf_compress.train` runs with the written best.flags. Everything
is deterministic and tiny (an MLP, one fine-tuning epoch, float32 export).
"""

import json
import os
import signal
import subprocess
import sys
import time

from absl import flags
from absl.testing import flagsaver
import optuna
import pytest

from tf_compress.cli import tune as tune_cli
from tf_compress.cli.common import parse_flags_or_exit

tune_cli.define_flags()  # the command's flags, on absl's FLAGS

COMMON = ["--dataset=digits", "--model=mlp", "--width=0.5", "--epochs=2",
          "--learning_rate=0.01", "--batch_size=64", "--finetune_epochs=1",
          "--export=float32", "--benchmark_runs=0", "--prune_frequency=2",
          "--prune_sparsity_range=0.3,0.9", "--seed=4", "--verbose=0",
          "--deterministic"]
TRIALS = 4


def _main(capsys, args):
  with flagsaver.flagsaver():
    parse_flags_or_exit(["tune"] + args)
    code = tune_cli.main(["tune"])
  return code, capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("args,message", [
    (["--export_modes=float32"], "error: the search space is empty: set at "
         "least one of --prune_sparsity_range"),
    (["--prune_sparsity_range=0.5,0.9", "--objectives=accuracy,size"],
     "error: --objectives: unknown objective 'size'"),
    (["--prune_sparsity_range=0.5,0.9", "--cv_folds=1"],
     "error: --cv_folds must be 0 (hold-out validation split) or >= 2, got 1"),
    (["--prune_sparsity_range=0.5,0.9", "--cv_folds=-2"],
     "error: --cv_folds must be 0"),
    (["--prune_sparsity_range=0.5,0.9", "--cv_folds=500"],
     "error: --cv_folds=500 is larger than the smallest class count of the "
     "training split"),
    (["--prune_sparsity_range=0.5,0.9", "--storage=postgresql://nohost:1/x"],
     "error: --storage 'postgresql://nohost:1/x' cannot be opened"),
    (["--prune_sparsity_range=0.5,0.9",
      "--storage=sqlite:////no/such/dir/study.db"],
     "error: --storage 'sqlite:////no/such/dir/study.db': directory "
     "'/no/such/dir' does not exist"),
    (["--prune_sparsity_range=0.5,0.9", "--objectives=p50_ms",
      "--benchmark_runs=0"], "error: --benchmark_runs must be >= 1"),
], ids=["empty_space", "unknown_objective", "one_fold", "negative_folds",
        "too_many_folds", "unreachable_postgres", "missing_sqlite_dir",
        "latency_without_runs"])
def test_bad_input_exits_2_naming_the_flag(capsys, tmp_path, args, message):
  code, line = _main(capsys, [f"--output_dir={tmp_path / 'out'}"] + args)
  assert code == 2
  assert line.startswith(message), line
  assert not (tmp_path / "out" / "baselines").exists()  # failed up front


def test_bad_input_process_exits_with_code_2(workers):
  code, stdout, stderr = workers["bad"]
  assert code == 2 and not stdout
  assert stderr.strip().splitlines()[-1] == (
      "error: --objectives: unknown objective 'size'; choose from accuracy, "
      "balanced_accuracy, gzip_bytes, p50_ms, robust_accuracy")


@pytest.mark.parametrize("args,message", [
    (["--prune_sparsity_range=a,b"], "--prune_sparsity_range must be one or "
                                     "two numbers"),
    (["--cluster_count_range=2.5,8"], "--cluster_count_range must be one or "
                                      "two integers"),
])
def test_malformed_range_flag_exits_2(capsys, args, message):
  with flagsaver.flagsaver():
    with pytest.raises(SystemExit) as raised:
      parse_flags_or_exit(["tune"] + args)
  assert raised.value.code == 2
  assert message in capsys.readouterr().err


def _env():
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def _tune_command(out, *extra):
  return [sys.executable, "-m", "tf_compress.tune", *COMMON,
          f"--trials={TRIALS}", f"--output_dir={out}", "--heartbeat_interval=1",
          "--grace_period=2", *extra]


def _running_trial_of(study_url, pid, deadline):
  """Waits for a RUNNING trial of worker `pid` with its parameters drawn."""
  while time.monotonic() < deadline:
    try:
      study = optuna.load_study(study_name="tf_compress_tune",
                                storage=study_url)
      for trial in study.get_trials(deepcopy=False):
        if (trial.state == optuna.trial.TrialState.RUNNING and trial.params
            and str(trial.user_attrs.get("worker", "")).endswith(f":{pid}")):
          return trial.number
    except Exception:  # pylint: disable=broad-except
      pass  # the study is not created yet
    time.sleep(0.2)
  raise AssertionError(f"worker {pid} never ran a trial")


@pytest.fixture(scope="module")
def workers(tmp_path_factory, repo_root):
  out = tmp_path_factory.mktemp("workers")
  url = f"sqlite:///{out}/study.db"
  logs = {name: open(out / f"{name}.log", "w", encoding="utf-8")
          for name in ("a", "b", "c")}

  def start(name, *extra):
    return subprocess.Popen(_tune_command(out, *extra), cwd=repo_root,
                            env=_env(), stdout=logs[name],
                            stderr=subprocess.STDOUT)
  procs = {name: start(name, "--nofinal_eval") for name in ("a", "b")}
  # A real process exit code for bad input, started alongside.
  bad = subprocess.Popen(
      [sys.executable, "-m", "tf_compress.tune", "--prune_sparsity_range=0.5",
       "--objectives=accuracy,size", f"--output_dir={out / 'bad'}"],
      cwd=repo_root, env=_env(), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)
  try:
    killed = _running_trial_of(url, procs["a"].pid, time.monotonic() + 300)
    procs["a"].send_signal(signal.SIGKILL)
    procs["a"].wait(timeout=30)
    procs["c"] = start("c", "--final_max=1")  # the re-run worker
    for name in ("b", "c"):
      procs[name].wait(timeout=600)
    bad_out = bad.communicate(timeout=600)
  finally:
    for proc in procs.values():
      if proc.poll() is None:
        proc.kill()
    for log in logs.values():
      log.close()
  summary = json.loads((out / "tuning.json").read_text())
  train = subprocess.run(
      [sys.executable, "-m", "tf_compress.train",
       f"--flagfile={out / 'best.flags'}", f"--output_dir={out / 'again'}"],
      cwd=repo_root, env=_env(), capture_output=True, text=True, timeout=600,
      check=False)
  return {"out": out, "procs": procs, "killed": killed, "summary": summary,
          "train": train, "bad": (bad.returncode,) + bad_out,
          "logs": {n: (out / f"{n}.log").read_text() for n in logs}}


def test_killed_worker_loses_no_trial_and_none_is_duplicated(workers):
  assert workers["procs"]["a"].returncode == -signal.SIGKILL
  for name in ("b", "c"):
    assert workers["procs"][name].returncode == 0, (
        workers["logs"][name][-3000:])
  records = json.loads((workers["out"] / "trials.json").read_text())
  numbers = [r["number"] for r in records]
  assert len(numbers) == len(set(numbers))
  done = [r for r in records if r["kind"] == "done"]
  assert len(done) == TRIALS
  assert all(r["state"] == "COMPLETE" and r["error"] is None for r in done)
  killed = workers["killed"]
  [lost] = [r for r in records if r["number"] == killed]
  assert lost["state"] == "FAIL" and lost["kind"] == "superseded"
  # Retried exactly once, with the same parameters, and completed.
  retries = [r for r in records if r["retry_of"] == killed]
  assert len(retries) == 1 and retries[0]["kind"] == "done"
  assert retries[0]["params"] == lost["params"]
  assert len(records) == TRIALS + 1
  # Only the living workers finished trials; the killed one ran one.
  pids = {int(r["worker"].rsplit(":", 1)[1]) for r in done}
  assert workers["procs"]["b"].pid in pids
  assert pids <= {workers["procs"]["b"].pid, workers["procs"]["c"].pid}
  assert lost["worker"].endswith(f":{workers['procs']['a'].pid}")
  summary = workers["summary"]
  assert summary["num_trials"] == TRIALS
  assert set(summary["pareto"]) <= {r["number"] for r in done}


def test_outputs_and_the_retrained_best(workers):
  out, summary = workers["out"], workers["summary"]
  for name in ("trials.csv", "trials.json", "pareto.json", "pareto.png",
               "best.flags", "tuning.json"):
    assert (out / name).is_file(), name
  best = summary["best"]
  assert best["flagfile"] == "best.flags"
  assert best["number"] in summary["pareto"]
  [final] = summary["final"]  # --final_max=1: the best one
  assert final["number"] == best["number"]
  assert 0.5 < final["test"]["top1"] <= 1.0
  assert final["test"]["gzip_bytes"] > 0
  assert len(list(out.glob("final/*/report.json"))) == 1
  # The study's report.html: the tuning section with its Pareto plot, next
  # to the retrained best configuration's variants.
  html = (out / "report.html").read_text()
  assert "combined" in html and "best.flags" in html
  assert html.count("data:image/png;base64,") >= 2
  assert (out / "report.md").is_file()
  assert f"{TRIALS} trials; Pareto front" in workers["logs"]["c"]


def test_best_flags_reproduce_the_recorded_test_metrics(workers):
  assert workers["train"].returncode == 0, workers["train"].stderr[-3000:]
  report = json.loads((workers["out"] / "again" / "report.json").read_text())
  combined = next(v for v in report["variants"] if v["name"] == "combined")
  export = combined["tflite"][0]
  recorded = workers["summary"]["final"][0]["test"]
  assert export["tflite_top1"] == pytest.approx(recorded["top1"], abs=1e-6)
  assert export["gzip_bytes"] == recorded["gzip_bytes"]
  assert combined["top1"] == pytest.approx(recorded["keras_top1"], abs=1e-6)
  flags_text = (workers["out"] / "best.flags").read_text()
  assert "--combine\n" in flags_text and "--seed=4\n" in flags_text
  params = workers["summary"]["best"]["params"]
  assert f"--prune_sparsity={params['prune_sparsity']!r}\n" in flags_text


def test_no_flags_searches_the_default_space():
  fv = tune_cli.define_flags(flags.FlagValues())
  parse_flags_or_exit(["tune"], fv)
  config = tune_cli.config_from_flags(fv)
  assert config.space == tune_cli.space_lib.DEFAULT_SPACE
  assert config.space.dimensions() == ["prune_sparsity", "export"]
  assert config.output_dir == "tf_compress_tune"
  assert tune_cli.space_lib.describe(config.space) == (
      "--prune_sparsity_range=0.5,0.95 --export_modes=float32,int8")
