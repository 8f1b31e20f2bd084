"""Helpers shared by the tf_compress command-line tools.

The tools follow one exit-code convention: 0 on success, 2 when the user
handed us something unusable (a bad flag value, a missing or corrupt file, an
unknown dataset). In the latter case exactly one line, starting with
`error: `, is written to standard error.

Typical use::

  from absl import app
  from tf_compress import cli_utils

  def main(argv):
    try:
      run(...)
    except UserInputError as e:
      return cli_utils.report_user_error(e)
    return 0

  if __name__ == "__main__":
    app.run(main, flags_parser=cli_utils.parse_flags_or_exit)
"""

import sys

from absl import flags

from tf_compress.errors import UserInputError

__all__ = ["USER_ERROR_EXIT_CODE", "parse_flags_or_exit", "report_user_error",
           "one_line", "parse_image_size", "image_size_validator"]

USER_ERROR_EXIT_CODE = 2


def one_line(message):
  """Collapses a message onto one line (newlines and runs of spaces).

  Args:
    message: any object; it is converted with `str`.

  Returns:
    The single-line string.
  """
  return " ".join(str(message).split())


def parse_flags_or_exit(argv, flag_values=None):
  """Parses command-line flags, exiting with code 2 on a bad flag.

  Meant as the `flags_parser` argument of `absl.app.run`.

  Args:
    argv: the full command line, program name first.
    flag_values: the `flags.FlagValues` to parse into; defaults to
      `flags.FLAGS`.

  Returns:
    The remaining (non-flag) arguments, program name first.

  Raises:
    SystemExit: with code 2 after printing `error: <message>` to stderr, when
      a flag is unknown, malformed, out of range or fails a validator.
  """
  flag_values = flags.FLAGS if flag_values is None else flag_values
  try:
    return flag_values(argv)
  except flags.Error as e:
    message = one_line(e).rstrip(".")
    print(f"error: {message}. Try --helpfull to list the flags.",
          file=sys.stderr)
    sys.exit(USER_ERROR_EXIT_CODE)


def report_user_error(exc, stream=None):
  """Prints a user error as one `error: ...` line and returns exit code 2.

  Args:
    exc: the exception (usually a `tf_compress.errors.UserInputError`).
    stream: where to print; defaults to `sys.stderr`.

  Returns:
    2, the exit code for bad user input.
  """
  stream = sys.stderr if stream is None else stream
  print(f"error: {one_line(exc)}", file=stream)
  stream.flush()
  return USER_ERROR_EXIT_CODE


def parse_image_size(text):
  """Parses "H,W" into (H, W); empty text means None.

  Args:
    text: e.g. "64,64"; "" or None for no resizing choice.

  Returns:
    (height, width) as positive ints, or None.

  Raises:
    UserInputError: if the text is not two positive integers "H,W".
  """
  if text is None or not str(text).strip():
    return None
  parts = [p.strip() for p in str(text).split(",")]
  try:
    h, w = (int(p) for p in parts)
  except ValueError:
    h = w = 0
  if len(parts) != 2 or h <= 0 or w <= 0:
    raise UserInputError(
        f"image size must be two positive integers 'HEIGHT,WIDTH' such as "
        f"'64,64', got '{text}'.")
  return h, w


def image_size_validator(value):
  """absl flag validator for an optional "H,W" image size."""
  try:
    parse_image_size(value)
  except UserInputError as e:
    raise flags.ValidationError(str(e)) from e
  return True
