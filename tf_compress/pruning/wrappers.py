"""tfmot's pruning wrappers and prunable weights, found through sub-models.

Layers are named by their path (see `tf_compress.models.iter_layers`): `fc1`
at the top level, `student/fc1` inside a sub-model named `student`. A
wrapper is named after the layer it wraps, so a wrapped model and its
stripped export share names.
"""

from tf_compress._keras import keras
from tf_compress._tfmot import is_tfmot_instance
from tf_compress._tfmot import lazy
from tf_compress._tfmot import tfmot
from tf_compress.models.graph import iter_layers

__all__ = ["PruneLowMagnitude", "is_pruning_wrapper", "find_pruning_wrappers",
           "wrapper_name", "prunable_weights", "prunable_status"]

# tfmot exports neither the wrapper class nor the registry's tables; both
# are looked up on first use, so that tfmot is imported only for tf_keras.
PruneLowMagnitude = lazy(
    "python.core.sparsity.keras.pruning_wrapper:PruneLowMagnitude")
_Registry = lazy("python.core.sparsity.keras.prune_registry:PruneRegistry")


def is_pruning_wrapper(layer):
  """True for tfmot's `PruneLowMagnitude` (never imports tfmot itself)."""
  return is_tfmot_instance(layer, PruneLowMagnitude)


def wrapper_name(path, wrapper):
  """The path of the layer a wrapper wraps (`.../fc1`, not `.../prune_...`)."""
  head = path.rpartition("/")[0]
  return f"{head}/{wrapper.layer.name}" if head else wrapper.layer.name


def find_pruning_wrappers(model):
  """Returns `[(name, wrapper)]` for every pruning wrapper, in model order.

  Searches nested Sequential/Functional models and subclassed models holding
  sub-models (such as a distillation harness holding a student). A wrapper
  reached twice (a shared sub-model) is listed once.
  """
  found, seen = [], set()
  for path, layer in iter_layers(model):
    if is_pruning_wrapper(layer) and id(layer) not in seen:
      seen.add(id(layer))
      found.append((wrapper_name(path, layer), layer))
  return found


def _registry_weights(layer):
  """The weights tfmot's registry prunes in a built-in layer, read-only.

  `PruneRegistry.make_prunable` would attach a method to the layer; this
  reads the same tables without touching it.
  """
  # pylint: disable=protected-access
  registry = _Registry.resolve()
  if type(layer) in registry._RNN_LAYERS:
    cell = layer.cell
    cells = cell.cells if isinstance(
        cell, keras.layers.StackedRNNCells) else [cell]
    found = []
    for cell in cells:
      names = registry._RNN_CELLS_WEIGHTS_MAP.get(type(cell))
      if names:
        found += [getattr(cell, n) for n in names]
      elif isinstance(cell, tfmot.sparsity.keras.PrunableLayer):
        found += list(cell.get_prunable_weights())
    return found
  found = []
  for name in registry._LAYERS_WEIGHTS_MAP.get(type(layer), []):
    obj = layer
    for part in name.split("."):
      obj = getattr(obj, part)
    found.append(obj)
  return found


def prunable_weights(layer):
  """The weights tfmot prunes in a built `layer` ([] when none)."""
  if hasattr(layer, "get_prunable_weights"):
    return list(layer.get_prunable_weights())
  if isinstance(layer, keras.Model) or not _Registry.supports(layer):
    return []
  return _registry_weights(layer)


def prunable_status(layer):
  """`prunable`, `nothing` (no weights to prune) or `unprunable`.

  `unprunable`: a layer with weights that tfmot does not know (a custom
  layer that is not a `PrunableLayer`, or a subclassed sub-model).
  """
  if isinstance(layer, tfmot.sparsity.keras.PrunableLayer) or hasattr(
      layer, "get_prunable_weights"):
    return "prunable"
  if not isinstance(layer, keras.Model) and _Registry.supports(layer):
    return "prunable" if _registry_weights(layer) else "nothing"
  return "unprunable" if layer.weights else "nothing"
