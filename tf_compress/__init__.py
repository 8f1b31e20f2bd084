"""tf_compress: Keras/TensorFlow-native model compression.

Keras 3 models (`import keras`) get the native engine; tf_keras (Keras 2)
models, built with `tf_compress.keras`, get tensorflow-model-optimization.
Importing this package changes nothing global: `tf.keras` keeps its meaning::

    import keras
    import tf_compress as tfc

    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
    pruned = tfc.pruning.prune_model(model, tfc.pruning.PruningConfig(0.8))
"""

__version__ = "0.1.0"

from tf_compress._keras import check_model  # pylint: disable=g-bad-import-order
from tf_compress._keras import keras
from tf_compress._keras import register
from tf_compress import adversarial
from tf_compress import analysis
from tf_compress import benchmark
from tf_compress import data
from tf_compress import distillation
from tf_compress import export
from tf_compress import inference
from tf_compress import keras3_backup
from tf_compress import models
from tf_compress import pruning
from tf_compress import pipeline
from tf_compress import quantization
from tf_compress.analysis import classification_metrics
from tf_compress.analysis import model_stats
from tf_compress.data import analyze_arrays
from tf_compress.data import analyze_dataset
from tf_compress.data import build_digits32
from tf_compress.data import DatasetSplits
from tf_compress.data import load_dataset
from tf_compress.distribute import configure_logical_cpus
from tf_compress.distribute import make_strategy
from tf_compress.errors import DataError
from tf_compress.errors import ModelError
from tf_compress.errors import TfCompressError
from tf_compress.errors import UserInputError
from tf_compress.models import build_model
from tf_compress.models import load_model
from tf_compress.models import save_model
from tf_compress.repro import enable_determinism
from tf_compress.repro import set_seed
from tf_compress.pipeline import RunConfig
from tf_compress.pipeline import run
from tf_compress.pipeline import TrainConfig

__all__ = [
    "__version__", "adversarial", "analysis", "analyze_arrays", "analyze_dataset", "benchmark",
    "build_digits32", "build_model", "check_model", "classification_metrics",
    "configure_logical_cpus", "data", "DataError", "DatasetSplits", "distillation",
    "enable_determinism", "export", "inference", "keras", "keras3_backup", "load_dataset", "load_model",
    "make_strategy", "model_stats", "ModelError", "models", "pipeline", "pruning", "quantization", "register",
    "run", "RunConfig", "save_model", "set_seed", "TfCompressError", "TrainConfig",
    "UserInputError",
]
