"""Which ops of a converted TFLite graph compute which Keras layer.

The TFLite converter names each op's output tensor after the name scopes of
the TensorFlow ops it came from, and those scopes come from the Keras layer
names. They are not a reliable map on their own: tracing uniquifies scopes
(`dense` becomes `dense_1`, and the layer really named `dense_1` becomes
`dense_1_2`), and the model's last op is renamed after the signature's
output. So, for the duration of one conversion, `tagged_layers` renames
every layer to a token that cannot be mistaken for another (`tfcmap7z`,
which tracing may extend to `tfcmap7z_1`), and `op_layers` reads the tokens
back from each op's output tensor names and from the names of its constant
inputs (the kernel of the last layer keeps its scope when its output does
not). `restore_names` then writes the layers' own names back into the file,
so that nobody ever sees a token.

An op carries every layer whose token it holds: a convolution with a folded
batch normalization and a fused ReLU belongs to all three layers, and an op
inside a nested model belongs to that model too.
"""

import contextlib
import fnmatch
import re

import numpy as np
from ai_edge_litert.tools import flatbuffer_utils

from tf_compress._keras import is_keras3_object
from tf_compress.errors import UserInputError
from tf_compress.export import flatbuffer

__all__ = ["walk_layers", "match_layers", "tagged_layers", "op_layers",
           "ops_of", "restore_names"]

_TOKEN = "tfcmap{}z"
_TOKEN_RE = re.compile(r"tfcmap(\d+)z")


def _children(layer):
  # pylint: disable-next=protected-access
  return list(layer._flatten_layers(include_self=False, recursive=False))


def walk_layers(model):
  """(layer, path) of every layer under `model`, depth first, in order.

  A path joins the names from the top (`outer/inner` for a layer of a
  nested model); each layer object comes once.
  """
  seen = set()

  def visit(layer, prefix):
    for child in _children(layer):
      if id(child) in seen:
        continue
      seen.add(id(child))
      path = f"{prefix}/{child.name}" if prefix else child.name
      yield child, path
      yield from visit(child, path)

  yield from visit(model, "")


def _is_input(layer):
  return type(layer).__name__ == "InputLayer"


def match_layers(model, patterns, what="keep_float"):
  """The layer names that Keras layer names or glob patterns select.

  Args:
    model: a Keras 3 or tf_keras model.
    patterns: layer names or `fnmatch` patterns (`"conv*"`), matched
      against each layer's name and its path (`outer/inner` for a layer of
      a nested model).
    what: the argument's name, for messages.

  Returns:
    The matching layer paths, in model order, without repeats.

  Raises:
    UserInputError: `patterns` is a bare string, or one of them matches no
      layer (the message names each and lists the model's layers).
  """
  if isinstance(patterns, str):
    raise UserInputError(
        f"{what} must be a list of Keras layer names or patterns, got the "
        f"string {patterns!r}; write [{patterns!r}].")
  patterns = [str(p) for p in patterns]
  layers = [(layer, path) for layer, path in walk_layers(model)
            if not _is_input(layer)]
  chosen, unmatched = [], []
  for pattern in patterns:
    hits = [path for layer, path in layers
            if fnmatch.fnmatchcase(layer.name, pattern)
            or fnmatch.fnmatchcase(path, pattern)]
    if not hits:
      unmatched.append(pattern)
    chosen.extend(hits)
  if unmatched:
    names = ", ".join(path for _, path in layers)
    raise UserInputError(
        f"{what}: {', '.join(repr(p) for p in unmatched)} "
        f"match{'es' if len(unmatched) == 1 else ''} no layer of model "
        f"'{model.name}'; its layers are: {names}.")
  return list(dict.fromkeys(chosen))


def _set_name(layer, name):
  if is_keras3_object(layer):
    layer.name = name
  else:
    layer._name = name  # pylint: disable=protected-access


@contextlib.contextmanager
def tagged_layers(model):
  """Renames every layer of `model` to a token while the block runs.

  Convert the model inside the block; the names are restored on the way
  out, even after an error, so the model is left as it was.

  Yields:
    {token: layer path}.
  """
  layers = [(layer, path) for layer, path in walk_layers(model)
            if not _is_input(layer)]
  originals = [layer.name for layer, _ in layers]
  tokens = {}
  try:
    for index, (layer, path) in enumerate(layers):
      token = _TOKEN.format(index)
      tokens[token] = path
      _set_name(layer, token)
    yield tokens
  finally:
    for (layer, _), name in zip(layers, originals):
      _set_name(layer, name)


def _layers_in(name, tokens):
  return [tokens[t] for t in
          (m.group(0) for m in _TOKEN_RE.finditer(name)) if t in tokens]


def op_layers(data, tokens):
  """The layers each op of a converted (tagged) model computes.

  Args:
    data: TFLite bytes converted inside `tagged_layers`.
    tokens: what `tagged_layers` yielded.

  Returns:
    One dict per op of the main subgraph, in execution order: `index`,
    `op` (builtin name), `output` (its first output tensor's name, which
    the quantizer's denylist refers to) and `layers` (layer paths, in the
    order found, possibly empty).
  """
  model = flatbuffer.parse_model(data, "the converted model")
  graph = model.subgraphs[0]
  opcodes = [flatbuffer.op_name(code) for code in model.operatorCodes or []]
  buffers = model.buffers or []

  def constant(index):
    buffer = graph.tensors[index].buffer
    return (0 < buffer < len(buffers) and buffers[buffer].data is not None
            and len(buffers[buffer].data) > 0)

  out = []
  for index, op in enumerate(graph.operators or []):
    outputs = [int(i) for i in np.asarray(op.outputs if op.outputs is not None
                                          else [], np.int64) if i >= 0]
    inputs = [int(i) for i in np.asarray(op.inputs if op.inputs is not None
                                         else [], np.int64) if i >= 0]
    names = [flatbuffer.decode_text(graph.tensors[i].name) for i in outputs]
    names += [flatbuffer.decode_text(graph.tensors[i].name) for i in inputs
              if constant(i)]
    found = []
    for name in names:
      found.extend(_layers_in(name, tokens))
    out.append({"index": index, "op": opcodes[op.opcodeIndex],
                "output": names[0] if outputs else "",
                "layers": list(dict.fromkeys(found))})
  return out


def _covers(path, chosen):
  """True when layer `path` is one of `chosen` or inside one of them."""
  return any(path == c or path.startswith(c + "/") for c in chosen)


def ops_of(model, ops, patterns, what="keep_float"):
  """The ops computing the layers that names or patterns select.

  Args:
    model: the Keras model the ops were converted from.
    ops: `op_layers`'s list.
    patterns: Keras layer names or glob patterns (see `match_layers`); a
      selected layer brings the ops of the layers nested in it.
    what: the argument's name, for messages.

  Returns:
    The selected entries of `ops`, in graph order.

  Raises:
    UserInputError: a name or pattern matches no layer, or only layers
      that own no op (folded into another layer's op, as a batch
      normalization into its convolution, or computing nothing at
      inference, as Dropout).
  """
  if isinstance(patterns, str):
    match_layers(model, patterns, what)  # raises: a bare string
  selected, empty = set(), []
  for pattern in patterns:
    chosen = match_layers(model, [pattern], what)
    hits = {op["index"] for op in ops
            if any(_covers(p, chosen) for p in op["layers"])}
    if not hits:
      empty.append((pattern, chosen))
    selected |= hits
  if empty:
    described = "; ".join(
        f"{p!r} (layer{'s' if len(c) > 1 else ''} {', '.join(c)})"
        for p, c in empty)
    raise UserInputError(
        f"{what}: {described} own no op in the converted graph: folded into "
        "a neighbouring op (a batch normalization into its convolution) or "
        "computing nothing at inference (Dropout). Name the layer whose op "
        "computes it instead, such as the convolution before it.")
  return [op for op in ops if op["index"] in selected]


def restore_names(data, tokens):
  """`data` with every token in its tensor names replaced by the layer name.

  Args:
    data: TFLite bytes converted inside `tagged_layers`.
    tokens: what `tagged_layers` yielded.

  Returns:
    The TFLite bytes, with the same graph and weights.
  """
  names = {token: path.rsplit("/", 1)[-1] for token, path in tokens.items()}

  def fix(text):
    if text is None:
      return text
    raw = flatbuffer.decode_text(text)
    fixed = _TOKEN_RE.sub(lambda m: names.get(m.group(0), m.group(0)), raw)
    return fixed if fixed != raw else text

  model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
  for graph in model.subgraphs or []:
    for tensor in graph.tensors or []:
      tensor.name = fix(tensor.name)
  return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
