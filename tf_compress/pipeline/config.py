"""The run's configuration: a `RunConfig` made of one config per concern.

Each config is a frozen dataclass that validates itself on construction;
each field is declared once, as an `option` carrying its doc and flag name.
`RunConfig.to_dict()` is the flat `{flag name: value}` view that report.json
records under `config` (its keys are the train command's flags), and
`RunConfig.from_flat(**flags)` / `replace(**flags)` build configs from it.

Example:
  >>> config = RunConfig.from_flat(output_dir="/tmp/run", epochs=10,
  ...                              prune_sparsity=0.8)
  >>> config.prune.sparsity, config.fit.epochs
  (0.8, 10)
"""

import dataclasses
import math
from typing import Optional, Tuple

from tf_compress import pruning
from tf_compress._keras import KERAS_VERSIONS
from tf_compress.analysis.sensitivity import parse_method
from tf_compress.distribute import STRATEGIES
from tf_compress.pruning.pruning_config import SCHEDULES as PRUNE_SCHEDULES
from tf_compress.pruning.pruning_config import SCOPES as PRUNE_SCOPES
from tf_compress.errors import UserInputError
from tf_compress.export import EDGE_QUANTIZER_MODES
from tf_compress.pipeline.fields import config_fail
from tf_compress.pipeline.fields import option
from tf_compress.pipeline.fields import options
from tf_compress.pipeline.fields import parse_image_size
from tf_compress.pipeline.fields import parse_list

__all__ = ["RunConfig", "DataConfig", "FitConfig", "EvalConfig",
           "ExportConfig", "LatencyConfig", "PruneConfig", "SliceConfig",
           "QATConfig", "ClusterConfig", "DistillConfig", "AdversarialConfig",
           "TrainConfig", "NORMALIZATIONS", "CLASS_WEIGHTS", "OPTIMIZERS",
           "STRATEGIES", "PRUNE_SCHEDULES", "PRUNE_SCOPES", "SLICE_CRITERIA",
           "EXPORT_MODES", "ALL_EXPORT_MODES", "QAT_UNEXPORTABLE_MODES",
           "QAT_SCHEMES", "CLUSTER_INITS", "ADV_ATTACKS"]

NORMALIZATIONS = ("scale", "standardize", "none")
CLASS_WEIGHTS = ("none", "balanced")
OPTIMIZERS = ("adam", "sgd", "rmsprop")
SLICE_CRITERIA = ("l1", "l2", "bn_gamma")
EXPORT_MODES = ("float32", "dynamic", "float16", "int8", "int16x8")
# The converter's modes, then the 4-bit ones that ai-edge-quantizer makes
# from the float32 file: every mode `export.export_tflite` takes.
ALL_EXPORT_MODES = EXPORT_MODES + EDGE_QUANTIZER_MODES
# Modes an int8 quantization-aware-trained model has no export in.
QAT_UNEXPORTABLE_MODES = ("int16x8",) + EDGE_QUANTIZER_MODES
QAT_SCHEMES = ("8bit", "16x8")
CLUSTER_INITS = ("kmeans++", "linear", "density", "random")
ADV_ATTACKS = ("fgsm", "pgd")


def _check_int(config, field, low, high=None, optional=False):
  value = getattr(config, field)
  if value is None and optional:
    return
  ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
  if ok and high is not None:
    ok = value <= high
  if not ok:
    bound = f">= {low}" if high is None else f"in [{low}, {high}]"
    config_fail(config, field, value, f"an integer {bound}")


def _check_choice(config, field, choices, optional=False):
  value = getattr(config, field)
  if not (value is None and optional) and value not in choices:
    config_fail(config, field, value, f"one of {choices}")


def _check_fraction(config, field, closed=False, optional=False):
  value = getattr(config, field)
  if value is None and optional:
    return
  ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
      0.0 <= value <= 1.0 if closed else 0.0 <= value < 1.0)
  if not ok:
    config_fail(config, field, value, "in [0, 1]" if closed else "in [0, 1)")


def _check_levels(config, field):
  levels = parse_list(config, field, float)
  if any(not 0.0 <= v < 1.0 for v in levels):
    config_fail(config, field, levels, "levels in [0, 1)")
  if len(set(levels)) != len(levels):
    config_fail(config, field, levels, "a list without repeats")


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Which data, and how it is split and scaled."""
  dataset: str = option(
      "digits", "digits, iris, wine, breast_cancer, digits32 (32x32 colour, "
      "derived from digits), mnist, fashion_mnist, cifar10, cifar100, "
      "tfds:NAME, a .npz file (x_train, y_train, x_test, y_test) or an image "
      "directory with one subfolder per class.")
  image_size: Optional[Tuple[int, int]] = option(
      None, "HEIGHT,WIDTH to resize image-directory inputs to; default: the "
      "size recommended by the dataset analysis.", parse=parse_image_size)
  validation_fraction: float = option(
      0.1, "Share of the samples held out for validation.", lower=0.0,
      upper=0.9)
  test_fraction: float = option(
      0.2, "Share of the samples held out for testing (when the source has "
      "no test split).", lower=0.0, upper=0.9)
  normalization: str = option(
      "scale", "scale: to [0, 1]; standardize: per-channel zero mean, unit "
      "variance.", choices=NORMALIZATIONS)

  def __post_init__(self):
    if not isinstance(self.dataset, str) or not self.dataset:
      config_fail(self, "dataset", self.dataset, "a dataset name or path")
    if self.image_size is not None:
      size = tuple(self.image_size)
      if len(size) != 2 or any(int(d) < 1 for d in size):
        config_fail(self, "image_size", self.image_size,
                    "(height, width), both >= 1")
      object.__setattr__(self, "image_size", tuple(int(d) for d in size))
    _check_fraction(self, "validation_fraction")
    _check_fraction(self, "test_fraction")
    if self.validation_fraction + self.test_fraction >= 1.0:
      config_fail(self, "validation_fraction", self.validation_fraction,
                  "such that --validation_fraction + --test_fraction is "
                  f"below 1 (test_fraction is {self.test_fraction:g})")
    _check_choice(self, "normalization", NORMALIZATIONS)


@dataclasses.dataclass(frozen=True)
class FitConfig:
  """The model and how it (and each compressed variant) is trained."""
  model: str = option(
      "cnn", "A registered model name (cnn, cnn_bn, mlp, mobilenet_v2) or a "
      "saved Keras model path.")
  allow_unsafe_load: bool = option(
      False, "Load --model and --distill_teacher files even when loading "
      "can run code they hold (Lambda layers, full-model .h5 files, "
      "modules outside Keras); only for files you trust.")
  width: float = option(1.0, "Width multiplier of a registered model.",
                       lower=0.01, upper=64.0)
  keras: Optional[int] = option(
      None, "3: build the registered models in Keras 3 and compress them "
      "with the native engine; 2: build them in tf_keras and compress them "
      "through tfmot. Default: 3, or the engine of a saved --model file.",
      lower=2, upper=3)
  epochs: int = option(20, "Training epochs of the baseline.", lower=1,
                       upper=100000)
  finetune_epochs: int = option(
      10, "Fine-tuning epochs of each compressed variant.", lower=1)
  batch_size: int = option(32, "Global batch size.", lower=1)
  learning_rate: float = option(1e-3, "Optimizer learning rate.",
                                lower=1e-12, upper=10.0)
  optimizer: str = option("adam", "Optimizer.", choices=OPTIMIZERS)
  class_weight: str = option(
      "none", "balanced: weight classes by n / (classes * count) of the "
      "training split.", choices=CLASS_WEIGHTS)
  seed: int = option(0, "Seeds every random number generator.", lower=0,
                     upper=2**31 - 1)
  seeds: Tuple[int, ...] = option(
      (), "Run the whole pipeline, baseline included, once per seed (e.g. "
      "0,1,2) into <output_dir>/seed_<s>, and summarise every figure "
      "across them (mean, std, 95% interval); overrides --seed.",
      element=int)
  deterministic: bool = option(
      False, "Turn on TensorFlow op determinism: same seed, identical "
      "results.")
  strategy: str = option(
      "default", "mirrored: data-parallel over GPUs, or over "
      "--num_cpu_devices logical CPU devices; multi_worker: "
      "MultiWorkerMirroredStrategy over the TF_CONFIG cluster (start it "
      "with python -m tf_compress.launch); only the chief writes "
      "--output_dir.", choices=STRATEGIES)
  num_cpu_devices: int = option(
      2, "Logical CPU devices for --strategy=mirrored on a machine without "
      "GPUs.", lower=1, upper=64)
  backup_dir: Optional[str] = option(
      None, "Directory for Keras BackupAndRestore checkpoints of every fit "
      "(one subdirectory per model): a job restarted after a crash resumes "
      "each interrupted fit from its last epoch; unset: no backups.")
  verbose: int = option(
      1, "Keras verbosity: 0 silent, 1 progress bar, 2 one line per epoch.",
      lower=0, upper=2)

  def __post_init__(self):
    if not isinstance(self.model, str) or not self.model:
      config_fail(self, "model", self.model, "a registered name or a path")
    if not self.width > 0:
      config_fail(self, "width", self.width, "> 0")
    _check_choice(self, "keras", KERAS_VERSIONS, optional=True)
    for field in ("epochs", "finetune_epochs", "batch_size",
                  "num_cpu_devices"):
      _check_int(self, field, 1)
    _check_int(self, "seed", 0)
    seeds = parse_list(self, "seeds", int)
    if any(isinstance(v, bool) or not 0 <= v < 2**31 for v in seeds):
      config_fail(self, "seeds", seeds, "seeds in [0, 2**31 - 1]")
    if len(set(seeds)) != len(seeds):
      config_fail(self, "seeds", seeds, "a list without repeats")
    _check_int(self, "verbose", 0, 2)
    if not self.learning_rate > 0:
      config_fail(self, "learning_rate", self.learning_rate, "> 0")
    _check_choice(self, "optimizer", OPTIMIZERS)
    _check_choice(self, "class_weight", CLASS_WEIGHTS)
    _check_choice(self, "strategy", STRATEGIES)
    if self.backup_dir is not None and (
        not isinstance(self.backup_dir, str) or not self.backup_dir):
      config_fail(self, "backup_dir", self.backup_dir, "a non-empty path")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """What every variant and export is measured on besides accuracy."""
  top_k: int = option(3, "K of the reported top-K accuracy.", lower=1)
  robust_eval_epsilons: Tuple[float, ...] = option(
      (), "Epsilons of the FGSM and PGD-20 robustness evaluation of every "
      "variant and export, e.g. 0.1,0.2.", element=float)
  bootstrap_resamples: int = option(
      2000, "Paired bootstrap resamples of each variant's difference from "
      "the baseline (its 95% interval); seeded by --seed.", lower=1)
  sensitivity: Optional[str] = option(
      None, "Per-layer sensitivity of the baseline on the validation split: "
      "int8 (one layer at a time in int8 on LiteRT), prune:S (one kernel "
      "pruned to sparsity S) or cluster:K (K centroids); unset: none.",
      flag="sensitivity")

  def __post_init__(self):
    _check_int(self, "top_k", 1)
    _check_int(self, "bootstrap_resamples", 1)
    if self.sensitivity is not None:
      try:
        parse_method(self.sensitivity)
      except UserInputError:
        config_fail(self, "sensitivity", self.sensitivity,
                    "int8, prune:S with S in [0, 1), or cluster:K with K >= "
                    "1")
    epsilons = parse_list(self, "robust_eval_epsilons", float)
    if any(not e >= 0 for e in epsilons):
      config_fail(self, "robust_eval_epsilons", epsilons, "epsilons >= 0")


@dataclasses.dataclass(frozen=True)
class ExportConfig:
  """The TFLite files every variant is exported to and verified in."""
  modes: Tuple[str, ...] = option(
      ("float32", "int8"), "Comma-separated TFLite modes to export and "
      f"verify every variant in: {', '.join(ALL_EXPORT_MODES)} (the int4 "
      "modes quantize the float32 file's weights through "
      "ai-edge-quantizer); --export= for none.", flag="export", element=str)
  int8_io: bool = option(False, "int8 input and output tensors for the "
                         "int8 exports.")

  def __post_init__(self):
    modes = parse_list(self, "modes", str)
    for mode in modes:
      if mode not in ALL_EXPORT_MODES:
        config_fail(self, "modes", mode, f"one of {ALL_EXPORT_MODES}")
    if len(set(modes)) != len(modes):
      config_fail(self, "modes", modes, "a list without repeats")


@dataclasses.dataclass(frozen=True)
class LatencyConfig:
  """LiteRT latency of every export (`tf_compress.benchmark`)."""
  FLAG_PREFIX = "benchmark_"
  runs: int = option(50, "Timed LiteRT runs per exported file (batch 1); 0 "
                     "skips latency.", lower=0)
  warmup: int = option(5, "Warm-up runs before timing.", lower=0)
  threads: Tuple[int, ...] = option((1,), "CPU thread counts to sweep, e.g. "
                                    "1,2.", element=int)
  use_gpu: bool = option(
      False, "Also benchmark on the LiteRT GPU accelerator (reported "
      "unavailable, with the runtime's reason, where there is no GPU).",
      flag="use_gpu")

  def __post_init__(self):
    _check_int(self, "runs", 0)
    _check_int(self, "warmup", 0)
    threads = parse_list(self, "threads", int)
    if not threads or min(threads) < 1:
      config_fail(self, "threads", threads,
                  "one or more thread counts >= 1, such as 1,2")


@dataclasses.dataclass(frozen=True)
class PruneConfig:
  """Magnitude pruning: the `pruned` variant and the sparsity sweep.

  On when `sparsity` or `m_by_n` is set. `pruning_config(finetune_epochs,
  sparsity)` gives the library's `tf_compress.pruning.PruningConfig`.
  """
  FLAG_PREFIX = "prune_"
  sparsity: Optional[float] = option(
      None, "Target sparsity of the `pruned` variant (magnitude pruning); "
      "unset: no pruned variant.", lower=0.0, upper=0.99)
  schedule: str = option("polynomial", "Sparsity schedule over the "
                         "fine-tuning epochs.", choices=PRUNE_SCHEDULES)
  begin_epoch: float = option(0.0, "Fine-tuning epoch at which pruning "
                              "starts.", lower=0.0)
  end_epoch: Optional[float] = option(
      None, "Epoch at which the target sparsity is reached; default: two "
      "thirds of --finetune_epochs.", lower=0.0)
  frequency: int = option(10, "Optimizer steps between pruning mask "
                          "updates.", lower=1)
  scope: str = option(
      "layer", "layer: every layer reaches the target; global: one "
      "magnitude threshold across all pruned layers.", choices=PRUNE_SCOPES)
  m_by_n: Optional[str] = option(
      None, "Structured M:N sparsity such as 2:4 (M zeros in every N "
      "weights).")
  block: Optional[str] = option(
      None, "Block shape HxW such as 4x1 for block-sparse pruning of Dense "
      "kernels (conv kernels stay unstructured).")
  sweep: Tuple[float, ...] = option(
      (), "Params-vs-accuracy sweep: one pruned variant per target "
      "sparsity, e.g. 0.5,0.7,0.8,0.9,0.95.", flag="sweep_sparsity",
      element=float)

  @property
  def enabled(self):
    return self.sparsity is not None or self.m_by_n is not None

  def __post_init__(self):
    _check_fraction(self, "sparsity", optional=True)
    _check_choice(self, "schedule", PRUNE_SCHEDULES)
    if not self.begin_epoch >= 0:
      config_fail(self, "begin_epoch", self.begin_epoch, ">= 0")
    if self.end_epoch is not None and self.end_epoch <= self.begin_epoch:
      config_fail(self, "end_epoch", self.end_epoch,
                  f"after begin_epoch ({self.begin_epoch:g})")
    _check_int(self, "frequency", 1)
    _check_choice(self, "scope", PRUNE_SCOPES)
    if self.m_by_n is not None:
      # The library's parser is the one grammar (2:4, 2x4, 2,4).
      try:
        pruning.parse_m_by_n(self.m_by_n)
      except UserInputError:
        config_fail(self, "m_by_n", self.m_by_n,
                    "'M:N' with 0 < M < N, such as '2:4'")
    if self.block is not None:
      try:
        pruning.parse_block_size(self.block)
      except UserInputError:
        config_fail(self, "block", self.block,
                    "'HxW' with H, W >= 1, such as '4x1'")
      if self.m_by_n is not None or self.scope == "global":
        config_fail(self, "block", self.block,
                    "None with prune_m_by_n or prune_scope='global'")
    _check_levels(self, "sweep")

  def check_fit(self, fit):
    """Checks the epochs against the fine-tuning length."""
    if self.end_epoch is not None and self.end_epoch > fit.finetune_epochs:
      config_fail(self, "end_epoch", self.end_epoch,
                  f"at most finetune_epochs ({fit.finetune_epochs})")
    if self.enabled and self.begin_epoch >= fit.finetune_epochs:
      config_fail(self, "begin_epoch", self.begin_epoch,
                  f"before finetune_epochs ({fit.finetune_epochs})")

  def pruning_config(self, finetune_epochs):
    """The library's `PruningConfig` for a fine-tuning of that length."""
    end = self.end_epoch
    if end is None and self.schedule == "polynomial":
      # Reach the target with a third of the fine-tuning left to recover.
      end = max(self.begin_epoch + 1, math.ceil(finetune_epochs * 2 / 3))
    return pruning.PruningConfig(
        target_sparsity=self.sparsity, schedule=self.schedule,
        begin_epoch=self.begin_epoch, end_epoch=end,
        frequency=self.frequency, scope=self.scope, m_by_n=self.m_by_n,
        block_size=self.block or (1, 1))


@dataclasses.dataclass(frozen=True)
class SliceConfig:
  """Structured slicing (filters removed): the `sliced` variant and sweep."""
  FLAG_PREFIX = "slice_"
  ratio: Optional[float] = option(
      None, "Share of the filters/units to remove for the `sliced` variant; "
      "unset: no sliced variant.", lower=0.0, upper=0.99)
  criterion: str = option("l1", "How filters are ranked for slicing.",
                          choices=SLICE_CRITERIA)
  sweep: Tuple[float, ...] = option(
      (), "Sweep of slice ratios: one sliced variant per ratio, e.g. "
      "0.25,0.5.", flag="sweep_slice", element=float)

  @property
  def enabled(self):
    return self.ratio is not None

  def __post_init__(self):
    _check_fraction(self, "ratio", optional=True)
    _check_choice(self, "criterion", SLICE_CRITERIA)
    _check_levels(self, "sweep")


@dataclasses.dataclass(frozen=True)
class QATConfig:
  """Quantization-aware fine-tuning: the `qat` variant."""
  FLAG_PREFIX = "qat_"
  enabled: bool = option(False, "Add the `qat` variant: quantization-aware "
                         "fine-tuning of the baseline.", flag="qat")
  scheme: str = option("8bit", "8bit: int8 weights and activations; 16x8: "
                       "16-bit activations, 8-bit weights.",
                       choices=QAT_SCHEMES)
  freeze_epoch: Optional[int] = option(
      None, "Fine-tuning epoch from which quantizer ranges and BatchNorm "
      "statistics are frozen.", lower=0)

  def __post_init__(self):
    _check_choice(self, "scheme", QAT_SCHEMES)
    _check_int(self, "freeze_epoch", 0, optional=True)

  def check_fit(self, fit):
    if self.freeze_epoch is not None and (
        self.freeze_epoch >= fit.finetune_epochs):
      config_fail(self, "freeze_epoch", self.freeze_epoch,
                  f"in [0, finetune_epochs={fit.finetune_epochs})")


@dataclasses.dataclass(frozen=True)
class ClusterConfig:
  """Weight clustering: the `clustered` variant."""
  FLAG_PREFIX = "cluster_"
  count: Optional[int] = option(
      None, "Centroids per weight for the `clustered` variant (weight "
      "clustering); unset: no clustered variant.", lower=2)
  init: str = option("kmeans++", "Centroid initialisation.",
                     choices=CLUSTER_INITS)

  @property
  def enabled(self):
    return self.count is not None

  def __post_init__(self):
    _check_int(self, "count", 2, optional=True)
    _check_choice(self, "init", CLUSTER_INITS)


@dataclasses.dataclass(frozen=True)
class DistillConfig:
  """Distillation: the `distilled` variant and its `student_scratch` control."""
  FLAG_PREFIX = "distill_"
  enabled: bool = option(
      False, "Add the `distilled` variant (a student trained under the "
      "teacher) and `student_scratch` (the same student without a "
      "teacher).", flag="distill")
  teacher: str = option("baseline", "`baseline` or the path of a saved "
                        "teacher model.")
  student: str = option("0.25", "A registered model name or a width "
                        "multiplier of the default CNN.")
  # T=2 with equal hard and soft weights: on digits and digits32 it beat
  # T=4/alpha=0.1 on validation at student widths 0.25 and 0.5
  # (benchmarks/distill_sweep.py).
  temperature: float = option(2.0, "Distillation temperature (> 0).")
  alpha: float = option(0.5, "Weight of the hard-label loss.", lower=0.0,
                        upper=1.0)

  def __post_init__(self):
    if not self.temperature > 0:
      config_fail(self, "temperature", self.temperature, "> 0")
    _check_fraction(self, "alpha", closed=True)


@dataclasses.dataclass(frozen=True)
class AdversarialConfig:
  """Adversarial fine-tuning: the `adversarial` variant."""
  FLAG_PREFIX = "adv_"
  attack: Optional[str] = option(
      None, "Attack for the `adversarial` variant; unset: no adversarial "
      "training.", choices=ADV_ATTACKS)
  epsilon: float = option(0.1, "L-infinity radius of the training "
                          "perturbation (inputs in [0, 1]).", lower=0.0)
  steps: int = option(5, "PGD steps.", lower=1)
  step_size: Optional[float] = option(None, "PGD step size; default 2.5 * "
                                      "epsilon / steps.")
  ratio: float = option(0.5, "Share of the adversarial loss.", lower=0.0,
                        upper=1.0)
  warmup_epochs: int = option(0, "Epochs over which epsilon ramps up.",
                              lower=0)

  @property
  def enabled(self):
    return self.attack is not None

  def __post_init__(self):
    _check_choice(self, "attack", ADV_ATTACKS, optional=True)
    if not self.epsilon >= 0:
      config_fail(self, "epsilon", self.epsilon, ">= 0")
    _check_int(self, "steps", 1)
    if self.step_size is not None and not self.step_size > 0:
      config_fail(self, "step_size", self.step_size, "> 0")
    if not 0.0 < self.ratio <= 1.0:
      config_fail(self, "ratio", self.ratio, "in (0, 1]")
    _check_int(self, "warmup_epochs", 0)

  def check_fit(self, fit):
    if self.warmup_epochs > fit.finetune_epochs:
      config_fail(self, "warmup_epochs", self.warmup_epochs,
                  f"in [0, finetune_epochs={fit.finetune_epochs}]")


_SECTIONS = ("data", "fit", "eval", "export", "latency", "prune", "slice",
             "qat", "cluster", "distill", "adversarial")


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """Everything `tf_compress.pipeline.run` needs, one config per concern.

  Attributes:
    output_dir: where report.json, the models, exports and plots go.
    data: the dataset and its splits.
    fit: the model and its training.
    eval: top-K and robustness evaluation.
    export: the TFLite modes.
    latency: LiteRT benchmarking of each export.
    prune, slice, qat, cluster, distill, adversarial: one config per
      method (see `tf_compress.pipeline.methods`); a method runs when its
      config is `enabled`.
    combine: add the `combined` variant, every enabled method applied one
      after another.
  """
  output_dir: str = option("tf_compress_run", "Directory for report.json, "
                           "the saved models, history and plots.")
  data: DataConfig = dataclasses.field(default_factory=DataConfig)
  fit: FitConfig = dataclasses.field(default_factory=FitConfig)
  eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
  export: ExportConfig = dataclasses.field(default_factory=ExportConfig)
  latency: LatencyConfig = dataclasses.field(default_factory=LatencyConfig)
  prune: PruneConfig = dataclasses.field(default_factory=PruneConfig)
  slice: SliceConfig = dataclasses.field(default_factory=SliceConfig)
  qat: QATConfig = dataclasses.field(default_factory=QATConfig)
  cluster: ClusterConfig = dataclasses.field(default_factory=ClusterConfig)
  distill: DistillConfig = dataclasses.field(default_factory=DistillConfig)
  adversarial: AdversarialConfig = dataclasses.field(
      default_factory=AdversarialConfig)
  combine: bool = option(
      False, "Add the `combined` variant: every configured method (distil, "
      "adversarial, slice, prune, cluster, QAT) applied one after another.")

  def __post_init__(self):
    if not isinstance(self.output_dir, str) or not self.output_dir:
      config_fail(self, "output_dir", self.output_dir, "a non-empty path")
    for section in _SECTIONS:
      value = getattr(self, section)
      expected = typing_section(section)
      if not isinstance(value, expected):
        config_fail(self, section, value, f"a {expected.__name__}")
      check = getattr(value, "check_fit", None)
      if check is not None:
        check(self.fit)
    if self.qat.enabled and self.qat.scheme == "8bit":
      bad = [m for m in self.export.modes if m in QAT_UNEXPORTABLE_MODES]
      if bad:
        raise UserInputError(
            f"--qat trains int8 fake quantization, so the `qat` variant "
            f"cannot be exported as {', '.join(bad)} (--export): drop "
            f"{'it' if len(bad) == 1 else 'them'} from --export, or run "
            "without --qat (or with --qat_scheme=16x8 for int16x8)")

  @classmethod
  def from_flat(cls, **flat):
    """Builds a config from `{flag name: value}` (unknown names raise)."""
    return cls().replace(**flat)

  def replace(self, **flat):
    """A copy with the fields of these flag names replaced.

    Raises:
      UserInputError: a name that is no flag of the run.
    """
    by_flag = {opt.flag: opt for opt in options(type(self))}
    unknown = sorted(set(flat) - set(by_flag))
    if unknown:
      raise UserInputError(
          f"unknown RunConfig field(s) {unknown}; fields are named like the "
          "train command's flags, e.g. prune_sparsity")
    nested, top = {}, {}
    for name, value in flat.items():
      path = by_flag[name].path
      if len(path) == 1:
        top[path[0]] = value
      else:
        nested.setdefault(path[0], {})[path[1]] = value
    for section, changes in nested.items():
      top[section] = dataclasses.replace(getattr(self, section), **changes)
    return dataclasses.replace(self, **top)

  def to_dict(self):
    """The flat `{flag name: value}` view, JSON-safe (report.json's config)."""
    data = {}
    for opt in options(type(self)):
      value = self
      for part in opt.path:
        value = getattr(value, part)
      data[opt.flag] = list(value) if isinstance(value, tuple) else value
    return data


def typing_section(section):
  """The config class of a `RunConfig` section."""
  return {f.name: f.default_factory for f in dataclasses.fields(RunConfig)
          if f.default_factory is not dataclasses.MISSING}[section]


def TrainConfig(**flat):  # pylint: disable=invalid-name
  """`RunConfig.from_flat`: a run config from flag-named keywords.

  Kept under its wave-1 name, so `TrainConfig(epochs=10, prune_sparsity=0.8)`
  still builds a run; the result is a `RunConfig`.
  """
  return RunConfig.from_flat(**flat)
