"""What keeps an untrusted model file from running code when it is loaded.

A `.keras` file's `config.json` names the Python objects that rebuild the
model: every serialized object carries a `module` and a `class_name` (or,
for a function, its name). Keras 3.15 imports only Keras' own modules, but
tf_keras 2.21 imports whatever module a config names, and importing a module
runs its code: the class of CVE-2025-1550 (a safe-mode bypass through
config.json). `check_config` walks the config before either Keras reads it,
and refuses any object that is neither registered (the caller's
`custom_objects`, Keras' registries) nor from Keras (and the packages
Keras 3 imports: keras_hub, keras_cv, keras_nlp), tf_keras, tf_compress or
tfmot, as well as Lambda layers, Python lambdas and Keras' non-modelling
functions (`get_file`, `enable_unsafe_deserialization`, ...). It executes
nothing.

`refused` is the refusal every safe-mode loader raises; its message names
the opt-ins: `--allow_unsafe_load` on the command line, `safe_mode=False`
in Python.
"""

import builtins
import json

import keras as keras3
import tf_keras

from tf_compress.errors import ModelError

__all__ = ["ALLOW_FLAG", "OPT_IN", "TRUSTED_PACKAGES", "check_config",
           "refused"]

ALLOW_FLAG = "--allow_unsafe_load"
OPT_IN = (f"if you trust the file, pass {ALLOW_FLAG} on the command line or "
          "safe_mode=False to the loading function")
# Packages whose modules a config may name (tf_keras imports them).
TRUSTED_PACKAGES = ("keras", "keras_hub", "keras_cv", "keras_nlp",
                    "tf_keras", "tf_compress", "tensorflow_model_optimization")
# Values, not classes or functions: Keras rebuilds them without imports.
_VALUES = frozenset({"__tuple__", "__numpy__", "__tensor__", "__bytes__",
                     "__ellipsis__", "__slice__", "__keras_tensor__"})
# Keras 3 refuses these API names by itself (`NON_MODELING_APIS`); tf_keras
# does not, so they are refused in any Keras module.
_NON_MODELING = frozenset({
    "audio_dataset_from_directory", "clear_session", "deserialize_keras_object",
    "enable_unsafe_deserialization", "get_file", "image_dataset_from_directory",
    "load_img", "load_model", "load_weights", "model_from_json",
    "register_keras_serializable", "save_img", "save_model", "save_weights",
    "serialize_keras_object", "text_dataset_from_directory"})


def refused(path, what, why="arbitrary Python code, which would run on "
            "loading"):
  """The `ModelError` refusing `path`, which holds `what`."""
  return ModelError(f"refusing to load '{path}': it contains {what} ({why}), "
                    f"so safe mode refuses it; {OPT_IN}")


def _registered(name, custom_objects):
  """True when either Keras would take `name` from a registry, not imports."""
  if not isinstance(name, str):
    return False
  return any(get(name, custom_objects=custom_objects) is not None for get in (
      keras3.saving.get_registered_object,
      tf_keras.utils.get_registered_object))


def _problem(obj, custom_objects):
  """What is unsafe in a serialized object: `(what[, why])`, or None."""
  class_name = obj["class_name"]
  if class_name == "__lambda__":
    return ("a Python lambda",)
  if class_name in _VALUES:
    return None
  if class_name == "function":
    name = key = obj.get("config")
  elif class_name == "__typespec__":
    name, key = obj.get("spec_name"), obj.get("registered_name")
  else:
    name, key = class_name, obj.get("registered_name", class_name)
  if _registered(key, custom_objects):
    return None  # Both Kerases take a registered object before importing.
  module = obj.get("module")
  if not module or not isinstance(module, str):
    return None  # Nothing to import: Keras fails to find it, safely.
  where = f"`{module}.{name}`"
  if module == "builtins":
    if class_name == "function" and isinstance(name, str) and not hasattr(
        builtins, name):
      return None  # A Keras built-in function, saved by name.
    return f"a reference to Python's {where}", "not a model part"
  if module.split(".")[0] not in TRUSTED_PACKAGES:
    return (f"a reference to {where}", "a module outside Keras and "
            "tf_compress, which loading would import, running its code")
  if not isinstance(name, str) or "." in name or name in _NON_MODELING:
    return f"a reference to {where}", "not a model part"
  return None


def _objects(config):
  """Every dict with a `class_name` in a JSON tree (iterative: no depth)."""
  stack = [config]
  while stack:
    node = stack.pop()
    if isinstance(node, dict):
      if isinstance(node.get("class_name"), str):
        yield node
      stack.extend(node.values())
    elif isinstance(node, list):
      stack.extend(node)


def check_config(path, text, custom_objects=None):
  """Refuses a model config that would import or run code on loading.

  A config that is not JSON passes: Keras cannot read it either.

  Args:
    path: the model file, for messages.
    text: the `config.json` text (bytes or str).
    custom_objects: the `custom_objects` the model is loaded with.

  Raises:
    ModelError: for a config that holds a Python lambda, a Lambda layer or
      an object from outside Keras, tf_compress and the registries (see the
      module docstring); the message names the object and the opt-in.
  """
  try:
    config = json.loads(text)
  except (ValueError, RecursionError):
    return  # Keras cannot read it either, and says so.
  for obj in _objects(config):
    if obj["class_name"] == "Lambda":
      raise refused(path, "a Lambda layer")
    problem = _problem(obj, custom_objects)
    if problem:
      raise refused(path, *problem)
