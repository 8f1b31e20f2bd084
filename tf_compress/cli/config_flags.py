"""absl flags generated from a config's fields (`pipeline.fields.option`).

`define_config_flags(RunConfig)` defines one flag per field, with the field's
doc, default, bounds and choices; `config_from_flags(RunConfig)` builds the
config from the parsed values. A field is declared once, in its config; the
flag follows it.
"""

from absl import flags

from tf_compress.errors import UserInputError
from tf_compress.pipeline.fields import options

__all__ = ["define_config_flags", "config_from_flags", "flag_values_dict"]


def _default_text(opt):
  if opt.parse is not None:
    return (None if opt.default is None
            else ",".join(str(v) for v in opt.default))
  if opt.kind == "list":
    return [str(v) for v in opt.default]
  return opt.default


def _parse_validator(opt):
  """A flag validator that runs the field's parser (bad text: exit 2)."""
  def check(text):
    try:
      _value(opt, text)
    except UserInputError as exc:
      raise flags.ValidationError(str(exc)) from None
    return True
  return check


def define_config_flags(config_cls, flag_values=None, defaults=None):
  """Defines a flag for every field of `config_cls` (nested configs too).

  Idempotent: a flag already defined keeps its definition and takes this
  command's default.

  Args:
    config_cls: a config dataclass whose fields are `option`s.
    flag_values: the `flags.FlagValues`; default `flags.FLAGS`.
    defaults: `{flag name: default}` overriding a field's default for this
      command (e.g. another `output_dir`).

  Returns:
    The list of `Option`s defined.
  """
  fv = flags.FLAGS if flag_values is None else flag_values
  defaults = defaults or {}
  defined = options(config_cls)
  for opt in defined:
    default = defaults.get(opt.flag, _default_text(opt))
    if opt.flag in fv:
      # Shared by two commands in one process (train's flags in tune).
      fv.set_default(opt.flag, default)
      continue
    kwargs = {"flag_values": fv}
    if opt.choices is not None:
      flags.DEFINE_enum(opt.flag, default, opt.choices, opt.doc, **kwargs)
    elif opt.parse is not None:
      flags.DEFINE_string(opt.flag, default, opt.doc, **kwargs)
      flags.register_validator(opt.flag, _parse_validator(opt), **kwargs)
    elif opt.kind == "str":
      flags.DEFINE_string(opt.flag, default, opt.doc, **kwargs)
    elif opt.kind == "list":
      flags.DEFINE_list(opt.flag, default, opt.doc, **kwargs)
    elif opt.kind == "bool":
      flags.DEFINE_boolean(opt.flag, default, opt.doc, **kwargs)
    else:
      define = (flags.DEFINE_integer if opt.kind == "int"
                else flags.DEFINE_float)
      define(opt.flag, default, opt.doc, lower_bound=opt.lower,
             upper_bound=opt.upper, **kwargs)
  return defined


def _value(opt, raw):
  """A flag's parsed value as the config field wants it."""
  if raw is None:
    return None
  if opt.parse is not None:
    return opt.parse(raw)
  if opt.kind == "list":
    element = opt.element or str
    try:
      return tuple(element(v) for v in raw)
    except ValueError:
      raise UserInputError(
          f"--{opt.flag} must be a comma-separated list of "
          f"{element.__name__} values, got {','.join(raw)!r}") from None
  return raw


def flag_values_dict(config_cls, flag_values=None):
  """`{flag name: value}` of the parsed flags of `config_cls`."""
  fv = flags.FLAGS if flag_values is None else flag_values
  return {opt.flag: _value(opt, fv[opt.flag].value)
          for opt in options(config_cls)}


def config_from_flags(config_cls, flag_values=None):
  """Builds `config_cls` from the parsed flags (`config_cls.from_flat`).

  Raises:
    UserInputError: a value the config rejects, naming the flag.
  """
  return config_cls.from_flat(**flag_values_dict(config_cls, flag_values))
