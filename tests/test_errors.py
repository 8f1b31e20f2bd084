"""tf_compress.errors: the exception hierarchy and one-line messages."""

import pytest

from tf_compress import errors


def test_hierarchy():
  assert issubclass(errors.DataError, errors.UserInputError)
  assert issubclass(errors.ModelError, errors.UserInputError)
  assert issubclass(errors.UserInputError, ValueError)
  assert issubclass(errors.UserInputError, errors.TfCompressError)


@pytest.mark.parametrize("message,expected", [
    ("plain", "plain"),
    ("two\nlines", "two lines"),
    ("  runs   of\t\tspaces \n", "runs of spaces"),
    ("", ""),
    (RuntimeError("failed:\n  at line 3"), "failed: at line 3"),
    (42, "42"),
], ids=["plain", "newline", "runs", "empty", "exception", "number"])
def test_one_line(message, expected):
  assert errors.one_line(message) == expected
