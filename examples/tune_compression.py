"""Search pruning sparsity and export mode for a digits model with Optuna.

Two objectives (TFLite accuracy up, gzip size down), at most one point of
accuracy lost against the baseline, 3-fold cross-validation of the training
split. The Pareto-optimal configurations are then retrained on the whole
training split and tested once; the best one is written as a flagfile for
the train command.

  python examples/tune_compression.py --trials=20 --output_dir=/tmp/tune
  python -m tf_compress.train --flagfile=/tmp/tune/best.flags

Re-running the same command resumes the study.
"""

import argparse

import tf_compress as tfc
from tf_compress.pipeline import tuning


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--output_dir", default="tune_compression")
  parser.add_argument("--trials", type=int, default=20)
  parser.add_argument("--cv_folds", type=int, default=3)
  parser.add_argument("--model", default="cnn")
  parser.add_argument("--width", type=float, default=0.5)
  parser.add_argument("--epochs", type=int, default=10)
  parser.add_argument("--finetune_epochs", type=int, default=2)
  parser.add_argument("--max_accuracy_drop", type=float, default=0.01)
  parser.add_argument("--final_max", type=int, default=3,
                      help="Pareto configurations to retrain and test")
  parser.add_argument("--skip_final", action="store_true",
                      help="search only: no retraining, no test")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()

  base = tfc.RunConfig.from_flat(
      model=args.model, width=args.width, epochs=args.epochs,
      finetune_epochs=args.finetune_epochs, seed=args.seed, verbose=0,
      prune_frequency=5, benchmark_runs=0, export=("int8",))
  config = tuning.TuneConfig(
      train=base, output_dir=args.output_dir,
      space=tuning.SearchSpace(prune_sparsity=(0.5, 0.95),
                               export=("float32", "dynamic", "int8")),
      objectives=("accuracy", "gzip_bytes"),
      max_accuracy_drop=args.max_accuracy_drop, cv_folds=args.cv_folds,
      trials=args.trials, final_max=args.final_max,
      final_eval=not args.skip_final)
  summary = tuning.tune(config)

  print(f"trials: {summary['num_trials']}, hypervolume of the front: "
        f"{summary['hypervolume']:.1f}")
  for number in summary["pareto"]:
    trial = next(t for t in summary["trials"] if t["number"] == number)
    values = trial["values"]
    print(f"  trial {number}: {trial['params']} -> accuracy "
          f"{values['accuracy']:.4f}, gzip {values['gzip_bytes']:.0f} B")
  for entry in summary["final"]:
    test = entry["test"]
    if test is None:
      print(f"test of trial {entry['number']} failed: {entry['error']}")
    else:
      print(f"test of trial {entry['number']}: top1={test['top1']:.4f} "
            f"gzip_bytes={test['gzip_bytes']}")
  if summary["best"] is not None:
    print(f"best: trial {summary['best']['number']}; reproduce with "
          f"python -m tf_compress.train "
          f"--flagfile={args.output_dir}/best.flags")
  else:
    print("no configuration met the accuracy constraint")


if __name__ == "__main__":
  main()
