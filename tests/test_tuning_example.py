"""examples/tune_compression.py runs as a user would run it (tiny settings).

The final retraining is skipped here (`--skip_final`); test_tune_cli.py
covers it.
"""

import json
import re
import subprocess
import sys


def test_tune_example_runs(repo_root, tmp_path):
  out = tmp_path / "tune"
  result = subprocess.run(
      [sys.executable, str(repo_root / "examples" / "tune_compression.py"),
       "--trials=1", "--cv_folds=0", "--model=mlp", "--width=0.5",
       "--epochs=2", "--finetune_epochs=1", "--max_accuracy_drop=1.0",
       "--skip_final", f"--output_dir={out}"],
      capture_output=True, text=True, cwd=repo_root, timeout=600,
      check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert re.search(r"^trials: 1, hypervolume of the front: \d", result.stdout,
                   re.M)
  summary = json.loads((out / "tuning.json").read_text())
  assert summary["num_trials"] == 1 and summary["pareto"] == [0]
  for trial in summary["trials"]:
    assert set(trial["std"]) == {"accuracy", "gzip_bytes"}
  best = summary["best"]["number"]
  assert f"best: trial {best}; reproduce with" in result.stdout
  assert "--combine" in (out / "best.flags").read_text()
  assert summary["final"] == []
  assert (out / "pareto.png").is_file()
