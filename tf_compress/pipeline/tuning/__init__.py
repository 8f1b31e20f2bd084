"""Compression hyperparameter tuning: multi-objective Optuna studies.

    from tf_compress.pipeline import tuning

    config = tuning.TuneConfig(
        train=tf_compress.TrainConfig(model="cnn", epochs=10,
                                      finetune_epochs=2),
        output_dir="/tmp/tune",
        space=tuning.SearchSpace(prune_sparsity=(0.5, 0.95),
                                 export=("float32", "int8")),
        objectives=("accuracy", "gzip_bytes"), max_accuracy_drop=0.01,
        cv_folds=3, trials=20)
    summary = tuning.tune(config)       # also writes tuning.json, best.flags
    print(summary["pareto"], summary["best"])

The command line is `python -m tf_compress.tune`.
"""

from tf_compress.pipeline.tuning.early_stopping import HopelessTrialStopper
from tf_compress.pipeline.tuning.tune_config import TuneConfig
from tf_compress.pipeline.tuning.cv import check_cv_folds
from tf_compress.pipeline.tuning.cv import fold_splits
from tf_compress.pipeline.tuning.cv import make_folds
from tf_compress.pipeline.tuning.cv import search_view
from tf_compress.pipeline.tuning.objectives import Constraints
from tf_compress.pipeline.tuning.objectives import OBJECTIVES
from tf_compress.pipeline.tuning.outputs import flagfile_text
from tf_compress.pipeline.tuning.outputs import select_best
from tf_compress.pipeline.tuning.space import SearchSpace
from tf_compress.pipeline.tuning.space import suggest
from tf_compress.pipeline.tuning.space import train_overrides
from tf_compress.pipeline.tuning.tuner import run_search
from tf_compress.pipeline.tuning.tuner import tune

__all__ = ["HopelessTrialStopper", "TuneConfig", "check_cv_folds",
           "fold_splits", "make_folds", "search_view", "Constraints",
           "OBJECTIVES", "flagfile_text", "select_best", "SearchSpace",
           "suggest", "train_overrides", "run_search", "tune"]
