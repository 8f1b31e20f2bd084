"""`PruningConfig`: what to prune, how much, and when.

The config is pure data, validated on construction. `make_pruning_schedule`
turns it into a tfmot schedule and `prune_model` applies it to a model.
"""

import dataclasses
import numbers
import re
from typing import Optional, Tuple, Union

from tf_compress.errors import UserInputError

__all__ = ["PruningConfig", "parse_m_by_n", "parse_block_size",
           "SCHEDULES", "SCOPES", "BLOCK_POOLINGS"]

SCHEDULES = ("constant", "polynomial")
SCOPES = ("layer", "global")
BLOCK_POOLINGS = ("AVG", "MAX")


def _fail(field, value, expected):
  raise UserInputError(f"PruningConfig.{field} must be {expected}, got "
                       f"{value!r}")


def _is_number(value):
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value):
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _parse_pair(value, field, form, ignore_case=False):
  """Parses a pair of integers, or a string such as `"2:4"`, into two ints.

  Args:
    value: a pair of integers or a string of two integers separated by `:`,
      `x`, `,` or `/`.
    field: the name to report in error messages.
    form: `(string example, its meaning, the pair's names, pair example)`,
      e.g. `("2:4", "M zeros in every N weights", "M, N", "(2, 4)")`, for
      the messages.
    ignore_case: also accept `X` as the separator.

  Returns:
    A tuple of two Python ints (not range-checked).

  Raises:
    UserInputError: for anything else.
  """
  text, meaning, names, example = form
  original = value
  if isinstance(value, str):
    value = value.strip()
    parts = re.split(r"\s*[:x,/]\s*", value.lower() if ignore_case else value)
    try:
      value = tuple(int(p) for p in parts)
    except ValueError:
      raise UserInputError(
          f"{field} must look like '{text}' ({meaning}), got "
          f"{original!r}") from None
  try:
    pair = tuple(value)
  except TypeError:
    raise UserInputError(
        f"{field} must be a pair ({names}) or a string like '{text}', got "
        f"{original!r}") from None
  if len(pair) != 2 or not all(_is_int(v) for v in pair):
    raise UserInputError(
        f"{field} must be two integers ({names}) such as {example}, got "
        f"{original!r}")
  return int(pair[0]), int(pair[1])


def parse_m_by_n(value, field="m_by_n"):
  """Parses an M:N structured-sparsity pattern (M zeros in every N weights).

  Args:
    value: None, a pair of integers such as `(2, 4)`, or a string such as
      `"2:4"` (also `"2x4"` or `"2,4"`).
    field: the name to report in error messages.

  Returns:
    None, or a tuple `(m, n)` of Python ints with 1 <= m < n.

  Raises:
    UserInputError: for anything else, e.g. `"4:4"` or `"2"`.
  """
  if value is None:
    return None
  m, n = _parse_pair(value, field,
                     ("2:4", "M zeros in every N weights", "M, N", "(2, 4)"))
  if not 1 <= m < n:
    raise UserInputError(
        f"{field} must have 1 <= M < N (M zeros in every N weights), got "
        f"{value!r}; for example (2, 4)")
  return (m, n)


def parse_block_size(value, field="block_size"):
  """Parses a block shape for block-sparse pruning of 2-D kernels.

  Args:
    value: a pair of integers `(height, width)` such as `(4, 1)`, or a string
      such as `"4x1"` (also `"4,1"` or `"4:1"`). Height runs along a Dense
      kernel's input axis, width along its output axis.
    field: the name to report in error messages.

  Returns:
    A tuple `(height, width)` of Python ints, both >= 1.

  Raises:
    UserInputError: for anything else, e.g. `"0x4"` or `"4"`.
  """
  pair = _parse_pair(value, field, ("4x1", "block height x width",
                                     "height, width", "(4, 1)"),
                     ignore_case=True)
  if min(pair) < 1:
    raise UserInputError(
        f"{field} must have height and width >= 1, got {value!r}; for "
        "example (4, 1), or (1, 1) for unstructured pruning")
  return pair


def _as_patterns(field, value):
  if value is None:
    return ()
  if isinstance(value, str):
    value = (value,)
  try:
    items = tuple(value)
  except TypeError:
    _fail(field, value, "a string or a list of strings")
  for item in items:
    if not isinstance(item, str) or not item:
      _fail(field, value, "non-empty strings")
  return items


@dataclasses.dataclass(frozen=True)
class PruningConfig:
  """Magnitude pruning settings (tfmot `prune_low_magnitude` underneath).

  Begin and end may be given in epochs or in steps; a step value wins over
  the epoch value of the same end. Epochs are converted to steps with the
  `steps_per_epoch` given to `prune_model` (derive it from the dataset
  length: `ceil(num_train_samples / batch_size)`).

  Layer selection: every layer with weights is a candidate unless `include`
  or `layer_types` narrow it down; candidates tfmot has nothing to prune in
  (BatchNormalization, activations, pooling...) are skipped silently, while a
  selected custom layer that is not a `tfmot.sparsity.keras.PrunableLayer`
  raises `ModelError`. `keep_first`/`keep_last` default to False, as in tfmot
  (on digits pruning the small logits layer too costs about 0.2 point at 80%
  sparsity); set them to keep the first/last selected layer dense.

  Attributes:
    target_sparsity: final share of zeros in [0, 1). May be left None with
      `m_by_n`, whose sparsity is M/N.
    schedule: `constant` (the target from `begin` on) or `polynomial`
      (tfmot's PolynomialDecay from `initial_sparsity` to the target between
      `begin` and `end`; needs an end).
    initial_sparsity: starting sparsity of the polynomial schedule.
    power: exponent of the polynomial schedule.
    begin_epoch: epoch at which pruning starts (float allowed).
    end_epoch: epoch at which the target is reached (polynomial) or after
      which masks stop changing (constant; None means never).
    begin_step: like `begin_epoch`, in optimizer steps; wins when given.
    end_step: like `end_epoch`, in optimizer steps; wins when given.
    frequency: steps between mask updates. tfmot's default of 100 barely
      updates on small datasets, hence 10.
    scope: `layer` (each layer reaches the target) or `global` (one
      magnitude threshold over all pruned layers; needs `PruningCallback`).
    m_by_n: None, or (M, N) / "M:N": M zeros in every N consecutive weights
      along the input-channel axis (tfmot's `sparsity_m_by_n`; masks are
      fixed at the first training step and the schedule is not used).
    include: regular expressions; when given, a layer is selected only if
      one matches its whole name (or its `outer/inner` path in a nested
      model).
    layer_types: class names such as "Conv2D" or "Dense"; when given, a
      layer is selected only if its class (or a base class) is named.
    keep_first: leave the first selected layer dense.
    keep_last: leave the last selected layer dense.
    block_size: (height, width) or "HxW": prune whole blocks of that shape
      (tfmot's `block_size`), ranked by their pooled magnitude. Applied only
      to layers whose prunable weights are all 2-D with both sides > 1
      (Dense, Embedding); convolutions and other layers keep (1, 1), i.e.
      unstructured, since tfmot's blocks are 2-D only. Height runs along a
      Dense kernel's inputs: TFLite stores a FULLY_CONNECTED kernel as
      (outputs, inputs), so a (4, 1) block is 4 contiguous bytes of an int8
      file, whose zeros gzip compresses better than scattered ones. The
      target is a share of blocks; partial blocks at the edges of a kernel
      whose sides are not multiples of the block make the share of zero
      weights differ slightly. (1, 1) (the default) is unstructured; other
      sizes need `scope="layer"` and no `m_by_n`.
    block_pooling: "AVG" or "MAX": how a block's magnitudes are pooled into
      the one value it is ranked by.

  Example:
    >>> config = PruningConfig(target_sparsity=0.8, schedule="polynomial",
    ...                        end_epoch=4)
    >>> pruned = prune_model(model, config, steps_per_epoch=40)
  """
  target_sparsity: Optional[float] = None
  schedule: str = "constant"
  initial_sparsity: float = 0.0
  power: float = 3
  begin_epoch: float = 0
  end_epoch: Optional[float] = None
  begin_step: Optional[int] = None
  end_step: Optional[int] = None
  frequency: int = 10
  scope: str = "layer"
  m_by_n: Optional[Union[Tuple[int, int], str]] = None
  include: Tuple[str, ...] = ()
  layer_types: Tuple[str, ...] = ()
  keep_first: bool = False
  keep_last: bool = False
  block_size: Union[Tuple[int, int], str] = (1, 1)
  block_pooling: str = "AVG"

  def __post_init__(self):
    set_field = lambda name, value: object.__setattr__(self, name, value)
    set_field("m_by_n", parse_m_by_n(self.m_by_n, "PruningConfig.m_by_n"))
    self._check_sparsity()
    if self.schedule not in SCHEDULES:
      _fail("schedule", self.schedule, f"one of {SCHEDULES}")
    if not _is_number(self.power) or self.power <= 0:
      _fail("power", self.power, "a number > 0")
    self._check_begin_end()
    if not _is_int(self.frequency) or self.frequency < 1:
      _fail("frequency", self.frequency, "an integer >= 1 (steps)")
    if self.scope not in SCOPES:
      _fail("scope", self.scope, f"one of {SCOPES}")
    if self.scope == "global" and self.m_by_n is not None:
      _fail("scope", self.scope,
            "'layer' when m_by_n is set (an M:N pattern is per layer)")
    for field in ("include", "layer_types"):
      set_field(field, _as_patterns(field, getattr(self, field)))
    for pattern in self.include:
      try:
        re.compile(pattern)
      except re.error as exc:
        _fail("include", pattern, f"a valid regular expression ({exc})")
    for field in ("keep_first", "keep_last"):
      if not isinstance(getattr(self, field), bool):
        _fail(field, getattr(self, field), "True or False")
    self._check_block()

  def _check_block(self):
    block = parse_block_size(self.block_size, "PruningConfig.block_size")
    object.__setattr__(self, "block_size", block)
    pooling = self.block_pooling
    if isinstance(pooling, str):
      pooling = pooling.upper()
    if pooling not in BLOCK_POOLINGS:
      _fail("block_pooling", self.block_pooling, f"one of {BLOCK_POOLINGS}")
    object.__setattr__(self, "block_pooling", pooling)
    if block == (1, 1):
      return
    if self.m_by_n is not None:
      _fail("block_size", block,
            f"(1, 1) when m_by_n is set (m_by_n={self.m_by_n} fixes its own "
            "pattern); use one or the other")
    if self.scope == "global":
      _fail("block_size", block,
            "(1, 1) with scope='global' (the global threshold ranks single "
            "weights); use scope='layer' for block pruning")

  def _check_sparsity(self):
    target = self.target_sparsity
    if target is None:
      if self.m_by_n is None:
        _fail("target_sparsity", target,
              "a number in [0, 1) (or set m_by_n, e.g. '2:4')")
      object.__setattr__(self, "target_sparsity",
                         self.m_by_n[0] / self.m_by_n[1])
      target = self.target_sparsity
    if not _is_number(target) or not 0.0 <= target < 1.0:
      _fail("target_sparsity", target, "in [0, 1)")
    if self.m_by_n is not None and abs(
        target - self.m_by_n[0] / self.m_by_n[1]) > 1e-9:
      m, n = self.m_by_n
      _fail("target_sparsity", target,
            f"{m / n:g} (or None) with m_by_n=({m}, {n}), which fixes the "
            "sparsity at M/N")
    if (not _is_number(self.initial_sparsity) or
        not 0.0 <= self.initial_sparsity < 1.0):
      _fail("initial_sparsity", self.initial_sparsity, "in [0, 1)")
    if self.initial_sparsity > target:
      _fail("initial_sparsity", self.initial_sparsity,
            f"<= target_sparsity ({target:g})")

  def _check_begin_end(self):
    for field in ("begin_epoch", "end_epoch"):
      value = getattr(self, field)
      if value is None and field == "end_epoch":
        continue
      if not _is_number(value) or value < 0:
        _fail(field, value, "a number >= 0 (epochs)")
    for field in ("begin_step", "end_step"):
      value = getattr(self, field)
      if value is not None and (not _is_int(value) or value < 0):
        _fail(field, value, "an integer >= 0 (steps)")
    if self.end_epoch is not None and self.end_epoch < self.begin_epoch:
      _fail("end_epoch", self.end_epoch,
            f">= begin_epoch ({self.begin_epoch})")
    if (self.begin_step is not None and self.end_step is not None and
        self.end_step < self.begin_step):
      _fail("end_step", self.end_step, f">= begin_step ({self.begin_step})")
    if (self.schedule == "polynomial" and self.m_by_n is None and
        self.end_epoch is None and self.end_step is None):
      _fail("end_epoch", None,
            "set (or end_step) for schedule='polynomial', which needs an end")

  def to_dict(self):
    """Returns the fields as a JSON-safe dict."""
    data = dataclasses.asdict(self)
    for field in ("m_by_n", "include", "layer_types", "block_size"):
      if data[field] is not None:
        data[field] = list(data[field])
    return data
