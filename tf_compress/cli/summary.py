r"""Command line: print a model's per-layer summary, as deployed.

    python -m tf_compress.summary model.keras
    python -m tf_compress.summary model_int8.tflite --reference=model.keras
    python -m tf_compress.summary pruned.keras --format=json \
        --output=summary.json

MODEL is a `.keras`/`.h5` file (plain, or with tfmot pruning, clustering or
QAT wrappers; QAT models as `.h5`), a SavedModel directory, or a `.tflite`
file. One row per layer or TFLite operator: name and type, output shape,
parameters and non-zeros, weight dtypes or bits, memory in bytes and MACs;
then totals and, with --reference, the compression ratios reference / model
(see `tf_compress.analysis.model_summary`). Exit code 0 on success, 2 on bad
input (with one `error: ...` line on stderr).

Keras files load in safe mode: one whose loading would run code it holds
(a Lambda layer, a module outside Keras, any full-model `.h5` file, as QAT
models are) is refused unless `--allow_unsafe_load` is given.

The flags are defined only when this module runs as a program, so importing
it (e.g. to call `run`) never clashes with other tools' flags.
"""

import json
import sys

from absl import flags

from tf_compress.cli import common
from tf_compress import io_utils
from tf_compress.analysis import model_summary
from tf_compress.analysis import format_summary
from tf_compress.errors import UserInputError

__all__ = ["FORMATS", "define_flags", "render", "run", "run_from_flags",
           "main", "entry_point"]

FORMATS = ("text", "json")
FLAGS = flags.FLAGS


def define_flags(flag_values=None):
  """Defines this tool's flags.

  Args:
    flag_values: the `flags.FlagValues` to define them in; defaults to
      `flags.FLAGS`.

  Returns:
    The `flags.FlagValues` used.
  """
  fv = flags.FLAGS if flag_values is None else flag_values
  flags.DEFINE_string(
      "reference", None,
      "A model to compare with (.keras, .h5 or .tflite); the summary then "
      "ends with the ratios reference / model of params, non-zero params, "
      "memory and MACs.", flag_values=fv)
  flags.DEFINE_enum("format", "text", FORMATS,
                    "text: an aligned table; json: the summary dict.",
                    flag_values=fv)
  flags.DEFINE_string(
      "output", None,
      "Write the summary to this file (atomically) instead of standard "
      "output.", flag_values=fv)
  flags.DEFINE_bool(
      "allow_unsafe_load", False,
      "Load Keras files even when loading can run code they hold (Lambda "
      "layers, full-model .h5 files, modules outside Keras); only for "
      "files you trust.", flag_values=fv)
  return fv


def render(summary, output_format="text"):
  """The summary as text (a table) or JSON (indented, sorted as built)."""
  if output_format == "json":
    return json.dumps(io_utils.to_json_safe(summary), indent=2)
  return format_summary(summary)


def run(model, *, reference=None, output_format="text", output=None,
        stream=None, allow_unsafe_load=False):
  """Summarizes `model` and prints (or writes) the result.

  Args:
    model: a model file (`.keras`, `.h5`, `.tflite`) or a tf_keras model.
    reference: None, or a model to compare with (same forms).
    output_format: one of `FORMATS`.
    output: None to print to `stream`; else the file to write, after which
      a line naming it is printed.
    stream: where to print; defaults to `sys.stdout`.
    allow_unsafe_load: load Keras files in Keras' unsafe mode (see
      `tf_compress.load_model`'s `safe_mode`).

  Returns:
    The summary dict (see `tf_compress.analysis.model_summary`).

  Raises:
    UserInputError: (including ModelError) for a missing or corrupt model
      file, one refused as unsafe, an unknown format or an unwritable
      output; the output location is checked before any work.
  """
  if output_format not in FORMATS:
    raise UserInputError(f"unknown format {output_format!r}; choose one of "
                         f"{', '.join(FORMATS)}")
  if output:
    io_utils.check_writable_file(output, what="--output")
  summary = model_summary(model, reference=reference,
                          safe_mode=not allow_unsafe_load)
  text = render(summary, output_format)
  stream = sys.stdout if stream is None else stream
  if output:
    try:
      io_utils.atomic_write_text(output, text + "\n")
    except OSError as e:
      raise UserInputError(f"could not write --output '{output}': "
                           f"{e.strerror or e}") from e
    print(f"Wrote {output}", file=stream)
  else:
    print(text, file=stream)
  return summary


def run_from_flags(model, flag_values=None):
  """Calls `run` with parsed flag values; returns the exit code.

  Args:
    model: the MODEL argument.
    flag_values: parsed `flags.FlagValues` holding this tool's flags;
      defaults to `flags.FLAGS`.

  Returns:
    0 on success; 2 after printing one `error: ...` line to stderr for a
    `UserInputError` (including `ModelError`).
  """
  fv = FLAGS if flag_values is None else flag_values
  try:
    run(model, reference=fv.reference, output_format=fv.format,
        output=fv.output, allow_unsafe_load=fv.allow_unsafe_load)
  except UserInputError as e:
    return common.report_user_error(e)
  return 0


def main(argv, flag_values=None):
  """The absl entry point; returns the exit code.

  Args:
    argv: the command line left after flag parsing, program name first.
    flag_values: parsed flags; defaults to `flags.FLAGS`.
  """
  if len(argv) != 2:
    got = f"got {argv[1:]}" if len(argv) > 2 else "got none"
    return common.report_user_error(
        f"give exactly one MODEL (a .keras, .h5 or .tflite file), {got}; "
        "usage: python -m tf_compress.summary MODEL [--reference=MODEL] "
        "[--format=text|json] [--output=FILE] [--allow_unsafe_load]")
  return run_from_flags(argv[1], flag_values)


def entry_point():
  """Console-script entry point."""
  common.run_command(main, define_flags)


if __name__ == "__main__":
  entry_point()
