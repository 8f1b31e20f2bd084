"""`python -m tf_compress.train`: train, compress, evaluate and report.

Example:
  python -m tf_compress.train --dataset=digits --output_dir=/tmp/run
  python -m tf_compress.train --flagfile=run.flags

Bad input (flags, dataset, model, output directory) prints one line starting
with `error:` and exits with code 2.
"""

import sys

from absl import app
from absl import flags

from tf_compress import cli_utils
from tf_compress import config as config_lib
from tf_compress.cli_utils import parse_flags_or_exit
from tf_compress.cli_utils import report_user_error
from tf_compress.analysis import format_comparison
from tf_compress.errors import UserInputError
from tf_compress.runner import run

_DEFAULTS = config_lib.TrainConfig()

_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", _DEFAULTS.output_dir,
    "Directory for report.json, the saved models, history and plots.")
_DATASET = flags.DEFINE_string(
    "dataset", _DEFAULTS.dataset,
    "digits, iris, wine, breast_cancer, mnist, fashion_mnist, cifar10, "
    "cifar100, tfds:NAME, a .npz file (x_train, y_train, x_test, y_test) or "
    "an image directory with one subfolder per class.")
_IMAGE_SIZE = flags.DEFINE_string(
    "image_size", None, "HEIGHT,WIDTH to resize image-directory inputs to; "
    "default: the size recommended by the dataset analysis.")
_VALIDATION_FRACTION = flags.DEFINE_float(
    "validation_fraction", _DEFAULTS.validation_fraction,
    "Share of the samples held out for validation.", lower_bound=0.0,
    upper_bound=0.9)
_TEST_FRACTION = flags.DEFINE_float(
    "test_fraction", _DEFAULTS.test_fraction,
    "Share of the samples held out for testing (when the source has no "
    "test split).", lower_bound=0.0, upper_bound=0.9)
_NORMALIZATION = flags.DEFINE_enum(
    "normalization", _DEFAULTS.normalization, config_lib.NORMALIZATIONS,
    "scale: to [0, 1]; standardize: per-channel zero mean, unit variance.")
_MODEL = flags.DEFINE_string(
    "model", _DEFAULTS.model,
    "A registered model name (cnn, cnn_bn, mlp) or a saved Keras model path.")
_WIDTH = flags.DEFINE_float(
    "width", _DEFAULTS.width, "Width multiplier of a registered model.",
    lower_bound=0.01, upper_bound=64.0)
_EPOCHS = flags.DEFINE_integer("epochs", _DEFAULTS.epochs,
                               "Training epochs of the baseline.",
                               lower_bound=1, upper_bound=100000)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size,
                                   "Global batch size.", lower_bound=1)
_LEARNING_RATE = flags.DEFINE_float("learning_rate", _DEFAULTS.learning_rate,
                                    "Optimizer learning rate.",
                                    lower_bound=1e-12, upper_bound=10.0)
_OPTIMIZER = flags.DEFINE_enum("optimizer", _DEFAULTS.optimizer,
                               config_lib.OPTIMIZERS, "Optimizer.")
_CLASS_WEIGHT = flags.DEFINE_enum(
    "class_weight", _DEFAULTS.class_weight, config_lib.CLASS_WEIGHTS,
    "balanced: weight classes by n / (classes * count) of the training split.")
_TOP_K = flags.DEFINE_integer("top_k", _DEFAULTS.top_k,
                              "K of the reported top-K accuracy.",
                              lower_bound=1)
_SEED = flags.DEFINE_integer("seed", _DEFAULTS.seed,
                             "Seeds every random number generator.",
                             lower_bound=0, upper_bound=2**31 - 1)
_DETERMINISTIC = flags.DEFINE_boolean(
    "deterministic", _DEFAULTS.deterministic,
    "Turn on TensorFlow op determinism: same seed, identical results.")
_STRATEGY = flags.DEFINE_enum(
    "strategy", _DEFAULTS.strategy, ("default", "mirrored"),
    "mirrored: data-parallel over GPUs, or over --num_cpu_devices logical "
    "CPU devices.")
_NUM_CPU_DEVICES = flags.DEFINE_integer(
    "num_cpu_devices", _DEFAULTS.num_cpu_devices,
    "Logical CPU devices for --strategy=mirrored on a machine without GPUs.",
    lower_bound=1, upper_bound=64)
_VERBOSE = flags.DEFINE_integer(
    "verbose", _DEFAULTS.verbose,
    "Keras verbosity: 0 silent, 1 progress bar, 2 one line per epoch.",
    lower_bound=0, upper_bound=2)

_PRUNE_SPARSITY = flags.DEFINE_float(
    "prune_sparsity", None, "Target sparsity of the `pruned` variant "
    "(magnitude pruning with tfmot); unset: no pruned variant.",
    lower_bound=0.0, upper_bound=0.99)
_PRUNE_SCHEDULE = flags.DEFINE_enum(
    "prune_schedule", _DEFAULTS.prune_schedule, config_lib.PRUNE_SCHEDULES,
    "Sparsity schedule over the fine-tuning epochs.")
_PRUNE_BEGIN_EPOCH = flags.DEFINE_float(
    "prune_begin_epoch", _DEFAULTS.prune_begin_epoch,
    "Fine-tuning epoch at which pruning starts.", lower_bound=0.0)
_PRUNE_END_EPOCH = flags.DEFINE_float(
    "prune_end_epoch", None, "Epoch at which the target sparsity is "
    "reached; default: two thirds of --finetune_epochs.", lower_bound=0.0)
_PRUNE_FREQUENCY = flags.DEFINE_integer(
    "prune_frequency", _DEFAULTS.prune_frequency,
    "Optimizer steps between pruning mask updates.", lower_bound=1)
_PRUNE_SCOPE = flags.DEFINE_enum(
    "prune_scope", _DEFAULTS.prune_scope, config_lib.PRUNE_SCOPES,
    "layer: every layer reaches the target; global: one magnitude "
    "threshold across all pruned layers.")
_PRUNE_M_BY_N = flags.DEFINE_string(
    "prune_m_by_n", None, "Structured M:N sparsity such as 2:4 (M zeros in "
    "every N weights), with tfmot's sparsity_m_by_n.")
_PRUNE_BLOCK = flags.DEFINE_string(
    "prune_block", None, "Block shape HxW such as 4x1 for block-sparse "
    "pruning of Dense kernels (conv kernels stay unstructured).")
_SLICE_RATIO = flags.DEFINE_float(
    "slice_ratio", None, "Share of the filters/units to remove for the "
    "`sliced` variant; unset: no sliced variant.", lower_bound=0.0,
    upper_bound=0.99)
_SLICE_CRITERION = flags.DEFINE_enum(
    "slice_criterion", _DEFAULTS.slice_criterion, config_lib.SLICE_CRITERIA,
    "How filters are ranked for slicing.")
_FINETUNE_EPOCHS = flags.DEFINE_integer(
    "finetune_epochs", _DEFAULTS.finetune_epochs,
    "Fine-tuning epochs of each compressed variant.", lower_bound=1)

_EXPORT = flags.DEFINE_list(
    "export", list(_DEFAULTS.export),
    "Comma-separated TFLite modes to export and verify every variant in: "
    f"{', '.join(config_lib.EXPORT_MODES)}; --export= for none.")
_INT8_IO = flags.DEFINE_boolean(
    "int8_io", _DEFAULTS.int8_io,
    "int8 input and output tensors for the int8 exports.")

_QAT = flags.DEFINE_boolean(
    "qat", _DEFAULTS.qat, "Add the `qat` variant: quantization-aware "
    "fine-tuning of the baseline with tfmot.")
_QAT_SCHEME = flags.DEFINE_enum(
    "qat_scheme", _DEFAULTS.qat_scheme, config_lib.QAT_SCHEMES,
    "8bit: tfmot's default; 16x8: 16-bit activations, 8-bit weights.")
_QAT_FREEZE_EPOCH = flags.DEFINE_integer(
    "qat_freeze_epoch", None, "Fine-tuning epoch from which quantizer ranges "
    "and BatchNorm statistics are frozen.", lower_bound=0)
_CLUSTER_COUNT = flags.DEFINE_integer(
    "cluster_count", None, "Centroids per weight for the `clustered` "
    "variant (tfmot weight clustering); unset: no clustered variant.",
    lower_bound=2)
_CLUSTER_INIT = flags.DEFINE_enum(
    "cluster_init", _DEFAULTS.cluster_init, config_lib.CLUSTER_INITS,
    "Centroid initialisation.")
_DISTILL = flags.DEFINE_boolean(
    "distill", _DEFAULTS.distill, "Add the `distilled` variant (a student "
    "trained under the teacher) and `student_scratch` (the same student "
    "without a teacher).")
_DISTILL_TEACHER = flags.DEFINE_string(
    "distill_teacher", _DEFAULTS.distill_teacher,
    "`baseline` or the path of a saved teacher model.")
_DISTILL_STUDENT = flags.DEFINE_string(
    "distill_student", _DEFAULTS.distill_student,
    "A registered model name or a width multiplier of the default CNN.")
_DISTILL_TEMPERATURE = flags.DEFINE_float(
    "distill_temperature", _DEFAULTS.distill_temperature,
    "Distillation temperature (> 0).")
_DISTILL_ALPHA = flags.DEFINE_float(
    "distill_alpha", _DEFAULTS.distill_alpha,
    "Weight of the hard-label loss.", lower_bound=0.0, upper_bound=1.0)
_ADV_ATTACK = flags.DEFINE_enum(
    "adv_attack", None, config_lib.ADV_ATTACKS,
    "Attack for the `adversarial` variant; unset: no adversarial training.")
_ADV_EPSILON = flags.DEFINE_float(
    "adv_epsilon", _DEFAULTS.adv_epsilon,
    "L-infinity radius of the training perturbation (inputs in [0, 1]).",
    lower_bound=0.0)
_ADV_STEPS = flags.DEFINE_integer("adv_steps", _DEFAULTS.adv_steps,
                                  "PGD steps.", lower_bound=1)
_ADV_STEP_SIZE = flags.DEFINE_float(
    "adv_step_size", None, "PGD step size; default 2.5 * epsilon / steps.")
_ADV_RATIO = flags.DEFINE_float(
    "adv_ratio", _DEFAULTS.adv_ratio, "Share of the adversarial loss.",
    lower_bound=0.0, upper_bound=1.0)
_ADV_WARMUP_EPOCHS = flags.DEFINE_integer(
    "adv_warmup_epochs", _DEFAULTS.adv_warmup_epochs,
    "Epochs over which epsilon ramps up.", lower_bound=0)
_ROBUST_EVAL_EPSILONS = flags.DEFINE_list(
    "robust_eval_epsilons", [],
    "Epsilons of the FGSM and PGD-20 robustness evaluation of every variant "
    "and export, e.g. 0.1,0.2.")
_BENCHMARK_RUNS = flags.DEFINE_integer(
    "benchmark_runs", _DEFAULTS.benchmark_runs,
    "Timed LiteRT runs per exported file (batch 1); 0 skips latency.",
    lower_bound=0)
_BENCHMARK_WARMUP = flags.DEFINE_integer(
    "benchmark_warmup", _DEFAULTS.benchmark_warmup,
    "Warm-up runs before timing.", lower_bound=0)
_BENCHMARK_THREADS = flags.DEFINE_list(
    "benchmark_threads", [str(t) for t in _DEFAULTS.benchmark_threads],
    "CPU thread counts to sweep, e.g. 1,2.")
_USE_GPU = flags.DEFINE_boolean(
    "use_gpu", _DEFAULTS.use_gpu,
    "Also benchmark on the LiteRT GPU accelerator (reported unavailable, "
    "with the runtime's reason, where there is no GPU).")
_COMBINE = flags.DEFINE_boolean(
    "combine", _DEFAULTS.combine,
    "Add the `combined` variant: every configured method (distil, "
    "adversarial, slice, prune, cluster, QAT) applied one after another.")
_SWEEP_SPARSITY = flags.DEFINE_list(
    "sweep_sparsity", [],
    "Params-vs-accuracy sweep: one pruned variant per target sparsity, "
    "e.g. 0.5,0.7,0.8,0.9,0.95.")
_SWEEP_SLICE = flags.DEFINE_list(
    "sweep_slice", [],
    "Sweep of slice ratios: one sliced variant per ratio, e.g. 0.25,0.5.")


flags.register_validator("image_size", cli_utils.image_size_validator)


@flags.multi_flags_validator(
    ["validation_fraction", "test_fraction"],
    message="--validation_fraction + --test_fraction must be below 1")
def _check_fractions(values):
  return values["validation_fraction"] + values["test_fraction"] < 1.0


@flags.multi_flags_validator(
    ["prune_begin_epoch", "prune_end_epoch", "finetune_epochs"],
    message="--prune_end_epoch must be after --prune_begin_epoch and at most "
    "--finetune_epochs")
def _check_prune_epochs(values):
  end = values["prune_end_epoch"]
  return end is None or (values["prune_begin_epoch"] < end <=
                         values["finetune_epochs"])


@flags.validator("export", message="--export takes modes from "
                 f"{', '.join(config_lib.EXPORT_MODES)}, without repeats")
def _check_export(value):
  return (all(m in config_lib.EXPORT_MODES for m in value) and
          len(set(value)) == len(value))


@flags.validator("benchmark_threads", message="--benchmark_threads must be "
                 "a list of thread counts >= 1, such as 1,2")
def _check_threads(value):
  return bool(value) and all(v.isdigit() and int(v) >= 1 for v in value)


@flags.multi_flags_validator(
    ["qat_freeze_epoch", "finetune_epochs"],
    message="--qat_freeze_epoch must be below --finetune_epochs")
def _check_freeze_epoch(values):
  freeze = values["qat_freeze_epoch"]
  return freeze is None or freeze < values["finetune_epochs"]


@flags.validator("robust_eval_epsilons", message="--robust_eval_epsilons "
                 "must be a list of numbers >= 0, such as 0.1,0.2")
def _check_epsilons(value):
  try:
    return all(float(v) >= 0 for v in value)
  except ValueError:
    return False


@flags.validator("distill_temperature",
                 message="--distill_temperature must be > 0")
def _check_temperature(value):
  return value > 0


@flags.validator("prune_m_by_n", message="--prune_m_by_n must be M:N with "
                 "0 < M < N, such as 2:4")
def _check_m_by_n(value):
  if value is None:
    return True
  parts = value.split(":")
  return (len(parts) == 2 and all(p.isdigit() for p in parts) and
          0 < int(parts[0]) < int(parts[1]))


@flags.validator("prune_block", message="--prune_block must be HxW with "
                 "H, W >= 1, such as 4x1")
def _check_prune_block(value):
  if value is None:
    return True
  parts = value.split("x")
  return len(parts) == 2 and all(p.isdigit() and int(p) >= 1 for p in parts)


def _levels_ok(value):
  try:
    levels = [float(v) for v in value]
  except ValueError:
    return False
  return all(0 <= v < 1 for v in levels) and len(set(levels)) == len(levels)


flags.register_validator(
    "sweep_sparsity", _levels_ok,
    message="--sweep_sparsity must be distinct sparsities in [0, 1), such as "
    "0.5,0.8,0.9")
flags.register_validator(
    "sweep_slice", _levels_ok,
    message="--sweep_slice must be distinct ratios in [0, 1), such as "
    "0.25,0.5")


def config_from_flags():
  """Returns the `TrainConfig` that the parsed flags describe."""
  return config_lib.TrainConfig(
      output_dir=_OUTPUT_DIR.value,
      dataset=_DATASET.value,
      image_size=cli_utils.parse_image_size(_IMAGE_SIZE.value),
      validation_fraction=_VALIDATION_FRACTION.value,
      test_fraction=_TEST_FRACTION.value,
      normalization=_NORMALIZATION.value,
      model=_MODEL.value,
      width=_WIDTH.value,
      epochs=_EPOCHS.value,
      batch_size=_BATCH_SIZE.value,
      learning_rate=_LEARNING_RATE.value,
      optimizer=_OPTIMIZER.value,
      class_weight=_CLASS_WEIGHT.value,
      top_k=_TOP_K.value,
      seed=_SEED.value,
      deterministic=_DETERMINISTIC.value,
      strategy=_STRATEGY.value,
      num_cpu_devices=_NUM_CPU_DEVICES.value,
      verbose=_VERBOSE.value,
      prune_sparsity=_PRUNE_SPARSITY.value,
      prune_schedule=_PRUNE_SCHEDULE.value,
      prune_begin_epoch=_PRUNE_BEGIN_EPOCH.value,
      prune_end_epoch=_PRUNE_END_EPOCH.value,
      prune_frequency=_PRUNE_FREQUENCY.value,
      prune_scope=_PRUNE_SCOPE.value,
      prune_m_by_n=_PRUNE_M_BY_N.value,
      prune_block=_PRUNE_BLOCK.value,
      slice_ratio=_SLICE_RATIO.value,
      slice_criterion=_SLICE_CRITERION.value,
      finetune_epochs=_FINETUNE_EPOCHS.value,
      export=tuple(_EXPORT.value or ()),
      int8_io=_INT8_IO.value,
      qat=_QAT.value,
      qat_scheme=_QAT_SCHEME.value,
      qat_freeze_epoch=_QAT_FREEZE_EPOCH.value,
      cluster_count=_CLUSTER_COUNT.value,
      cluster_init=_CLUSTER_INIT.value,
      distill=_DISTILL.value,
      distill_teacher=_DISTILL_TEACHER.value,
      distill_student=_DISTILL_STUDENT.value,
      distill_temperature=_DISTILL_TEMPERATURE.value,
      distill_alpha=_DISTILL_ALPHA.value,
      adv_attack=_ADV_ATTACK.value,
      adv_epsilon=_ADV_EPSILON.value,
      adv_steps=_ADV_STEPS.value,
      adv_step_size=_ADV_STEP_SIZE.value,
      adv_ratio=_ADV_RATIO.value,
      adv_warmup_epochs=_ADV_WARMUP_EPOCHS.value,
      robust_eval_epsilons=tuple(float(e) for e in
                                 _ROBUST_EVAL_EPSILONS.value),
      benchmark_runs=_BENCHMARK_RUNS.value,
      benchmark_warmup=_BENCHMARK_WARMUP.value,
      benchmark_threads=tuple(int(t) for t in _BENCHMARK_THREADS.value),
      use_gpu=_USE_GPU.value,
      combine=_COMBINE.value,
      sweep_sparsity=tuple(float(v) for v in _SWEEP_SPARSITY.value),
      sweep_slice=tuple(float(v) for v in _SWEEP_SLICE.value),
  )


def _summary_line(report):
  rows = []
  for variant in report["variants"]:
    rows.append(f"{variant['name']}: top1={variant['top1']:.4f} "
                f"top{variant['top_k']}={variant['topk']:.4f} "
                f"params={variant['params']}")
  return "; ".join(rows)


def main(argv):
  if len(argv) > 1:
    return report_user_error(UserInputError(
        f"unexpected arguments {argv[1:]}: every option is a --flag"))
  try:
    config = config_from_flags()
    report = run(config, argv=sys.argv)
  except UserInputError as exc:
    return report_user_error(exc)
  print(format_comparison(report["comparison"]))
  print(f"wrote {config.output_dir}/report.json; {_summary_line(report)}")
  return 0


def entry_point():
  """Console-script entry point."""
  app.run(main, flags_parser=parse_flags_or_exit)


if __name__ == "__main__":
  entry_point()
