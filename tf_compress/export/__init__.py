"""TFLite export: conversion, mixed precision, LiteRT verification, inspection.

    from tf_compress import export

    data = export.convert_to_tflite(model, "int8",
                                    representative_data=splits.x_train)
    print(export.inspect_tflite(data)["kernel_dtypes"])   # {'int8': 4}
    print(export.verify_tflite(data, splits.x_test, splits.y_test,
                               keras_model=model)["agreement"])
    # Keep two Keras layers in float, quantize the rest to int8:
    export.export_tflite(model, "mixed.tflite", "int8",
                         keep_float=["fc1", "conv*"],
                         representative_data=splits.x_train)
"""

from tf_compress.export.convert import calibrate_int8
from tf_compress.export.convert import convert_to_tflite
from tf_compress.export.convert import EDGE_QUANTIZER_MODES
from tf_compress.export.convert import EXPORT_MODES
from tf_compress.export.convert import export_tflite
from tf_compress.export.flatbuffer import inspect_tflite
from tf_compress.export.litert import load_interpreter
from tf_compress.export.litert import run_interpreter
from tf_compress.export.litert import run_isolated
from tf_compress.export.selective import Calibrated
from tf_compress.export.selective import KEEP_DTYPES
from tf_compress.export.verify import verify_tflite

__all__ = [
    "Calibrated", "calibrate_int8", "convert_to_tflite",
    "EDGE_QUANTIZER_MODES", "EXPORT_MODES", "export_tflite",
    "inspect_tflite", "KEEP_DTYPES", "load_interpreter", "run_interpreter",
    "run_isolated", "verify_tflite",
]
