"""Multi-worker training: TF_CONFIG, the launcher, chief-only files, resume.

The two-worker runs start together in one module fixture, and their
single-process references run in this process meanwhile (no extra
TensorFlow start-up). Run as a script, this module is the worker program
of the kill-and-resume test (`_prune_job`).
"""

import io
import json
import math
import os
import re
import signal
import sys
import tempfile
import time
from concurrent import futures

import numpy as np
import pytest
from absl import flags

import tf_compress
from tf_compress import distribute
from tf_compress import keras3_backup
from tf_compress import pruning
from tf_compress._keras import keras_module
from tf_compress._keras import tf
from tf_compress.cli import common
from tf_compress.cli import launch
from tf_compress.cli import train as train_cli
from tf_compress.pipeline.training import backup_callbacks
from tf_compress.pipeline.training import compile_model

HERE = os.path.abspath(__file__)
PYTHON = sys.executable
# Tiny runs; the same global batch and seed for both strategies.
TRAIN_FLAGS = [
    "--keras=2", "--model=mlp", "--width=0.25", "--epochs=2",
    "--finetune_epochs=1", "--batch_size=64", "--learning_rate=0.01",
    "--prune_sparsity=0.5", "--prune_frequency=2", "--validation_fraction=0",
    "--export=", "--benchmark_runs=0", "--bootstrap_resamples=100",
    "--verbose=0", "--deterministic"]
# The variants each engine trains under 2 workers (tfmot's QAT does not
# support distribution upstream).
ENGINES = ("2", "3")
# Kill and resume on Keras 3 only: tf_keras' BackupAndRestore is its own
# multi-worker callback; ours (keras3_backup) is the one to prove here.
RESUME_ENGINES = ("3",)
ENGINE_FLAGS = {"2": [], "3": ["--keras=3", "--qat", "--cluster_count=8",
                               "--distill"]}
JOB_EPOCHS = 3
KILL_AT = (1, 3)  # (epoch, batch) at which worker 1 SIGKILLs itself


def _prune_job(out_path, backup_dir, strategy_name, kill_at,
               keras_version="2"):
  """Prunes a tiny MLP on digits under `BackupAndRestore`.

  Every epoch sees the same batch order, so that an epoch restarted after
  a crash sees the batches an uninterrupted run saw. The chief saves each
  pruned kernel's mask, the overall sparsity and the test accuracy to
  `out_path` (.npz). Each epoch's start is printed (`epoch N`).

  Args:
    out_path: the chief's result file.
    backup_dir: the `BackupAndRestore` directory.
    strategy_name: `multi_worker` (under the launcher) or `mirrored`.
    kill_at: `"epoch,batch"` at which worker 1 sends itself SIGKILL, or "".
    keras_version: "2" (tf_keras, tfmot and its callback) or "3" (Keras 3,
      the native engine and `keras3_backup.BackupAndRestore`).
  """
  # First: MultiWorkerMirroredStrategy must exist before any op runs.
  strategy = distribute.make_strategy(strategy_name, 2)
  version = int(keras_version)
  keras = keras_module(version)
  # The shuffle's order depends on the global seed too: fix it, since the
  # mirrored reference runs in the test process, after other tests.
  tf.random.set_seed(0)
  splits = tf_compress.load_dataset("digits", seed=0)
  batch = 64
  train = tf.data.Dataset.from_tensor_slices(
      (splits.x_train, splits.y_train)).shuffle(
          splits.num_train, seed=0, reshuffle_each_iteration=False).batch(
              batch)
  steps = math.ceil(splits.num_train / batch)
  config = tf_compress.RunConfig.from_flat(learning_rate=0.01)
  with strategy.scope():
    base = tf_compress.build_model("mlp", splits.input_shape,
                                   splits.num_classes, width=0.25, seed=0,
                                   keras_version=version)
    model = pruning.prune_model(base, pruning.PruningConfig(
        target_sparsity=0.8, schedule="polynomial", begin_epoch=0,
        end_epoch=JOB_EPOCHS, frequency=2), steps_per_epoch=steps)
    compile_model(model, config)

  class KillAt(keras.callbacks.Callback):
    """Worker 1 sends itself SIGKILL at one batch (a crash mid-epoch)."""

    def __init__(self):
      super().__init__()
      self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
      self.epoch = epoch
      print(f"epoch {epoch}", flush=True)

    def on_train_batch_begin(self, batch, logs=None):
      task = distribute.cluster_task()
      if kill_at and task and task[1] == 1 and (
          f"{self.epoch},{batch}" == kill_at):
        os.kill(os.getpid(), signal.SIGKILL)

  backup = (keras3_backup.BackupAndRestore(backup_dir) if version == 3
            else keras.callbacks.BackupAndRestore(backup_dir))
  model.fit(train, epochs=JOB_EPOCHS, verbose=0, shuffle=False,
            callbacks=[pruning.PruningCallback(), backup, KillAt()])
  if distribute.is_chief():
    stripped = pruning.strip_pruning(model)
    masks = {layer.name: np.asarray(layer.kernel) != 0
             for layer in stripped.layers if hasattr(layer, "kernel")}
    scores = stripped.predict(splits.x_test, verbose=0)
    accuracy = np.mean(np.argmax(scores, axis=-1) == splits.y_test)
    np.savez(out_path, sparsity=pruning.overall_sparsity(model),
             accuracy=accuracy, **masks)


def _job_command(out_path, backup_dir, strategy_name, kill_at,
                 keras_version):
  return [PYTHON, HERE, "job", str(out_path), str(backup_dir), strategy_name,
          kill_at, keras_version]


def _env(**extra):
  env = dict(os.environ)
  env.pop(distribute.TF_CONFIG, None)
  env.update({k: str(v) for k, v in extra.items()})
  return env


def _launch(command):
  """`launch.run` of `command` on 2 workers: (exit code, output)."""
  stream = io.StringIO()
  # TensorFlow catches SIGTERM (its preemption notifier): SIGKILL soon.
  code = launch.run(command, num_workers=2, stream=stream, env=_env(),
                    grace_seconds=1)
  return code, stream.getvalue()


def _kill_then_resume(job):
  killed = _launch(job)
  left = os.path.exists(job[3])
  return killed, left, _launch(job[:-2] + ["", job[-1]])


def _train_in_process(output_dir, *extra):
  """The train command's `run` on TRAIN_FLAGS, in this process."""
  fv = train_cli.define_flags(flags.FlagValues())
  fv(["train"] + TRAIN_FLAGS + list(extra) + [f"--output_dir={output_dir}"])
  return tf_compress.pipeline.run(train_cli.config_from_flags(fv))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, logical_cpus):
  """Every heavy run, started together; `(exit code, output)` by name.

  For each engine E (2: tfmot, 3: Keras 3), on 2 workers (processes
  started by the launcher): `train{E}`, the train command with TRAIN_FLAGS
  and ENGINE_FLAGS[E]; for E in RESUME_ENGINES, `killed{E}` then
  `resumed{E}`, `_prune_job` with worker 1 killed mid-epoch, then launched
  again on the same backup.
  Meanwhile, in this process, the references under MirroredStrategy over
  2 logical CPUs: the same train runs (`mirrored_train{E}`) and the same
  jobs, not interrupted (`mirrored{E}.npz`).
  """
  del logical_cpus  # split by conftest before any op ran
  root = tmp_path_factory.mktemp("multi_worker")
  results = {"root": root}
  pending = {}
  with futures.ThreadPoolExecutor(2) as pool:
    for engine in ENGINES:
      train = launch.worker_command(
          launch.TRAIN_MODULE, TRAIN_FLAGS + ENGINE_FLAGS[engine] + [
              f"--output_dir={root / f'chief{engine}'}"])
      pending[f"train{engine}"] = pool.submit(_launch, train)
    for engine in RESUME_ENGINES:
      job = _job_command(root / f"resumed{engine}.npz",
                         root / f"backup{engine}", "multi_worker",
                         ",".join(map(str, KILL_AT)), engine)
      pending[f"interrupted{engine}"] = pool.submit(_kill_then_resume, job)
    for engine in RESUME_ENGINES:
      _prune_job(root / f"mirrored{engine}.npz",
                 root / f"backup_mirrored{engine}", "mirrored", "", engine)
    for engine in ENGINES:
      results[f"mirrored_train{engine}"] = _train_in_process(
          root / f"mirrored{engine}", "--strategy=mirrored",
          "--num_cpu_devices=2", *ENGINE_FLAGS[engine])
    for engine in ENGINES:
      results[f"train{engine}"] = pending[f"train{engine}"].result()
    for engine in RESUME_ENGINES:
      (results[f"killed{engine}"], results[f"result_after_kill{engine}"],
       results[f"resumed{engine}"]) = pending[
           f"interrupted{engine}"].result()
  return results


def _ok(runs, name):
  code, output = runs[name]
  assert code == 0, f"{name} exited {code}:\n{output[-3000:]}"
  return output


def _masks(result):
  return {k: result[k] for k in result.files
          if k not in ("sparsity", "accuracy")}


def _zero_masks(path):
  """`{layer: kernel != 0}` of a saved, stripped model."""
  model = tf_compress.load_model(str(path))
  return {layer.name: np.asarray(layer.kernel) != 0
          for layer in model.layers if hasattr(layer, "kernel")}


def _assert_same_masks(masks, expected, density):
  assert sorted(masks) == sorted(expected) == ["fc1", "fc2", "logits"]
  for layer, mask in expected.items():
    assert mask.mean() == pytest.approx(density, abs=0.01), layer
    np.testing.assert_array_equal(masks[layer], mask, err_msg=layer)


VARIANTS = {"2": ["baseline", "pruned"],
            "3": ["baseline", "pruned", "qat", "clustered", "distilled",
                  "student_scratch"]}


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_two_workers_match_mirrored_on_two_cpus(runs, engine):
  output = _ok(runs, f"train{engine}")
  chief = runs["root"] / f"chief{engine}"
  mirrored = runs["root"] / f"mirrored{engine}"
  with open(chief / "report.json") as f:
    ours = json.load(f)
  theirs = runs[f"mirrored_train{engine}"]
  assert ours["config"]["strategy"] == "multi_worker"
  assert theirs["config"]["strategy"] == "mirrored"
  assert ours["engine"] == theirs["engine"] == {"2": "tfmot",
                                                "3": "keras3"}[engine]
  assert [v["name"] for v in ours["variants"]] == VARIANTS[engine]
  assert [v["name"] for v in theirs["variants"]] == VARIANTS[engine]
  for a, b in zip(ours["variants"], theirs["variants"]):
    assert abs(a["top1"] - b["top1"]) <= 0.01, (a["name"], a["top1"],
                                                 b["top1"])
    assert a["top1"] > 0.5, a["name"]  # every variant learned
  sparsity = ours["variants"][1]["sparsity"]["overall"]
  assert sparsity == pytest.approx(0.5, abs=0.01)
  assert sparsity == theirs["variants"][1]["sparsity"]["overall"]
  _assert_same_masks(_zero_masks(chief / "pruned.keras"),
                     _zero_masks(mirrored / "pruned.keras"), 0.5)
  assert "[worker 1] " in output


@pytest.mark.slow
def test_only_the_chief_writes(runs):
  output = _ok(runs, "train3")
  chief = runs["root"] / "chief3"
  assert (chief / "report.json").is_file()
  assert f"[worker 0] wrote {chief}/report.json" in output
  # Worker 1 ran the whole pipeline in a temporary directory, now removed.
  worker_dir = re.search(r"\[worker 1\] wrote (\S+)/report.json",
                         output).group(1)
  assert os.path.basename(worker_dir).startswith("tf_compress_worker1_")
  assert os.path.dirname(worker_dir) == tempfile.gettempdir()
  assert not os.path.exists(worker_dir)


@pytest.mark.slow
@pytest.mark.parametrize("engine", RESUME_ENGINES)
def test_killed_worker_fails_the_launch_and_resume_matches(runs, engine):
  code, output = runs[f"killed{engine}"]
  assert code == launch.WORKER_FAILED_EXIT_CODE, output[-3000:]
  assert "[worker 1] epoch 1" in output
  assert "error: worker 1 was killed by SIGKILL; stopped the other workers" \
      in output
  assert not runs[f"result_after_kill{engine}"]
  # The restarted job resumed at the interrupted epoch, from the backup.
  output = _ok(runs, f"resumed{engine}")
  assert "[worker 0] epoch 0" not in output
  assert "[worker 0] epoch 1" in output
  resumed = np.load(runs["root"] / f"resumed{engine}.npz")
  # Not interrupted: the same job under MirroredStrategy, which 2 workers
  # match to the bit (test_two_workers_match_mirrored_on_two_cpus).
  uninterrupted = np.load(runs["root"] / f"mirrored{engine}.npz")
  assert float(resumed["sparsity"]) == pytest.approx(0.8, abs=0.01)
  assert float(resumed["sparsity"]) == float(uninterrupted["sparsity"])
  _assert_same_masks(_masks(resumed), _masks(uninterrupted), 0.2)
  assert float(resumed["accuracy"]) > 0.5
  assert float(resumed["accuracy"]) == float(uninterrupted["accuracy"])


def test_a_failing_worker_stops_the_others_and_is_named():
  # Worker 1 fails at once; worker 0 would sleep for a minute.
  script = ("import json, os, sys, time\n"
            "i = json.loads(os.environ['TF_CONFIG'])['task']['index']\n"
            "print('up', i)\n"
            "sys.exit(3) if i == 1 else time.sleep(60)\n")
  stream = io.StringIO()
  started = time.monotonic()
  code = launch.run([PYTHON, "-c", script], num_workers=2, stream=stream,
                    grace_seconds=5)
  assert code == 1
  assert time.monotonic() - started < 30
  text = stream.getvalue()
  assert "[worker 1] up 1" in text
  assert "error: worker 1 exited with code 3; stopped the other workers" in (
      text)


def test_all_workers_succeed():
  script = ("import json, os\n"
            "c = json.loads(os.environ['TF_CONFIG'])\n"
            "print(c['task']['index'], len(c['cluster']['worker']))\n")
  stream = io.StringIO()
  assert launch.run([PYTHON, "-c", script], num_workers=3,
                    stream=stream) == 0
  lines = sorted(stream.getvalue().splitlines())
  assert lines == ["[worker 0] 0 3", "[worker 1] 1 3", "[worker 2] 2 3"]


@pytest.mark.parametrize("argv,message", [
    (["--num_workers=0", "--", "--epochs=1"], "--num_workers=0"),
    (["--grace_seconds=-1", "--", "--epochs=1"], "--grace_seconds=-1"),
    (["--workers=2", "--", "--epochs=1"], "workers"),
], ids=["zero_workers", "negative_grace", "unknown_flag"])
def test_bad_launcher_flags_exit_2(argv, message, capsys):
  fv = launch.define_flags(flags.FlagValues())
  with pytest.raises(SystemExit) as exit_info:
    common.parse_flags_or_exit(["launch"] + argv, fv)
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and message in err and err.count("\n") == 1


@pytest.mark.parametrize("args,message", [
    ([], "give the workers' flags after --"),
    (["--strategy=mirrored"], "trains with --strategy=multi_worker"),
], ids=["no_worker_flags", "other_strategy"])
def test_launcher_bad_input_exits_2(args, message, capsys):
  fv = launch.define_flags(flags.FlagValues())
  fv(["launch"])
  assert launch.main(["launch"] + args, fv) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and message in err


def test_worker_command_adds_the_strategy():
  command = launch.worker_command("tf_compress.train", ["--epochs=1"])
  assert command == [PYTHON, "-m", "tf_compress.train", "--epochs=1",
                     "--strategy=multi_worker"]
  assert launch.worker_command("my.module", ["-x"]) == [
      PYTHON, "-m", "my.module", "-x"]


def test_cluster_from_tf_config():
  configs = distribute.local_cluster(2, ports=[1234, 1235])
  tasks = [distribute.cluster_task({"TF_CONFIG": c}) for c in configs]
  assert tasks[1] == ("worker", 1, {"worker": ["localhost:1234",
                                               "localhost:1235"]})
  assert [distribute.is_chief({"TF_CONFIG": c}) for c in configs] == [
      True, False]
  assert distribute.cluster_task({}) is None and distribute.is_chief({})
  with_chief = json.dumps({"cluster": {"chief": ["a:1"], "worker": ["b:2"]},
                           "task": {"type": "worker", "index": 0}})
  assert not distribute.is_chief({"TF_CONFIG": with_chief})
  ports = distribute.free_ports(3)
  assert len(set(ports)) == 3 and all(p > 0 for p in ports)


@pytest.mark.parametrize("text,message", [
    ("{not json", "TF_CONFIG must be JSON"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps"}}',
     "TF_CONFIG must be JSON"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", '
     '"index": 1}}', "task index 1 is outside"),
], ids=["not_json", "task_not_in_cluster", "index_out_of_range"])
def test_bad_tf_config_names_it(text, message):
  with pytest.raises(tf_compress.UserInputError, match=message):
    distribute.cluster_task({"TF_CONFIG": text})


def test_local_cluster_rejects_bad_sizes():
  with pytest.raises(tf_compress.UserInputError, match=">= 1, got 0"):
    distribute.local_cluster(0)
  with pytest.raises(tf_compress.UserInputError, match="2 distinct ports"):
    distribute.local_cluster(2, ports=[5, 5])


def test_non_chief_writes_to_a_removed_temporary_dir(tmp_path):
  worker = {"TF_CONFIG": distribute.local_cluster(2, ports=[1, 2])[1]}
  target = tmp_path / "out"
  with pytest.raises(RuntimeError, match="boom"):
    with distribute.chief_output_dir(str(target), worker) as path:
      assert path != str(target) and os.path.isdir(path)
      # A nested run inside it (one seed of run_seeds) stays there.
      nested = os.path.join(path, "seed_0")
      with distribute.chief_output_dir(nested, worker) as inner:
        assert inner == nested
      raise RuntimeError("boom")
  assert not os.path.exists(path) and not target.exists()
  chief = {"TF_CONFIG": distribute.local_cluster(2, ports=[1, 2])[0]}
  with distribute.chief_output_dir(str(target), chief) as path:
    assert path == str(target)


def test_multi_worker_needs_tf_config(monkeypatch, tmp_path):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  config = tf_compress.RunConfig.from_flat(
      strategy="multi_worker", keras=2, output_dir=str(tmp_path / "run"))
  with pytest.raises(tf_compress.UserInputError,
                     match="TF_CONFIG environment variable, which is not set"):
    tf_compress.pipeline.run(config)
  assert not (tmp_path / "run").exists()


def test_multi_worker_after_tensorflow_started(monkeypatch):
  # This process ran ops long ago: the strategy cannot be made any more.
  monkeypatch.setenv("TF_CONFIG", distribute.local_cluster(2)[1])
  with pytest.raises(tf_compress.UserInputError,
                     match="before any TensorFlow op runs"):
    distribute.make_strategy("multi_worker")


def test_backup_callbacks_follow_the_model_and_the_flag(digits, tmp_path):
  config = tf_compress.RunConfig.from_flat(backup_dir=str(tmp_path))
  for version in (3, 2):
    model = tf_compress.build_model("mlp", digits.input_shape,
                                    digits.num_classes, width=0.25,
                                    keras_version=version)
    (callback,) = backup_callbacks(config, "pruned", model)
    assert type(callback) is {  # pylint: disable=unidiomatic-typecheck
        3: keras3_backup.BackupAndRestore,
        2: keras_module(2).callbacks.BackupAndRestore}[version]
    assert callback.backup_dir == str(tmp_path / "pruned")
    assert backup_callbacks(tf_compress.RunConfig(), "pruned", model) == []


def test_backup_dir_is_a_validated_field():
  config = tf_compress.RunConfig.from_flat(backup_dir="/tmp/b")
  assert config.fit.backup_dir == "/tmp/b"
  assert config.to_dict()["backup_dir"] == "/tmp/b"
  with pytest.raises(tf_compress.UserInputError, match="backup_dir"):
    tf_compress.RunConfig.from_flat(backup_dir="")


if __name__ == "__main__":
  if sys.argv[1:2] == ["job"]:
    _prune_job(*sys.argv[2:7])
