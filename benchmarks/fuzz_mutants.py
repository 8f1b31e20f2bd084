"""The mutants of benchmarks/fuzz.py: seed files and how they are damaged.

`make_seeds` writes a float32 and an int8 `.tflite` file and a `.keras`
file of tiny Keras 3 models, plus a second `.keras` model whose members
serve as donors. `mutant(seed, index, seeds)` makes file `index` from
`(seed, index)` alone: truncation at a random offset, 1-8 flipped bits, a
header spliced from another seed, random bytes (a whole file, an
overwritten run or an insert), and for the `.keras` zip, one change to its
members (`_zip_member`).
"""

import io
import json
import os
import warnings
import zipfile

import numpy as np

__all__ = ["SEEDS", "DONOR", "INPUT_SHAPE", "make_seeds", "read_seeds",
           "mutant"]

SEEDS = ("float32.tflite", "int8.tflite", "model.keras")
DONOR = "donor.keras"
INPUT_SHAPE = (8, 8, 1)
_SMALL_INTS = (0, -1, 1, 2, 3, 7, 64)

# ---------------------------------------------------------------- seeds


def make_seeds(directory):
  """Writes the seed files (and the donor) into `directory`."""
  # pylint: disable=g-import-not-at-top
  import keras
  import tf_compress as tfc
  from tf_compress import export
  # pylint: enable=g-import-not-at-top

  def model(name, conv):
    inputs = keras.Input(INPUT_SHAPE)
    x = inputs
    if conv:
      x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = keras.layers.Flatten()(x)
    if not conv:
      x = keras.layers.Dense(6, activation="relu", name="hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="fc")(x),
                       name=name)

  keras.utils.set_random_seed(0)
  main = model("seed", conv=True)
  calibration = np.random.default_rng(0).uniform(0, 1, (16,) + INPUT_SHAPE)
  os.makedirs(directory, exist_ok=True)
  tfc.save_model(main, os.path.join(directory, "model.keras"))
  tfc.save_model(model("donor", conv=False), os.path.join(directory, DONOR))
  export.export_tflite(main, os.path.join(directory, "float32.tflite"),
                       "float32")
  export.export_tflite(main, os.path.join(directory, "int8.tflite"), "int8",
                       representative_data=calibration.astype(np.float32))


def read_seeds(directory):
  out = {}
  for name in SEEDS + (DONOR,):
    with open(os.path.join(directory, name), "rb") as handle:
      out[name] = handle.read()
  return out

# ---------------------------------------------------------------- mutators


def _truncate(rng, data, seeds):
  del seeds
  return data[:int(rng.integers(0, len(data)))]


def _flip(rng, data, seeds):
  del seeds
  n = len(data)
  low, high = [(0, min(n, 512)), (max(0, n - 512), n), (0, n)][
      int(rng.integers(3))]
  copy = bytearray(data)
  for _ in range(int(rng.integers(1, 9))):
    copy[int(rng.integers(low, high))] ^= 1 << int(rng.integers(8))
  return bytes(copy)


def _splice(rng, data, seeds):
  donor = seeds[sorted(seeds)[int(rng.integers(len(seeds)))]]
  if donor == data:
    donor = seeds[DONOR]
  k = int(rng.integers(1, min(1024, len(donor), len(data)) + 1))
  if rng.integers(2):
    return donor[:k] + data[k:]  # the header replaced
  return donor[:k] + data  # a header prepended


def _random(rng, data, seeds):
  del seeds
  kind = int(rng.integers(3))
  if kind == 0:
    return rng.bytes(int(rng.integers(0, 2 * len(data))))
  at = int(rng.integers(0, len(data)))
  noise = rng.bytes(int(rng.integers(1, 257)))
  if kind == 1:
    return data[:at] + noise + data[at + len(noise):]
  return data[:at] + noise + data[at:]


def _members(data):
  with zipfile.ZipFile(io.BytesIO(data)) as archive:
    return [(info.filename, archive.read(info)) for info in
            archive.infolist()]


def _zip(members):
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, "w") as archive, warnings.catch_warnings():
    warnings.simplefilter("ignore")  # a duplicate name is the point
    for name, content in members:
      archive.writestr(name, content)
  return buffer.getvalue()


def _json_paths(node, path=()):
  """Every (container path, key) in a JSON tree."""
  items = (node.items() if isinstance(node, dict) else
           enumerate(node) if isinstance(node, list) else ())
  for key, value in items:
    yield path, key
    yield from _json_paths(value, path + (key,))


def _new_value(rng, old, strings):
  if isinstance(old, bool) or old is None or rng.integers(4) == 0:
    pool = [None, True, 0, -1, 2.5, "", "x", [], {}, "Dense", [None, 8],
            {"class_name": "Dense", "config": {}}]
    return pool[int(rng.integers(len(pool)))]
  if isinstance(old, (int, float)):
    return [old + 1, -old, 2 * old, _SMALL_INTS[int(rng.integers(7))]][
        int(rng.integers(4))] if abs(old) <= 32 else int(rng.integers(65))
  if isinstance(old, str):
    return strings[int(rng.integers(len(strings)))]
  if isinstance(old, list):
    return old[:-1] if old and rng.integers(2) else old + old[:1]
  return {}


def _edit_config(rng, text):
  config = json.loads(text)
  strings = sorted({n for n in _nodes(config) if isinstance(n, str)}) or [
      "x"]
  for _ in range(int(rng.integers(1, 4))):
    paths = list(_json_paths(config))
    if not paths:
      break
    path, key = paths[int(rng.integers(len(paths)))]
    parent = config
    for part in path:
      parent = parent[part]
    if isinstance(parent, dict) and rng.integers(3) == 0:
      del parent[key]
    else:
      parent[key] = _new_value(rng, parent[key], strings)
  return json.dumps(config).encode()


def _foreign_module(rng, text):
  """An object's module pointed outside Keras (modules harmless to import)."""
  config = json.loads(text)
  objects = [node for node in _nodes(config)
             if isinstance(node, dict) and "module" in node]
  target = objects[int(rng.integers(len(objects)))]
  target["module"] = ["os", "subprocess", "shutil", "builtins"][
      int(rng.integers(4))]
  if rng.integers(2):
    target["class_name"] = "function"
    target["config"] = ["system", "exec", "rmtree", "getoutput"][
        int(rng.integers(4))]
  return json.dumps(config).encode()


def _nodes(node):
  yield node
  for value in (node.values() if isinstance(node, dict) else
                node if isinstance(node, list) else ()):
    yield from _nodes(value)




def _corrupt_text(rng, text):
  kind = int(rng.integers(5))
  if kind == 0:
    return text[:int(rng.integers(len(text)))]
  if kind == 1:
    return _flip(rng, text, None)
  if kind == 2:
    return b"\xff\xfe" + text[2:]  # not UTF-8
  if kind == 3:
    return [b"[]", b"null", b"1", b'"x"', b"{}"][int(rng.integers(5))]
  depth = int(rng.integers(1000, 100000))
  return b"[" * depth + b"]" * depth  # deeper than json's recursion limit


_WEIGHTS = "model.weights.h5"


def _zip_member(rng, data, seeds):
  """One change to the members of a .keras zip; returns (kind, bytes)."""
  members = dict(_members(data))
  donor = dict(_members(seeds[DONOR]))
  kinds = ("config_edit", "config_module", "config_corrupt", "config_swap",
           "weights_replace", "weights_truncate", "weights_flip",
           "metadata_remove", "metadata_edit", "extra_member",
           "member_remove")
  kind = kinds[int(rng.integers(len(kinds)))]
  if kind == "config_edit":
    members["config.json"] = _edit_config(rng, members["config.json"])
  elif kind == "config_module":
    members["config.json"] = _foreign_module(rng, members["config.json"])
  elif kind == "config_corrupt":
    members["config.json"] = _corrupt_text(rng, members["config.json"])
  elif kind == "config_swap":
    members["config.json"] = donor["config.json"]
  elif kind == "weights_replace":
    options = [donor[_WEIGHTS], b"", rng.bytes(2048), seeds["int8.tflite"]]
    members[_WEIGHTS] = options[int(rng.integers(len(options)))]
  elif kind == "weights_truncate":
    members[_WEIGHTS] = _truncate(rng, members[_WEIGHTS], seeds)
  elif kind == "weights_flip":
    members[_WEIGHTS] = _flip(rng, members[_WEIGHTS], seeds)
  elif kind == "metadata_remove":
    members.pop("metadata.json")
  elif kind == "metadata_edit":
    versions = ["2.15.0", "1.0", "", "abc", 3, None, "99.1", "3"]
    meta = json.loads(members["metadata.json"])
    meta["keras_version"] = versions[int(rng.integers(len(versions)))]
    members["metadata.json"] = json.dumps(meta).encode()
    if rng.integers(4) == 0:
      members["metadata.json"] = _corrupt_text(rng, members["metadata.json"])
  elif kind == "extra_member":
    names = ["assets/readme.txt", "../../outside.txt", "/abs.txt",
             "config.json", _WEIGHTS, "variables.h5"]
    extra = (names[int(rng.integers(len(names)))], rng.bytes(64))
    return kind, _zip(list(members.items()) + [extra])
  else:
    members.pop(sorted(members)[int(rng.integers(len(members)))])
  return kind, _zip(list(members.items()))


_MUTATORS = {"truncate": _truncate, "flip": _flip, "splice": _splice,
             "random": _random}


def mutant(seed, index, seeds):
  """File `index`: `(seed name, mutator name, bytes)`, from (seed, index)."""
  rng = np.random.default_rng([seed, index])
  base = SEEDS[int(rng.integers(len(SEEDS)))]
  names = list(_MUTATORS) + (["zip"] * 4 if base.endswith(".keras") else [])
  name = names[int(rng.integers(len(names)))]
  if name == "zip":
    kind, data = _zip_member(rng, seeds[base], seeds)
    return base, f"zip:{kind}", data
  return base, name, _MUTATORS[name](rng, seeds[base], seeds)
