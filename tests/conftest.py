"""Shared pytest set-up.

The CPU is split into 2 logical devices before any TensorFlow op runs, so that
tests can train under `tf.distribute.MirroredStrategy` on this CPU-only
machine.
"""

import pathlib

from absl import app
from absl.testing import flagsaver
import pytest

import tf_compress
from tf_compress._keras import tf
from tf_compress._tfmot import import_tfmot
from tf_compress.cli import train
from tf_compress.cli.common import parse_flags_or_exit

tf_compress.configure_logical_cpus(2)
# Tests of the tfmot engine import tfmot directly, which would set
# TF_USE_LEGACY_KERAS in this process; importing it first through
# tf_compress's careful path keeps the environment as it was. (Whether
# tf_compress imports tfmot at all is tested in fresh subprocesses.)
import_tfmot()

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root():
  """The repository root (for running scripts and examples)."""
  return REPO_ROOT


@pytest.fixture(scope="session")
def digits():
  """The digits dataset with the default splits (seed 0)."""
  return tf_compress.load_dataset("digits", seed=0)


@pytest.fixture(scope="session")
def logical_cpus():
  """Names of the logical CPU devices (at least 2)."""
  devices = [d.name for d in tf.config.list_logical_devices("CPU")]
  assert len(devices) >= 2, devices
  return devices


@pytest.fixture
def train_cli(capsys):
  """`run(argv)`: the train command in this process -> (exit code, stderr
  lines). The flags are restored afterwards."""
  train.define_flags()  # idempotent: the command's flags, on absl's FLAGS

  def run(argv):
    with flagsaver.flagsaver():
      with pytest.raises(SystemExit) as info:
        app.run(train.main, argv=["train"] + list(argv),
                flags_parser=parse_flags_or_exit)
    return info.value.code, capsys.readouterr().err.strip().splitlines()

  return run
