"""Records the tfmot engine's figures on this CPU for test_pipeline_engines.

`train --keras=2` must reproduce the figures the train command gave at
commit 608ef9d, before Keras 3 became its default. Training is exact for a
seed on one machine, but oneDNN picks its kernels by instruction set, so
QAT and clustering (which round) drift by a test image or two on another
CPU. tests/data/keras2_reference.json therefore keeps one recording per
set of CPU flags (`tf_compress.analysis.cpu_info()["flags"]`).

Run it on a checkout of the recorded commit, with this repository's venv:

  git worktree add /tmp/k2ref 608ef9d
  cd /tmp/k2ref && PYTHONPATH=/tmp/k2ref /path/to/repo/.venv/bin/python \
      /path/to/repo/tools/record_keras2_reference.py \
      /path/to/repo/tests/data/keras2_reference.json

It runs the reference's config and adds (or replaces) the recording for
this CPU's flags.
"""

import json
import os
import subprocess
import sys
import tempfile

import tf_compress
from tf_compress import pipeline


def _cpu():
  # 608ef9d has no cpu_info; read the flags the way it is read today.
  flags = set()
  with open("/proc/cpuinfo", encoding="utf-8") as handle:
    for line in handle:
      key, _, value = line.partition(":")
      if key.strip().lower() in ("flags", "features"):
        flags |= set(value.split())
      elif key.strip().lower() == "model name":
        model = value.strip()
  names = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8",
           "amx_tile", "asimddp", "i8mm")
  return {"model": model, "flags": [
      {"asimddp": "dotprod"}.get(f, f) for f in names if f in flags]}


def main(path):
  reference = json.load(open(path, encoding="utf-8"))
  flat = dict(reference["config"])
  flat["output_dir"] = tempfile.mkdtemp()
  report = pipeline.run(pipeline.RunConfig.from_flat(**flat))
  variants = {v["name"]: {
      "top1": v["top1"], "test_loss": v["test_loss"],
      "tflite_top1": [e["tflite_top1"] for e in v["tflite"]],
      "nonzero_params": v["nonzero_params"]} for v in report["variants"]}
  cpu = _cpu()
  recordings = [r for r in reference["recordings"]
                if r["cpu"]["flags"] != cpu["flags"]]
  commit = subprocess.run(
      ["git", "rev-parse", "--short", "HEAD"], capture_output=True,
      text=True, check=True,
      cwd=os.path.dirname(tf_compress.__file__)).stdout.strip()
  recordings.append({"cpu": cpu, "variants": variants, "recorded_with":
                     f"tools/record_keras2_reference.py at {commit}"})
  reference["recordings"] = recordings
  temporary = path + ".tmp"
  with open(temporary, "w", encoding="utf-8") as handle:
    json.dump(reference, handle, indent=1)
  os.replace(temporary, path)


if __name__ == "__main__":
  main(sys.argv[1])
