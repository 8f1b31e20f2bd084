"""TFLite export: conversion in five modes, LiteRT verification, inspection.

    from tf_compress import export

    data = export.convert_to_tflite(model, "int8",
                                    representative_data=splits.x_train)
    print(export.inspect_tflite(data)["kernel_dtypes"])   # {'int8': 4}
    print(export.verify_tflite(data, splits.x_test, splits.y_test,
                               keras_model=model)["agreement"])
"""

from tf_compress.export.convert import convert_to_tflite
from tf_compress.export.convert import EXPORT_MODES
from tf_compress.export.convert import export_tflite
from tf_compress.export.flatbuffer import inspect_tflite
from tf_compress.export.litert import load_interpreter
from tf_compress.export.litert import run_interpreter
from tf_compress.export.litert import run_isolated
from tf_compress.export.verify import verify_tflite

__all__ = [
    "convert_to_tflite", "EXPORT_MODES", "export_tflite", "inspect_tflite",
    "load_interpreter", "run_interpreter", "run_isolated", "verify_tflite",
]
