"""Tuning benchmark on digits: a small multi-objective study, in one go.

  python benchmarks/tuning.py [--trials=20] [--cv_folds=3] [--workers=2]

Searches magnitude-pruning sparsity (0.5-0.97), the number of weight
clusters (8-32; sparsity-preserving clustering after pruning) and the
TFLite export mode (dynamic-range or full int8) of a narrow CNN (`cnn`,
width 0.5), each step fine-tuned for 2 epochs from per-fold baselines (the
`combined` variant of the train command); objectives:
TFLite accuracy (up) and gzip size (down), 3-fold cross-validation of the
training split. `--workers` processes work on the one study (SQLite).

Then the demo's hand-set configuration, `pruned` at 80% sparsity (default
schedule) exported to int8, is measured through the same evaluation
function on the same folds and cached baselines, and the script prints:

  * the hypervolume of the Pareto front (reference: accuracy 0 and the
    baseline's float32 TFLite gzip size), and of the hand-set point alone;
  * whether the front holds a configuration that dominates the hand-set
    one: equal or better accuracy at a smaller gzip size.

Target (issue "Compression hyperparameter tuning"): at least 20 trials,
3-fold CV, under 10 minutes on 2 cores.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import tf_compress as tfc
from tf_compress.analysis import hypervolume
from tf_compress.pipeline.tuning import evaluate
from tf_compress.pipeline.tuning import tuner
from tf_compress.pipeline.tuning.tune_config import TuneConfig
from tf_compress.pipeline.tuning.space import SearchSpace

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _flags(args, output_dir):
  return [
      "--dataset=digits", "--model=cnn", f"--width={args.width}",
      f"--epochs={args.epochs}", f"--finetune_epochs={args.finetune_epochs}",
      "--prune_frequency=5", "--verbose=0", f"--seed={args.seed}",
      "--export=int8", "--benchmark_runs=0",
      "--prune_sparsity_range=0.5,0.97", "--cluster_count_range=8,32",
      "--export_modes=dynamic,int8",
      "--objectives=accuracy,gzip_bytes", f"--cv_folds={args.cv_folds}",
      f"--trials={args.trials}", "--nofinal_eval",
      f"--output_dir={output_dir}"]


def _config(args, output_dir):
  """The same study as `_flags`, as a TuneConfig (for the hand-set point)."""
  train = tfc.TrainConfig(
      model="cnn", width=args.width, epochs=args.epochs,
      finetune_epochs=args.finetune_epochs, prune_frequency=5, verbose=0,
      seed=args.seed, export=("int8",), benchmark_runs=0)
  return TuneConfig(
      train=train, output_dir=output_dir,
      space=SearchSpace(prune_sparsity=(0.5, 0.97), cluster_count=(8, 32),
                        export=("dynamic", "int8")),
      objectives=("accuracy", "gzip_bytes"), cv_folds=args.cv_folds,
      trials=args.trials, final_eval=False)


def _run_workers(args, output_dir):
  command = [sys.executable, "-m", "tf_compress.tune"] + _flags(args,
                                                                output_dir)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  procs = []
  for index in range(args.workers):
    log = open(os.path.join(output_dir, f"worker{index}.log"), "w",
               encoding="utf-8")
    procs.append((subprocess.Popen(command, cwd=REPO_ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT),
                  log))
    if index == 0:
      time.sleep(2)  # let the first create the study
  for proc, log in procs:
    proc.wait()
    log.close()
    if proc.returncode != 0:
      raise SystemExit(f"a worker failed ({proc.returncode}); see "
                       f"{output_dir}/worker*.log")


def _hand_set(config, splits):
  """The demo's pruned (80%) + int8 variant, through the same evaluation."""
  context = tuner.prepare_search(config, splits)  # cached baselines
  hand = config.train.replace(prune_sparsity=0.8, export=("int8",))
  scores = [evaluate.evaluate_fold(hand, fold, info, context.settings,
                                   workdir=context.workdir)
            for fold, info in zip(context.folds, context.baselines)]
  mean, std = evaluate.summarize(scores)
  return mean, std, context


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--trials", type=int, default=20)
  parser.add_argument("--cv_folds", type=int, default=3)
  parser.add_argument("--workers", type=int, default=2)
  parser.add_argument("--width", type=float, default=0.5)
  parser.add_argument("--epochs", type=int, default=10)
  parser.add_argument("--finetune_epochs", type=int, default=2)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--output_dir", default=None)
  args = parser.parse_args()
  output_dir = args.output_dir or tempfile.mkdtemp(prefix="bench_tuning_")
  os.makedirs(output_dir, exist_ok=True)

  started = time.perf_counter()
  _run_workers(args, output_dir)
  search_s = time.perf_counter() - started
  with open(os.path.join(output_dir, "tuning.json"), encoding="utf-8") as f:
    summary = json.load(f)

  config = _config(args, output_dir)
  splits = tuner.load_splits(config.train)
  hand, hand_std, context = _hand_set(config, splits)
  total_s = time.perf_counter() - started

  directions = summary["directions"]
  reference = summary["reference_point"]
  by_number = {t["number"]: t for t in summary["trials"]}
  front = [by_number[n] for n in summary["pareto"]]
  front.sort(key=lambda t: t["values"]["gzip_bytes"])
  hand_point = [hand["accuracy"], hand["gzip_bytes"]]
  dominating = [t for t in front
                if t["values"]["accuracy"] >= hand_point[0] and
                t["values"]["gzip_bytes"] < hand_point[1]]
  states = [t["state"] for t in summary["trials"]]
  baseline_acc = np.mean([b["val_accuracy"] for b in context.baselines])

  print(f"study: {summary['num_trials']} trials "
        f"({states.count('COMPLETE')} complete, {states.count('PRUNED')} "
        f"stopped early, {states.count('FAIL')} failed), "
        f"{args.cv_folds}-fold CV, {args.workers} workers, search "
        f"{search_s:.0f} s, total {total_s:.0f} s "
        f"({'under' if total_s < 600 else 'OVER'} 10 minutes)")
  print(f"baseline (cnn width {args.width:g}): CV accuracy "
        f"{baseline_acc:.4f}, float32 TFLite gzip {reference[1]:.0f} B")
  print("Pareto front (mean over folds +- std):")
  print(f"  {'trial':>5}  {'sparsity':>8}  {'clusters':>8}  {'export':>7}  "
        f"{'accuracy':>15}  {'gzip bytes':>10}")
  for trial in front:
    params, values, std = trial["params"], trial["values"], trial["std"]
    print(f"  {trial['number']:>5}  {params['prune_sparsity']:>8.3f}  "
          f"{params['cluster_count']:>8}  {params['export']:>7}  "
          f"{values['accuracy']:.4f} +- {std['accuracy']:.4f}  "
          f"{values['gzip_bytes']:>10.0f}")
  print(f"hand-set pruned 0.8 + int8: accuracy {hand['accuracy']:.4f} +- "
        f"{hand_std['accuracy']:.4f}, gzip {hand['gzip_bytes']:.0f} B")
  print(f"hypervolume of the front: {summary['hypervolume']:.2f} "
        f"(reference accuracy 0, gzip {reference[1]:.0f} B); hand-set "
        f"point alone: {hypervolume([hand_point], directions, reference):.2f}")
  if dominating:
    best = max(dominating, key=lambda t: (t["values"]["accuracy"],
                                          -t["values"]["gzip_bytes"]))
    print(f"front dominates the hand-set variant: YES, e.g. trial "
          f"{best['number']} {best['params']}: accuracy "
          f"{best['values']['accuracy']:.4f} >= {hand['accuracy']:.4f} at "
          f"{best['values']['gzip_bytes']:.0f} < {hand['gzip_bytes']:.0f} "
          f"bytes ({len(dominating)} such configurations)")
  else:
    print("front dominates the hand-set variant: NO")
  print(f"outputs in {output_dir}")


if __name__ == "__main__":
  main()
