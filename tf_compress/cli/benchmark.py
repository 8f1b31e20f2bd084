r"""Command line: benchmark TFLite models on LiteRT, like `benchmark_model`.

    python -m tf_compress.benchmark cnn_float32.tflite cnn_int8.tflite \
        --num_threads=1,2 --num_runs=200 --use_gpu \
        --output_json=latency.json

Prints one table per model (initialisation, first inference, latency
mean/std/min/p50/p90/p99/max in ms, throughput, peak-memory increase) with
one row per thread count, and a GPU row with `--use_gpu` (which says
"unavailable" and why on a machine without a usable GPU). `--output_json`
writes the same fields as `{"models": [report, ...]}`, atomically. Exit code
0 on success, 2 on bad input (a missing, corrupt or non-TFLite file, a bad
flag) with one `error: ...` line on stderr.

The flags are defined only when this module runs as a program, so importing
it (e.g. to call `run`) never clashes with other tools' flags.
"""

import sys

from absl import flags

from tf_compress.cli import common
from tf_compress import io_utils
from tf_compress.benchmark import format as format_lib
from tf_compress.benchmark import harness
from tf_compress.errors import UserInputError
from tf_compress.export import litert

__all__ = ["define_flags", "parse_delegate_options", "parse_num_threads",
           "config_from_flags", "run", "run_from_flags", "main", "entry_point"]

FLAGS = flags.FLAGS


def parse_num_threads(values):
  """Parses the --num_threads list ("1,2") into a tuple of ints >= 1.

  Raises:
    UserInputError: naming the value that is not a positive integer.
  """
  if isinstance(values, str):
    values = values.split(",")
  threads = []
  for value in values or []:
    try:
      count = int(str(value).strip())
    except ValueError:
      count = 0
    if count < 1:
      raise UserInputError(
          f"--num_threads takes thread counts >= 1 such as 1,2; got "
          f"{value!r}.")
    threads.append(count)
  return tuple(threads)


def parse_delegate_options(text):
  """Parses "key:value;key2:value2" (benchmark_model's format) into a dict.

  Returns:
    The dict, or None for empty text.

  Raises:
    UserInputError: for an entry without a colon or with an empty key.
  """
  if not text or not text.strip():
    return None
  options = {}
  for entry in text.split(";"):
    if not entry.strip():
      continue
    key, sep, value = entry.partition(":")
    if not sep or not key.strip():
      raise UserInputError(
          f"--delegate_options takes 'key:value;key2:value2', got entry "
          f"{entry!r}.")
    options[key.strip()] = value.strip()
  return options or None


def _validator(parse):
  """An absl flag validator that accepts what `parse` accepts."""
  def check(value):
    try:
      parse(value)
    except UserInputError as e:
      raise flags.ValidationError(str(e)) from e
    return True
  return check


def define_flags(flag_values=None):
  """Defines this tool's flags.

  Args:
    flag_values: the `flags.FlagValues` to define them in; defaults to
      `flags.FLAGS`.

  Returns:
    The `flags.FlagValues` used.
  """
  fv = flags.FLAGS if flag_values is None else flag_values
  flags.DEFINE_integer("num_runs", 50,
                       "Timed runs per result; 0 runs until --max_secs.",
                       lower_bound=0, flag_values=fv)
  flags.DEFINE_integer("warmup_runs", 1, "Untimed runs before the timed ones.",
                       lower_bound=0, flag_values=fv)
  flags.DEFINE_float("max_secs", None,
                     "Time budget of the timed runs in seconds; they stop "
                     "at --num_runs or here, whichever comes first.",
                     flag_values=fv)
  flags.DEFINE_list("num_threads", ["1"],
                    "CPU thread counts to sweep, e.g. 1,2 (one row each).",
                    flag_values=fv)
  flags.DEFINE_bool("use_xnnpack", True,
                    "Use LiteRT's default XNNPACK delegate on the CPU; "
                    "--nouse_xnnpack runs the built-in kernels.",
                    flag_values=fv)
  flags.DEFINE_bool("use_gpu", False,
                    "Also benchmark LiteRT's GPU accelerator (reported as "
                    "unavailable, with the reason, when there is no GPU).",
                    flag_values=fv)
  flags.DEFINE_string("delegate_path", None,
                      "A TFLite external delegate library (.so) for the CPU "
                      "runs.", flag_values=fv)
  flags.DEFINE_string("delegate_options", "",
                      "Options of --delegate_path as 'key:value;key2:value2'.",
                      flag_values=fv)
  flags.DEFINE_string("input_npy", None,
                      "A .npy file of inputs (single-input models); random "
                      "seeded inputs when not given.", flag_values=fv)
  flags.DEFINE_string("output_json", "",
                      "Where to write the reports as JSON; empty to skip.",
                      flag_values=fv)
  flags.DEFINE_integer("seed", 0, "Seed of the random inputs.",
                       lower_bound=0, flag_values=fv)
  flags.DEFINE_float("timeout_s", 600.0,
                     "Seconds before a benchmark's child process is killed.",
                     lower_bound=1.0, flag_values=fv)
  flags.register_validator(
      "num_threads", _validator(parse_num_threads),
      flag_values=fv)
  flags.register_validator(
      "delegate_options",
      _validator(parse_delegate_options),
      flag_values=fv)
  flags.register_validator(
      "max_secs", lambda v: v is None or v > 0,
      message="--max_secs must be > 0 seconds.", flag_values=fv)

  @flags.multi_flags_validator(
      ["num_runs", "max_secs"], flag_values=fv,
      message="--num_runs=0 runs until --max_secs, so give --max_secs too.")
  def _runs_stop(values):  # pylint: disable=unused-variable
    return values["num_runs"] != 0 or values["max_secs"] is not None

  return fv


def config_from_flags(fv):
  """Builds the `BenchmarkConfig` that the parsed flags describe."""
  return harness.BenchmarkConfig(
      num_threads=parse_num_threads(fv.num_threads),
      use_xnnpack=fv.use_xnnpack, use_gpu=fv.use_gpu,
      delegate_path=fv.delegate_path or None,
      delegate_options=parse_delegate_options(fv.delegate_options),
      input_npy=fv.input_npy or None, warmup_runs=fv.warmup_runs,
      num_runs=fv.num_runs or None, max_secs=fv.max_secs, seed=fv.seed)


def run(models, config=None, output_json="", timeout_s=600.0, stream=None):
  """Benchmarks each model, prints the tables and writes the JSON.

  Every file is read and verified before the first benchmark starts, and
  the output location is checked first of all.

  Args:
    models: .tflite file paths (one or more).
    config: a `BenchmarkConfig`; None for the defaults.
    output_json: path of the JSON report (written atomically); empty or
      None to skip writing.
    timeout_s: seconds before a benchmark's child process is killed.
    stream: where to print; defaults to `sys.stdout`.

  Returns:
    The list of reports (see `benchmark_model`).

  Raises:
    UserInputError: for no models, a missing, corrupt or non-TFLite file,
      bad options, or an unwritable output path.
  """
  if not models:
    raise UserInputError(
        "no model given; pass one or more .tflite files, e.g. "
        "`python -m tf_compress.benchmark model.tflite`.")
  if output_json:
    io_utils.check_writable_file(output_json, what="--output_json")
  for model in models:
    litert.verify_flatbuffer(*litert.read_model_bytes(model))
  stream = sys.stdout if stream is None else stream
  reports = []
  for model in models:
    report = harness.benchmark_model(model, config, timeout_s=timeout_s)
    print(format_lib.format_report(report), file=stream, flush=True)
    print(file=stream)
    reports.append(report)
  if output_json:
    try:
      io_utils.atomic_write_json(output_json, {"models": reports})
    except OSError as e:
      raise UserInputError(
          f"could not write --output_json '{output_json}': "
          f"{e.strerror or e}.") from e
    print(f"Wrote {output_json}", file=stream)
  return reports


def run_from_flags(models, flag_values=None):
  """Calls `run` with parsed flag values; returns the exit code.

  Args:
    models: the .tflite paths (the positional arguments).
    flag_values: parsed `flags.FlagValues` holding this tool's flags;
      defaults to `flags.FLAGS`.

  Returns:
    0 on success; 2 after printing one `error: ...` line to stderr for a
    `UserInputError`.
  """
  fv = FLAGS if flag_values is None else flag_values
  try:
    run(models, config_from_flags(fv), output_json=fv.output_json,
        timeout_s=fv.timeout_s)
  except UserInputError as e:
    return common.report_user_error(e)
  return 0


def main(argv):
  """The absl entry point; returns the exit code."""
  return run_from_flags(argv[1:], FLAGS)


def entry_point():
  """Console-script entry point."""
  common.run_command(main, define_flags)


if __name__ == "__main__":
  entry_point()
