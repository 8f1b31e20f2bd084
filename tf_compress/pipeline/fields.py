"""Config fields declared once: default, doc, flag name and bounds together.

Every field of the run's configs is an `option(...)`: a dataclass field whose
metadata holds its one-line doc, its command-line flag name and the bounds or
choices the flag enforces. The command-line layer generates its absl flags
from this metadata, the report records the configs through `flat_items`, and
the tuner and the sweeps override fields by those same flag names.
"""

import dataclasses
import typing

from tf_compress.errors import UserInputError

__all__ = ["option", "Option", "options", "config_fail", "parse_list",
           "parse_image_size"]


def option(default, doc, *, flag=None, lower=None, upper=None, choices=None,
           parse=None, element=None):
  """A config field with its doc and flag.

  Args:
    default: the field's default (also the flag's).
    doc: one line for `--help` and the docs.
    flag: the flag name; default: the owning config's `FLAG_PREFIX` plus
      the field name.
    lower: the flag's lower bound (numbers).
    upper: the flag's upper bound (numbers).
    choices: the allowed values (an enum flag).
    parse: `str -> value` for a flag whose text is not a plain number,
      string or list (e.g. `image_size`).
    element: the element type of a tuple field (`float`, `int`, `str`).

  Returns:
    A `dataclasses.field`.
  """
  meta = {"doc": doc, "flag": flag, "lower": lower, "upper": upper,
          "choices": tuple(choices) if choices is not None else None,
          "parse": parse, "element": element}
  if isinstance(default, (list, dict, set)):
    raise TypeError("option defaults must be immutable (use a tuple)")
  return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class Option:
  """One field as the command line sees it.

  Attributes:
    flag: the flag name (unique across a run's configs).
    path: `(config attribute, field name)`, or `(field name,)` at the top.
    kind: `str`, `int`, `float`, `bool` or `list`.
    optional: True when None is a valid value (the flag may be unset).
    default: the default value.
    doc: the one-line doc.
    lower: lower bound, or None.
    upper: upper bound, or None.
    choices: allowed values, or None.
    parse: the text parser, or None.
    element: the element type of a list, or None.
  """
  flag: str
  path: tuple
  kind: str
  optional: bool
  default: object
  doc: str
  lower: object = None
  upper: object = None
  choices: tuple = None
  parse: object = None
  element: object = None


def _kind(annotation):
  """(kind, optional) of a field annotation."""
  optional = False
  origin = typing.get_origin(annotation)
  if origin is typing.Union:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    optional = len(args) < len(typing.get_args(annotation))
    annotation = args[0]
    origin = typing.get_origin(annotation)
  if origin in (tuple, typing.Tuple):
    return "list", optional
  return {str: "str", int: "int", float: "float", bool: "bool"}[
      annotation], optional


def options(config_cls, prefix=()):
  """The `Option`s of a config class, nested configs included, in order.

  A field whose type is itself a config dataclass contributes that
  config's options (its `FLAG_PREFIX` prepended to their flag names).
  """
  hints = typing.get_type_hints(config_cls)
  out = []
  for field in dataclasses.fields(config_cls):
    kind = hints[field.name]
    if dataclasses.is_dataclass(kind):
      out.extend(options(kind, prefix + (field.name,)))
      continue
    meta = field.metadata
    if "doc" not in meta:
      continue
    flag = meta["flag"] or getattr(config_cls, "FLAG_PREFIX", "") + field.name
    flag_kind, optional = _kind(kind)
    out.append(Option(
        flag=flag, path=prefix + (field.name,), kind=flag_kind,
        optional=optional, default=field.default, doc=meta["doc"],
        lower=meta["lower"], upper=meta["upper"], choices=meta["choices"],
        parse=meta["parse"], element=meta["element"]))
  return out


def config_fail(config, field, value, expected):
  """Raises the `UserInputError` of a field that fails validation.

  The message names the field, its flag and the value received, e.g.
  `PruneConfig.sparsity (--prune_sparsity) must be in [0, 1), got 1.5`.
  """
  flag = None
  for item in dataclasses.fields(config):
    if item.name == field and "doc" in item.metadata:
      flag = item.metadata["flag"] or (
          getattr(config, "FLAG_PREFIX", "") + field)
  where = type(config).__name__ + "." + field
  if flag:
    where += f" (--{flag})"
  raise UserInputError(f"{where} must be {expected}, got {value!r}")


def parse_list(config, field, element):
  """Normalises a tuple field in place: a comma string or a sequence."""
  value = getattr(config, field)
  items = value
  if isinstance(value, str):
    items = [v.strip() for v in value.split(",") if v.strip()]
  try:
    items = tuple(element(v) for v in items)
  except (TypeError, ValueError):
    config_fail(config, field, value, f"a list of {element.__name__} values")
  object.__setattr__(config, field, items)
  return items


def parse_image_size(text):
  """`"64,64"` or `"64x64"` -> (64, 64); None and "" -> None.

  Raises:
    UserInputError: for anything that is not two positive integers.
  """
  if text is None or (isinstance(text, str) and not text.strip()):
    return None
  if isinstance(text, str):
    parts = text.lower().replace("x", ",").split(",")
  else:
    parts = list(text)
  try:
    size = tuple(int(p) for p in parts)
  except (TypeError, ValueError):
    size = ()
  if len(size) != 2 or min(size) < 1:
    raise UserInputError(f"--image_size must be HEIGHT,WIDTH with both >= 1, "
                         f"such as 64,64; got {text!r}")
  return size
