"""Exception types raised by tf_compress.

`UserInputError` and its subclasses mean "the caller handed us something we
cannot use" (a bad flag, file, dataset or model). The command-line entry points
turn them into a one-line message and exit code 2.
"""

__all__ = ["TfCompressError", "UserInputError", "DataError", "ModelError",
           "one_line"]


class TfCompressError(Exception):
  """Base class of every error raised on purpose by tf_compress."""


class UserInputError(TfCompressError, ValueError):
  """Bad input from the user: a flag, a file, a dataset or a model."""


class DataError(UserInputError):
  """A dataset could not be found, read or used."""


class ModelError(UserInputError):
  """A model could not be loaded or does not fit the task."""


def one_line(message):
  """Collapses a message onto one line (newlines and runs of spaces).

  Error messages quote exceptions from other libraries, whose text may span
  lines; one line keeps a CLI's `error: ...` output to a single line.

  Args:
    message: any object; it is converted with `str`.

  Returns:
    The single-line string.
  """
  return " ".join(str(message).split())
