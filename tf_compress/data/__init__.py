"""Datasets for tf_compress: loading, splitting, normalisation and analysis.

    from tf_compress.data import load_dataset

    splits = load_dataset("digits", seed=0)
    model.fit(splits.train(batch_size=64), validation_data=splits.validation())
    print(format_analysis(splits.analyze()))
"""

from tf_compress.data.analysis import analyze_arrays
from tf_compress.data.analysis import analyze_dataset
from tf_compress.data.analysis import class_statistics
from tf_compress.data.analysis import format_analysis
from tf_compress.data.analysis import image_size_stats
from tf_compress.data.analysis import streaming_channel_stats
from tf_compress.data.sources import KERAS_DATASETS
from tf_compress.data.sources import load_raw
from tf_compress.data.sources import RawData
from tf_compress.data.sources import SKLEARN_DATASETS
from tf_compress.data.splits import DatasetSplits
from tf_compress.data.splits import load_dataset
from tf_compress.data.splits import NORMALIZATIONS

__all__ = [
    "DatasetSplits",
    "load_dataset",
    "NORMALIZATIONS",
    "RawData",
    "load_raw",
    "SKLEARN_DATASETS",
    "KERAS_DATASETS",
    "streaming_channel_stats",
    "class_statistics",
    "image_size_stats",
    "analyze_arrays",
    "analyze_dataset",
    "format_analysis",
]
