"""The examples run as a user would run them."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("script,args,expect", [
    ("train_baseline.py", ["--epochs=2"], "test top1="),
    ("analyze_dataset.py", [], "imbalance_ratio"),
])
def test_example_runs(repo_root, script, args, expect):
  result = subprocess.run(
      [sys.executable, str(repo_root / "examples" / script)] + args,
      capture_output=True, text=True, cwd=repo_root, timeout=600,
      check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert expect in result.stdout
  if script == "train_baseline.py":
    top1 = float(result.stdout.split("test top1=")[1].split()[0])
    assert top1 > 0.8
