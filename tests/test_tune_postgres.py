"""`python -m tf_compress.tune --storage=postgresql://...` on a real server.

A throwaway cluster (`initdb`, then `pg_ctl` listening on a Unix socket in
a temporary directory only; as root, both run as an unprivileged user, since
initdb refuses root) holds the study. Two workers share it; one is
SIGKILLed while it runs a trial, and the other fails that trial through the
heartbeat and runs its retry. An SQLite run of the same command, started
alongside, must give the same trials. Then the storage errors (no server,
a server that never answers, tables that are not Optuna's) and workers
creating Optuna's tables at the same moment.

Two trials, because that is what makes the comparison exact: the sampler
draws a trial's first values from `seed + number` (random start), so the
numbers of the fresh trials must be 0 and 1 whatever the timing; a third
trial would be numbered after the retry in one study and not in the other,
and drawn by TPE from another history. Without a server (`make
postgresql-tools` installs Debian's) or the driver, these tests skip.
"""

import glob
import importlib.util
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from absl.testing import flagsaver
import optuna
import pytest

from tf_compress.cli import tune as tune_cli
from tf_compress.cli.common import parse_flags_or_exit
from tf_compress.errors import UserInputError
from tf_compress.pipeline.tuning import study as study_lib

tune_cli.define_flags()

TRIALS = 2
STUDY_FLAGS = ["--dataset=digits", "--model=mlp", "--width=0.25",
               "--epochs=1", "--learning_rate=0.01", "--batch_size=64",
               "--finetune_epochs=1",
               "--export=float32", "--benchmark_runs=0",
               "--prune_frequency=2", "--prune_sparsity_range=0.3,0.9",
               "--seed=7", "--verbose=0", "--deterministic",
               f"--trials={TRIALS}", "--nofinal_eval",
               # A loaded machine may delay a live worker's heartbeat by
               # seconds; 2 s of grace then fails its trial too.
               "--heartbeat_interval=1", "--grace_period=5"]
DB_USER = "tfc"  # the cluster's superuser; trust authentication


def _server_bin():
  """The directory holding initdb (Debian: off PATH), or None."""
  found = shutil.which("initdb")
  if found:
    return os.path.dirname(os.path.realpath(found))
  version = lambda p: [int(n) for n in re.findall(r"\d+", p)]
  found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
  return os.path.dirname(found[-1]) if found else None


def _as_unprivileged(directory):
  """The command prefix that runs the server tools, owning `directory`.

  Nothing as a normal user; as root (initdb and postgres refuse it), the
  `postgres` user Debian's package creates, else `nobody`.
  """
  if os.geteuid() != 0:
    return lambda argv: list(argv)
  for name in ("postgres", "nobody"):
    try:
      user = pwd.getpwnam(name)
    except KeyError:
      continue
    os.chown(directory, user.pw_uid, user.pw_gid)
    if shutil.which("runuser"):
      return lambda argv: ["runuser", "-u", name, "--", *argv]
    return lambda argv: ["su", "-s", "/bin/sh", name, "-c", shlex.join(argv)]
  pytest.skip("running as root with no unprivileged user (postgres, nobody) "
              "to run initdb as")


class Cluster:
  """A running throwaway cluster: URLs and psql on its Unix socket."""

  def __init__(self, bin_dir, socket_dir):
    self.bin_dir = bin_dir
    self.socket_dir = socket_dir

  def url(self, database):
    return f"postgresql://{DB_USER}@/{database}?host={self.socket_dir}"

  def sql(self, database, statement, check=True):
    """Runs `statement` with psql; its output (None: it failed, unchecked)."""
    done = subprocess.run(
        [os.path.join(self.bin_dir, "psql"), "-X", "-q", "-t", "-A", "-v",
         "ON_ERROR_STOP=1", "-h", self.socket_dir, "-U", DB_USER, "-d",
         database, "-c", statement],
        check=check, capture_output=True, text=True, timeout=60)
    return done.stdout.strip() if done.returncode == 0 else None

  def create_database(self, name, statement=None):
    """Creates database `name`, runs `statement` in it; returns its URL."""
    self.sql("postgres", f"CREATE DATABASE {name}")
    if statement:
      self.sql(name, statement)
    return self.url(name)


@pytest.fixture(scope="module")
def postgres():
  bin_dir = _server_bin()
  if bin_dir is None:
    pytest.skip("no PostgreSQL server (initdb) on this machine; `make "
                "postgresql-tools` installs Debian's")
  if importlib.util.find_spec("psycopg") is None:
    # SQLAlchemy 2.1's driver for postgresql:// URLs.
    pytest.skip("no PostgreSQL driver: pip install 'psycopg[binary]'")
  # Short: a Unix socket's path has at most 107 bytes.
  root = tempfile.mkdtemp(prefix="tfc-pg-",
                          dir="/tmp" if os.path.isdir("/tmp") else None)
  data, log = os.path.join(root, "data"), os.path.join(root, "server.log")
  as_user = None

  def tool(name, *args):
    return subprocess.run(as_user([os.path.join(bin_dir, name), *args]),
                          cwd=root, capture_output=True, text=True,
                          timeout=120, check=False)
  try:
    as_user = _as_unprivileged(root)
    done = tool("initdb", "-D", data, "-U", DB_USER, "--auth=trust",
                "-E", "UTF8", "--locale=C", "--no-sync")
    assert done.returncode == 0, done.stdout + done.stderr
    done = tool("pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o",
                f"-k {root} -c listen_addresses='' -F", "start")
    if done.returncode != 0:
      with open(log, encoding="utf-8", errors="replace") as f:
        raise AssertionError(done.stdout + done.stderr + f.read())
    yield Cluster(bin_dir, root)
  finally:
    if as_user is not None:
      tool("pg_ctl", "-D", data, "-m", "immediate", "stop")
    shutil.rmtree(root, ignore_errors=True)


def _start(repo_root, out, name, *extra):
  log = open(out / f"{name}.log", "w", encoding="utf-8")
  with log:
    return subprocess.Popen(
        [sys.executable, "-m", "tf_compress.tune", *STUDY_FLAGS,
         f"--output_dir={out / name}", *extra],
        cwd=repo_root, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        stdout=log, stderr=subprocess.STDOUT)


def _check_alive(procs, out, deadline):
  for name, proc in procs.items():
    if proc.poll() is not None:
      raise AssertionError(f"worker {name} exited with {proc.returncode}: "
                           f"{(out / f'{name}.log').read_text()[-3000:]}")
  assert time.monotonic() < deadline, "the workers ran no trial in time"


def _running_trials(storage, procs, out, deadline):
  """{pid: trial number} once workers a and b both run a trial with its
  parameters drawn."""
  pids = {procs["a"].pid, procs["b"].pid}
  running = {}
  while set(running) != pids:
    _check_alive(procs, out, deadline)
    time.sleep(0.2)
    trials = optuna.load_study(study_name="tf_compress_tune",
                               storage=storage).get_trials(
                                   deepcopy=False,
                                   states=[optuna.trial.TrialState.RUNNING])
    running = {_pid(t): t.number for t in trials if t.params}
  return running


def _pid(trial):
  return int(str(trial.user_attrs.get("worker", ":0")).rsplit(":")[-1])


@pytest.fixture(scope="module")
def studies(postgres, tmp_path_factory, repo_root):
  """The PostgreSQL study (workers a, killed, and b) and the SQLite one."""
  out = tmp_path_factory.mktemp("postgres_study")
  url = postgres.create_database("tune")
  started = time.monotonic()
  procs = {name: _start(repo_root, out, name, f"--storage={url}")
           for name in ("a", "b")}
  procs["sqlite"] = _start(repo_root, out, "sqlite")  # output_dir/study.db
  try:
    # Both fresh trials (0 and 1) must be drawn before a dies: then the
    # retry is trial 2 however the rest is timed.
    # Look only once a worker has made the tables and the study, so as not
    # to take part in making them.
    while postgres.sql("tune", "SELECT study_name FROM studies",
                       check=False) != "tf_compress_tune":
      _check_alive(procs, out, started + 600)
      time.sleep(0.5)
    storage = optuna.storages.RDBStorage(url)
    running = _running_trials(storage, procs, out, started + 600)
    procs["a"].send_signal(signal.SIGKILL)
    procs["a"].wait(timeout=30)
    for name in ("b", "sqlite"):
      procs[name].wait(timeout=600)
  finally:
    for proc in procs.values():
      if proc.poll() is None:
        proc.kill()
  for name in ("b", "sqlite"):
    assert procs[name].returncode == 0, (
        (out / f"{name}.log").read_text()[-3000:])

  def records(name):
    return json.loads((out / name / "trials.json").read_text())
  return {"procs": procs, "killed": running[procs["a"].pid],
          "postgres": records("b"), "sqlite": records("sqlite")}


def test_killed_trial_is_failed_by_the_heartbeat_and_retried_once(studies):
  assert studies["procs"]["a"].returncode == -signal.SIGKILL
  records = studies["postgres"]
  by_number = {r["number"]: r for r in records}
  assert sorted(by_number) == list(range(TRIALS + 1))
  killed = by_number[studies["killed"]]
  assert killed["state"] == "FAIL" and killed["kind"] == "superseded"
  assert killed["worker"].endswith(f":{studies['procs']['a'].pid}")
  [retry] = [r for r in records if r["retry_of"] == killed["number"]]
  assert retry["number"] == TRIALS  # after both fresh trials
  assert retry["state"] == "COMPLETE" and retry["kind"] == "done"
  assert retry["params"] == killed["params"]
  assert retry["worker"].endswith(f":{studies['procs']['b'].pid}")
  # Every trial of the study exactly once: each fresh number is done by
  # itself or by its one retry.
  done = [r for r in records if r["kind"] == "done"]
  assert sorted(r["retry_of"] if r["retry_of"] is not None else r["number"]
                for r in done) == list(range(TRIALS))
  assert all(r["state"] == "COMPLETE" and r["error"] is None for r in done)


def test_postgres_study_equals_the_sqlite_study(studies):
  def by_origin(records):
    return {(r["retry_of"] if r["retry_of"] is not None else r["number"]):
            (r["params"], r["values"], r["mean"])
            for r in records if r["kind"] == "done"}
  sqlite = by_origin(studies["sqlite"])
  assert sorted(sqlite) == list(range(TRIALS))
  assert len(studies["sqlite"]) == TRIALS  # one worker, nothing retried
  assert by_origin(studies["postgres"]) == sqlite
  # Different draws per trial number, real measurements.
  assert len({p["prune_sparsity"] for p, _, _ in sqlite.values()}) == TRIALS
  for _, values, _ in sqlite.values():
    assert 0.1 < values["accuracy"] <= 1 and values["gzip_bytes"] > 0


def _tune_main(capsys, tmp_path, storage):
  """Runs the tune command in-process; (exit code, stderr lines, seconds)."""
  started = time.monotonic()
  with flagsaver.flagsaver():
    parse_flags_or_exit(["tune", f"--output_dir={tmp_path / 'out'}",
                         f"--storage={storage}", *STUDY_FLAGS])
    code = tune_cli.main(["tune"])
  lines = capsys.readouterr().err.strip().splitlines()
  return code, lines, time.monotonic() - started


def _free_port():
  with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1]


def test_no_server_on_the_port_is_one_line_and_exit_2(capsys, tmp_path):
  url = f"postgresql://{DB_USER}@127.0.0.1:{_free_port()}/tune"
  code, lines, seconds = _tune_main(capsys, tmp_path, url)
  assert code == 2
  assert len(lines) == 1 and lines[0].startswith(
      f"error: --storage '{url}' cannot be opened: "), lines
  assert seconds < 30, seconds  # most of it loading the data
  assert not (tmp_path / "out" / "baselines").exists()


def test_a_server_that_never_answers_times_out(monkeypatch):
  # TCP accepts (the backlog does), but no PostgreSQL handshake comes back:
  # without a connect timeout libpq would wait for ever.
  monkeypatch.setattr(study_lib, "_CONNECT_TIMEOUT_S", 1)
  with socket.socket() as silent:
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(UserInputError, match="cannot be opened"):
      study_lib.open_storage(f"postgresql://u:secret@127.0.0.1:{port}/x")
    assert time.monotonic() - started < 10


def test_the_password_is_not_shown():
  with pytest.raises(UserInputError) as raised:
    study_lib.open_storage(f"postgresql://u:secret@127.0.0.1:{_free_port()}"
                           "/x")
  assert "secret" not in str(raised.value)
  assert "'postgresql://u:***@127.0.0.1:" in str(raised.value)


@pytest.mark.parametrize("name,statement,reason", [
    ("bogus_alembic", "CREATE TABLE alembic_version (version_num "
     "varchar(32) PRIMARY KEY); INSERT INTO alembic_version VALUES "
     "('bogus')", "RuntimeError: The runtime optuna version"),
    ("foreign_studies", "CREATE TABLE studies (id text, name text)",
     "ProgrammingError: (psycopg"),
    # Passes opening the storage; fails on the first insert.
    ("foreign_directions", "CREATE TABLE study_directions "
     "(study_direction_id serial PRIMARY KEY, study_id int)",
     "ProgrammingError: (psycopg"),
], ids=["bogus_alembic_version", "studies_of_another_shape",
        "directions_of_another_shape"])
def test_tables_that_are_not_optunas_are_one_line_and_exit_2(
    postgres, capsys, tmp_path, name, statement, reason):
  url = postgres.create_database(name, statement)
  code, lines, _ = _tune_main(capsys, tmp_path, url)
  assert code == 2
  assert len(lines) == 1, lines
  assert lines[0].startswith(
      f"error: --storage '{url}' cannot be opened: {reason}"), lines[0]
  assert "[SQL:" not in lines[0]
  assert not (tmp_path / "out" / "baselines").exists()


def test_workers_creating_the_tables_together_all_open_them(postgres):
  url = postgres.create_database("together")
  barrier = threading.Barrier(4)
  results = []

  def open_together():
    barrier.wait()
    try:
      results.append(study_lib.open_storage(url))
    except UserInputError as exc:
      results.append(exc)
  threads = [threading.Thread(target=open_together) for _ in range(4)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join(timeout=120)
  assert [type(r).__name__ for r in results] == ["RDBStorage"] * 4, results
