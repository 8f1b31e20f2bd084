"""Datasets for tf_compress: loading, splitting, normalisation and analysis.

    from tf_compress.data import load_dataset

    splits = load_dataset("digits", seed=0)
    model.fit(splits.train(batch_size=64), validation_data=splits.validation())
    print(format_analysis(splits.analyze()))
"""

from tf_compress.data.digits32 import build_digits32
from tf_compress.data.digits32 import Digits32
from tf_compress.data.statistics import analyze_arrays
from tf_compress.data.statistics import analyze_dataset
from tf_compress.data.statistics import class_statistics
from tf_compress.data.statistics import format_analysis
from tf_compress.data.statistics import image_size_stats
from tf_compress.data.statistics import streaming_channel_stats
from tf_compress.data.sources import DERIVED_DATASETS
from tf_compress.data.sources import KERAS_DATASETS
from tf_compress.data.sources import load_raw
from tf_compress.data.sources import RawData
from tf_compress.data.sources import SKLEARN_DATASETS
from tf_compress.data.splits import DatasetSplits
from tf_compress.data.splits import load_dataset
from tf_compress.data.splits import NORMALIZATIONS

__all__ = ["analyze_arrays", "analyze_dataset", "build_digits32",
           "class_statistics", "DatasetSplits", "DERIVED_DATASETS",
           "Digits32", "format_analysis", "image_size_stats",
           "KERAS_DATASETS", "load_dataset", "load_raw", "NORMALIZATIONS",
           "RawData", "SKLEARN_DATASETS", "streaming_channel_stats"]
