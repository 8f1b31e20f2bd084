"""The configuration of a training run, validated on construction."""

import dataclasses
from typing import Optional, Tuple

from tf_compress.errors import UserInputError

__all__ = ["TrainConfig", "NORMALIZATIONS", "CLASS_WEIGHTS", "OPTIMIZERS",
           "PRUNE_SCHEDULES", "PRUNE_SCOPES", "SLICE_CRITERIA", "EXPORT_MODES",
           "QAT_SCHEMES", "CLUSTER_INITS", "ADV_ATTACKS"]

NORMALIZATIONS = ("scale", "standardize", "none")
CLASS_WEIGHTS = ("none", "balanced")
OPTIMIZERS = ("adam", "sgd", "rmsprop")
PRUNE_SCHEDULES = ("constant", "polynomial")
PRUNE_SCOPES = ("layer", "global")
SLICE_CRITERIA = ("l1", "l2", "bn_gamma")
EXPORT_MODES = ("float32", "dynamic", "float16", "int8", "int16x8")
QAT_SCHEMES = ("8bit", "16x8")
CLUSTER_INITS = ("kmeans++", "linear", "density", "random")
ADV_ATTACKS = ("fgsm", "pgd")


def _fail(field, value, expected):
  raise UserInputError(f"TrainConfig.{field} must be {expected}, got "
                       f"{value!r}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Everything `run()` needs; the train command's flags map onto fields.

  Attributes:
    output_dir: where report.json, the model, history and plots go.
    dataset: a dataset name or path, see `tf_compress.data.load_dataset`.
    image_size: (height, width) to resize image-directory inputs to.
    validation_fraction: share of the samples held out for validation.
    test_fraction: share held out for testing (when the source has none).
    normalization: `scale`, `standardize` or `none`.
    model: a registered model name or the path of a saved Keras model.
    width: width multiplier of a registered model.
    epochs: training epochs of the baseline.
    batch_size: global batch size.
    learning_rate: optimizer learning rate.
    optimizer: `adam`, `sgd` or `rmsprop`.
    class_weight: `none` or `balanced` (weights from the training split).
    top_k: K of the reported top-K accuracy.
    seed: seeds every random number generator.
    deterministic: turn on TensorFlow op determinism.
    strategy: `default` or `mirrored`.
    num_cpu_devices: logical CPU devices for `mirrored` without a GPU.
    verbose: Keras verbosity (0 silent, 1 progress bar, 2 one line/epoch).
    prune_sparsity: target sparsity of the `pruned` variant; None: no
      magnitude pruning (unless `prune_m_by_n` is set).
    prune_schedule: `constant` or `polynomial`.
    prune_begin_epoch: fine-tuning epoch at which pruning starts.
    prune_end_epoch: epoch at which the target is reached; None: two thirds
      of `finetune_epochs` for the polynomial schedule.
    prune_frequency: steps between mask updates.
    prune_scope: `layer` or `global` (one threshold across layers).
    prune_m_by_n: an M:N pattern such as "2:4"; None: unstructured.
    prune_block: block shape "HxW" such as "4x1" for the 2-D (Dense)
      kernels; None: unstructured (conv kernels always are).
    slice_ratio: share of filters/units removed for the `sliced` variant;
      None: no slicing.
    slice_criterion: `l1`, `l2` or `bn_gamma`.
    finetune_epochs: fine-tuning epochs of each compressed variant.
    export: TFLite modes every variant is exported to and verified in.
    int8_io: int8 input and output tensors for the `int8` exports.
    qat: add the `qat` variant (quantization-aware fine-tuning).
    qat_scheme: `8bit` or `16x8` (16-bit activations, 8-bit weights).
    qat_freeze_epoch: fine-tuning epoch from which quantizer ranges and
      BatchNorm statistics are frozen; None: never.
    cluster_count: centroids per weight for the `clustered` variant; None:
      no clustering.
    cluster_init: `kmeans++`, `linear`, `density` or `random`.
    distill: add the `distilled` and `student_scratch` variants.
    distill_teacher: `baseline` or the path of a saved teacher model.
    distill_student: a registered model name, or a width multiplier of
      the default CNN such as "0.25".
    distill_temperature: softmax temperature (> 0).
    distill_alpha: weight of the hard-label loss, in [0, 1].
    adv_attack: `fgsm` or `pgd` to add the `adversarial` variant; None: no
      adversarial training.
    adv_epsilon: L-infinity radius of the training perturbation (>= 0).
    adv_steps: PGD steps.
    adv_step_size: PGD step size; None: 2.5 * epsilon / steps.
    adv_ratio: share of the adversarial loss, in (0, 1].
    adv_warmup_epochs: epochs over which epsilon ramps up.
    robust_eval_epsilons: epsilons of the FGSM/PGD-20 robustness
      evaluation of every variant and export; empty: none.
    benchmark_runs: timed LiteRT runs per exported file; 0 skips latency.
    benchmark_warmup: warm-up runs before timing.
    benchmark_threads: CPU thread counts swept (XNNPACK).
    use_gpu: also try the LiteRT GPU accelerator (reports unavailable with
      the runtime's reason where there is no GPU).
    combine: add the `combined` variant, every configured method applied
      one after another (see `tf_compress.chain`).
    sweep_sparsity: target sparsities of a params-vs-accuracy sweep: one
      pruned variant `pruned_<percent>` per level, from the same baseline.
    sweep_slice: slice ratios of a sweep: one `sliced_<percent>` per level.
  """
  output_dir: str = "tf_compress_run"
  dataset: str = "digits"
  image_size: Optional[Tuple[int, int]] = None
  validation_fraction: float = 0.1
  test_fraction: float = 0.2
  normalization: str = "scale"
  model: str = "cnn"
  width: float = 1.0
  epochs: int = 20
  batch_size: int = 32
  learning_rate: float = 1e-3
  optimizer: str = "adam"
  class_weight: str = "none"
  top_k: int = 3
  seed: int = 0
  deterministic: bool = False
  strategy: str = "default"
  num_cpu_devices: int = 2
  verbose: int = 1
  prune_sparsity: Optional[float] = None
  prune_schedule: str = "polynomial"
  prune_begin_epoch: float = 0.0
  prune_end_epoch: Optional[float] = None
  prune_frequency: int = 10
  prune_scope: str = "layer"
  prune_m_by_n: Optional[str] = None
  prune_block: Optional[str] = None
  slice_ratio: Optional[float] = None
  slice_criterion: str = "l1"
  finetune_epochs: int = 10
  export: Tuple[str, ...] = ("float32", "int8")
  int8_io: bool = False
  qat: bool = False
  qat_scheme: str = "8bit"
  qat_freeze_epoch: Optional[int] = None
  cluster_count: Optional[int] = None
  cluster_init: str = "kmeans++"
  distill: bool = False
  distill_teacher: str = "baseline"
  distill_student: str = "0.25"
  distill_temperature: float = 4.0
  distill_alpha: float = 0.1
  adv_attack: Optional[str] = None
  adv_epsilon: float = 0.1
  adv_steps: int = 5
  adv_step_size: Optional[float] = None
  adv_ratio: float = 0.5
  adv_warmup_epochs: int = 0
  robust_eval_epsilons: Tuple[float, ...] = ()
  benchmark_runs: int = 50
  benchmark_warmup: int = 5
  benchmark_threads: Tuple[int, ...] = (1,)
  use_gpu: bool = False
  combine: bool = False
  sweep_sparsity: Tuple[float, ...] = ()
  sweep_slice: Tuple[float, ...] = ()

  def __post_init__(self):
    if not isinstance(self.output_dir, str) or not self.output_dir:
      _fail("output_dir", self.output_dir, "a non-empty path")
    if not isinstance(self.dataset, str) or not self.dataset:
      _fail("dataset", self.dataset, "a dataset name or path")
    if self.image_size is not None:
      size = tuple(self.image_size)
      if len(size) != 2 or any(int(d) < 1 for d in size):
        _fail("image_size", self.image_size, "(height, width), both >= 1")
    if not 0.0 <= self.validation_fraction < 1.0:
      _fail("validation_fraction", self.validation_fraction, "in [0, 1)")
    if not 0.0 <= self.test_fraction < 1.0:
      _fail("test_fraction", self.test_fraction, "in [0, 1)")
    if self.validation_fraction + self.test_fraction >= 1.0:
      _fail("validation_fraction", self.validation_fraction,
            f"less than 1 - test_fraction ({1 - self.test_fraction:g})")
    if self.normalization not in NORMALIZATIONS:
      _fail("normalization", self.normalization, f"one of {NORMALIZATIONS}")
    if not isinstance(self.model, str) or not self.model:
      _fail("model", self.model, "a registered name or a path")
    if not self.width > 0:
      _fail("width", self.width, "> 0")
    if int(self.epochs) < 1:
      _fail("epochs", self.epochs, ">= 1")
    if int(self.batch_size) < 1:
      _fail("batch_size", self.batch_size, ">= 1")
    if not self.learning_rate > 0:
      _fail("learning_rate", self.learning_rate, "> 0")
    if self.optimizer not in OPTIMIZERS:
      _fail("optimizer", self.optimizer, f"one of {OPTIMIZERS}")
    if self.class_weight not in CLASS_WEIGHTS:
      _fail("class_weight", self.class_weight, f"one of {CLASS_WEIGHTS}")
    if int(self.top_k) < 1:
      _fail("top_k", self.top_k, ">= 1")
    if int(self.seed) < 0:
      _fail("seed", self.seed, ">= 0")
    if self.strategy not in ("default", "mirrored"):
      _fail("strategy", self.strategy, "'default' or 'mirrored'")
    if int(self.num_cpu_devices) < 1:
      _fail("num_cpu_devices", self.num_cpu_devices, ">= 1")
    if self.verbose not in (0, 1, 2):
      _fail("verbose", self.verbose, "0, 1 or 2")
    self._check_compression()

  def _check_compression(self):
    """Validates the pruning and slicing fields."""
    if self.prune_sparsity is not None and not (
        0.0 <= self.prune_sparsity < 1.0):
      _fail("prune_sparsity", self.prune_sparsity, "in [0, 1)")
    if self.prune_schedule not in PRUNE_SCHEDULES:
      _fail("prune_schedule", self.prune_schedule,
            f"one of {PRUNE_SCHEDULES}")
    if self.prune_begin_epoch < 0:
      _fail("prune_begin_epoch", self.prune_begin_epoch, ">= 0")
    if self.prune_end_epoch is not None:
      if self.prune_end_epoch <= self.prune_begin_epoch:
        _fail("prune_end_epoch", self.prune_end_epoch,
              f"after prune_begin_epoch ({self.prune_begin_epoch:g})")
      if self.prune_end_epoch > self.finetune_epochs:
        _fail("prune_end_epoch", self.prune_end_epoch,
              f"at most finetune_epochs ({self.finetune_epochs})")
    if self.prune_begin_epoch >= self.finetune_epochs and (
        self.prune_sparsity is not None):
      _fail("prune_begin_epoch", self.prune_begin_epoch,
            f"before finetune_epochs ({self.finetune_epochs})")
    if int(self.prune_frequency) < 1:
      _fail("prune_frequency", self.prune_frequency, ">= 1 (steps)")
    if self.prune_scope not in PRUNE_SCOPES:
      _fail("prune_scope", self.prune_scope, f"one of {PRUNE_SCOPES}")
    if self.prune_m_by_n is not None:
      parts = str(self.prune_m_by_n).split(":")
      if len(parts) != 2 or not all(p.isdigit() for p in parts) or not (
          0 < int(parts[0]) < int(parts[1])):
        _fail("prune_m_by_n", self.prune_m_by_n,
              "'M:N' with 0 < M < N, such as '2:4'")
    if self.prune_block is not None:
      parts = str(self.prune_block).split("x")
      if len(parts) != 2 or not all(p.isdigit() and int(p) >= 1
                                    for p in parts):
        _fail("prune_block", self.prune_block,
              "'HxW' with H, W >= 1, such as '4x1'")
      if self.prune_m_by_n is not None or self.prune_scope == "global":
        _fail("prune_block", self.prune_block,
              "None with prune_m_by_n or prune_scope='global'")
    if self.slice_ratio is not None and not 0.0 <= self.slice_ratio < 1.0:
      _fail("slice_ratio", self.slice_ratio, "in [0, 1)")
    if self.slice_criterion not in SLICE_CRITERIA:
      _fail("slice_criterion", self.slice_criterion,
            f"one of {SLICE_CRITERIA}")
    if int(self.finetune_epochs) < 1:
      _fail("finetune_epochs", self.finetune_epochs, ">= 1")
    if isinstance(self.export, str):
      object.__setattr__(self, "export", tuple(
          m.strip() for m in self.export.split(",") if m.strip()))
    object.__setattr__(self, "export", tuple(self.export))
    for mode in self.export:
      if mode not in EXPORT_MODES:
        _fail("export", mode, f"one of {EXPORT_MODES}")
    if len(set(self.export)) != len(self.export):
      _fail("export", self.export, "a list without repeats")
    if self.qat_scheme not in QAT_SCHEMES:
      _fail("qat_scheme", self.qat_scheme, f"one of {QAT_SCHEMES}")
    if self.qat_freeze_epoch is not None and not (
        0 <= int(self.qat_freeze_epoch) < self.finetune_epochs):
      _fail("qat_freeze_epoch", self.qat_freeze_epoch,
            f"in [0, finetune_epochs={self.finetune_epochs})")
    if self.cluster_count is not None and int(self.cluster_count) < 2:
      _fail("cluster_count", self.cluster_count, ">= 2")
    if self.cluster_init not in CLUSTER_INITS:
      _fail("cluster_init", self.cluster_init, f"one of {CLUSTER_INITS}")
    if not self.distill_temperature > 0:
      _fail("distill_temperature", self.distill_temperature, "> 0")
    if not 0.0 <= self.distill_alpha <= 1.0:
      _fail("distill_alpha", self.distill_alpha, "in [0, 1]")
    if self.adv_attack is not None and self.adv_attack not in ADV_ATTACKS:
      _fail("adv_attack", self.adv_attack, f"one of {ADV_ATTACKS}")
    if not self.adv_epsilon >= 0:
      _fail("adv_epsilon", self.adv_epsilon, ">= 0")
    if int(self.adv_steps) < 1:
      _fail("adv_steps", self.adv_steps, ">= 1")
    if self.adv_step_size is not None and not self.adv_step_size > 0:
      _fail("adv_step_size", self.adv_step_size, "> 0")
    if not 0.0 < self.adv_ratio <= 1.0:
      _fail("adv_ratio", self.adv_ratio, "in (0, 1]")
    if not 0 <= int(self.adv_warmup_epochs) <= self.finetune_epochs:
      _fail("adv_warmup_epochs", self.adv_warmup_epochs,
            f"in [0, finetune_epochs={self.finetune_epochs}]")
    object.__setattr__(self, "robust_eval_epsilons", tuple(
        float(e) for e in self.robust_eval_epsilons))
    if any(not e >= 0 for e in self.robust_eval_epsilons):
      _fail("robust_eval_epsilons", self.robust_eval_epsilons,
            "epsilons >= 0")
    for field, upper in (("sweep_sparsity", "in [0, 1)"),
                         ("sweep_slice", "in [0, 1)")):
      levels = getattr(self, field)
      if isinstance(levels, str):
        levels = [v for v in levels.split(",") if v.strip()]
      try:
        levels = tuple(float(v) for v in levels)
      except (TypeError, ValueError):
        _fail(field, getattr(self, field), "a list of numbers")
      if any(not 0.0 <= v < 1.0 for v in levels):
        _fail(field, levels, f"levels {upper}")
      if len(set(levels)) != len(levels):
        _fail(field, levels, "a list without repeats")
      object.__setattr__(self, field, levels)
    if int(self.benchmark_runs) < 0:
      _fail("benchmark_runs", self.benchmark_runs, ">= 0")
    if int(self.benchmark_warmup) < 0:
      _fail("benchmark_warmup", self.benchmark_warmup, ">= 0")
    object.__setattr__(self, "benchmark_threads",
                       tuple(int(t) for t in self.benchmark_threads))
    if not self.benchmark_threads or min(self.benchmark_threads) < 1:
      _fail("benchmark_threads", self.benchmark_threads,
            "one or more thread counts >= 1")

  def to_dict(self):
    """Returns the fields as a JSON-safe dict."""
    data = dataclasses.asdict(self)
    data["export"] = list(data["export"])
    data["benchmark_threads"] = list(data["benchmark_threads"])
    data["robust_eval_epsilons"] = list(data["robust_eval_epsilons"])
    data["sweep_sparsity"] = list(data["sweep_sparsity"])
    data["sweep_slice"] = list(data["sweep_slice"])
    if data["image_size"] is not None:
      data["image_size"] = list(data["image_size"])
    return data
