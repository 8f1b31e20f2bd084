"""What every tf_compress command shares: flag parsing and exit codes.

The tools follow one exit-code convention: 0 on success, 2 when the user
handed us something unusable (a bad flag value, a missing or corrupt file, an
unknown dataset). In the latter case exactly one line, starting with
`error: `, is written to standard error.

Typical use::

  from absl import app
  from tf_compress.cli import common

  def main(argv):
    try:
      run(...)
    except UserInputError as e:
      return common.report_user_error(e)
    return 0

  if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags_or_exit)
"""

import sys

from absl import app
from absl import flags

from tf_compress.errors import one_line
from tf_compress.errors import UserInputError
from tf_compress.pipeline.fields import parse_image_size

__all__ = ["USER_ERROR_EXIT_CODE", "parse_flags_or_exit", "report_user_error",
           "one_line", "parse_image_size", "image_size_validator",
           "run_command"]

USER_ERROR_EXIT_CODE = 2


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


def image_size_validator(value):
  """absl flag validator for an optional "H,W" image size."""
  try:
    parse_image_size(value)
  except UserInputError as e:
    raise flags.ValidationError(str(e)) from e
  return True


def run_command(main, define_flags):
  """Runs a command: defines its flags on `flags.FLAGS`, parses, calls main.

  Every command's `entry_point` (`python -m tf_compress.<command>` and
  console scripts) is `run_command(main, define_flags)`; a bad flag exits
  with code 2 and one `error:` line.
  """
  define_flags()
  app.run(main, flags_parser=parse_flags_or_exit)
