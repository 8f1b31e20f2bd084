"""Silencing the TFLite converter and quantizers while they run.

The converter, the MLIR quantizer and ai-edge-quantizer print diagnostics
and progress from C++ and Python straight to the process's standard output
and error; `quiet_converter` hides them for the duration of a block.
"""

import contextlib
import logging
import os
import sys
import tempfile
import warnings

from tf_compress._keras import tf

__all__ = ["quiet_converter"]


@contextlib.contextmanager
def quiet_converter(verbose=False):
  """Silences the converter's Python warnings and its native log output.

  The converter's C++ code writes MLIR diagnostics and calibration chatter
  straight to file descriptors 1 and 2, so those are pointed at a temporary
  file for the duration. A conversion error still carries the diagnostics
  in its exception message.
  """
  if verbose:
    yield
    return
  tf_logger = tf.get_logger()
  level = tf_logger.level
  tf_logger.setLevel(logging.ERROR)
  with warnings.catch_warnings(), tempfile.TemporaryFile() as sink:
    warnings.simplefilter("ignore")
    for stream in (sys.stdout, sys.stderr):
      stream.flush()
    saved = []
    try:
      for fd in (1, 2):
        try:
          saved.append((fd, os.dup(fd)))
          os.dup2(sink.fileno(), fd)
        except OSError:
          pass  # No such descriptor (embedded interpreters): nothing to hide.
      yield
    finally:
      for fd, copy in saved:
        os.dup2(copy, fd)
        os.close(copy)
      tf_logger.setLevel(level)
