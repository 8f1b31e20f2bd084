r"""Command line: analyse a dataset and write the statistics as JSON.

    python -m tf_compress.analyze --dataset=digits
    python -m tf_compress.analyze --dataset=/data/pets --image_size=64,64 \
        --output_json=pets_analysis.json

Prints class counts and balance, split sizes, per-channel statistics and,
for image folders, the distribution of original image sizes with a
recommended training size. Exit code 0 on success, 2 on bad input (with one
`error: ...` line on stderr).

The flags are defined only when this module runs as a program, so importing
it (e.g. to call `run`) never clashes with other tools' flags.
"""

import sys

from absl import flags

from tf_compress.cli import common
from tf_compress import io_utils
from tf_compress.data import statistics
from tf_compress.data import splits as splits_lib
from tf_compress.cli.common import image_size_validator
from tf_compress.cli.common import parse_image_size
from tf_compress.errors import UserInputError

__all__ = ["run", "run_from_flags", "parse_image_size", "define_flags",
           "main", "entry_point"]

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
      "dataset", "digits",
      "digits, iris, wine, breast_cancer, digits32 (harder, derived from "
      "digits), mnist, fashion_mnist, cifar10, "
      "cifar100, tfds:NAME, a path to an .npz file (x_train, y_train, "
      "x_test, y_test) or to an image directory (one subfolder per class).",
      flag_values=fv)
  flags.DEFINE_string(
      "image_size", "",
      "'HEIGHT,WIDTH' to resize image-directory images to; empty uses the "
      "recommended size (median size rounded to a multiple of 8).",
      flag_values=fv)
  flags.DEFINE_float("validation_fraction", 0.1,
                     "Fraction of the data held out for validation.",
                     lower_bound=0.0, upper_bound=0.9, flag_values=fv)
  flags.DEFINE_float("test_fraction", 0.2,
                     "Fraction held out for testing (sources without a test "
                     "split).", lower_bound=0.0, upper_bound=0.9,
                     flag_values=fv)
  flags.DEFINE_integer("seed", 0, "Random seed of the splits.",
                       lower_bound=0, flag_values=fv)
  flags.DEFINE_string("output_json", "dataset_analysis.json",
                      "Where to write the analysis; empty to skip writing.",
                      flag_values=fv)
  flags.register_validator("image_size", image_size_validator,
                           flag_values=fv)
  return fv


def run(*, dataset="digits", image_size=None, validation_fraction=0.1,
        test_fraction=0.2, seed=0, output_json="dataset_analysis.json",
        stream=None):
  """Loads and analyses a dataset, prints the report and writes the JSON.

  Args:
    dataset: a `tf_compress.data.load_dataset` source.
    image_size: (height, width), "H,W" text, or None.
    validation_fraction: fraction held out for validation.
    test_fraction: fraction held out for testing.
    seed: random seed of the splits.
    output_json: path of the JSON report (written atomically); empty or None
      to skip writing.
    stream: where to print the report; defaults to `sys.stdout`.

  Returns:
    The analysis dict (see `tf_compress.data.analyze_dataset`).

  Raises:
    UserInputError: (including DataError) for bad input or an unwritable
      output path; the output location is checked before any work.
  """
  if isinstance(image_size, str):
    image_size = parse_image_size(image_size)
  if output_json:
    io_utils.check_writable_file(output_json, what="--output_json")
  splits = splits_lib.load_dataset(
      dataset, validation_fraction=validation_fraction,
      test_fraction=test_fraction, image_size=image_size, seed=seed)
  result = splits.analyze()
  stream = sys.stdout if stream is None else stream
  print(statistics.format_analysis(result), file=stream)
  if output_json:
    try:
      io_utils.atomic_write_json(output_json, result)
    except OSError as e:
      raise UserInputError(
          f"could not write --output_json '{output_json}': "
          f"{e.strerror or e}.") from e
    print(f"Wrote {output_json}", file=stream)
  return result


def run_from_flags(flag_values=None):
  """Calls `run` with parsed flag values; returns the exit code.

  Args:
    flag_values: parsed `flags.FlagValues` holding this tool's flags;
      defaults to `flags.FLAGS`.

  Returns:
    0 on success; 2 after printing one `error: ...` line to stderr for a
    `UserInputError` (including `DataError`).
  """
  fv = FLAGS if flag_values is None else flag_values
  try:
    run(dataset=fv.dataset, image_size=parse_image_size(fv.image_size),
        validation_fraction=fv.validation_fraction,
        test_fraction=fv.test_fraction, seed=fv.seed,
        output_json=fv.output_json)
  except UserInputError as e:
    return common.report_user_error(e)
  return 0


def main(argv):
  """The absl entry point; returns the exit code."""
  if len(argv) > 1:
    return common.report_user_error(
        f"unexpected arguments {argv[1:]}; every option is a --flag "
        "(see --helpfull).")
  return run_from_flags(FLAGS)


def entry_point():
  """Console-script entry point."""
  common.run_command(main, define_flags)


if __name__ == "__main__":
  entry_point()
