"""Untrusted files: model files that would run code, image folders that leak.

The config.json payloads name a module written here, whose import (or whose
class's `from_config`) creates a marker file: tf_keras 2.21 imports it when
handed the config (checked first, so each test can fail), and
`tf_compress.load_model` must refuse it without the marker appearing.
"""

import json
import os
import sys
import types
import uuid
import zipfile

from absl import flags
import flatbuffers
import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from tf_keras.src.saving import serialization_lib as tf_keras_serialization

import tf_compress
from tf_compress import benchmark
from tf_compress import export
from tf_compress import models
from tf_compress import pipeline
from tf_compress.cli import summary as summary_cli
from tf_compress.data import sources
from tf_compress.errors import DataError
from tf_compress.errors import ModelError
from tf_compress.errors import UserInputError

OPT_IN = ("pass --allow_unsafe_load on the command line or safe_mode=False "
          "to the loading function")
_PAYLOAD = """\
import pathlib
MARKER = pathlib.Path({marker!r})
MARKER.write_text("imported")


def run(*args, **kwargs):
  MARKER.write_text("called")


class Payload:
  @classmethod
  def from_config(cls, config):
    MARKER.write_text("from_config")
    return cls()
"""


@pytest.fixture
def payload(tmp_path, monkeypatch):
  """(module name, marker path): a module that marks its import."""
  name = f"tfc_payload_{uuid.uuid4().hex[:12]}"
  marker = tmp_path / "marker"
  (tmp_path / f"{name}.py").write_text(_PAYLOAD.format(marker=str(marker)))
  monkeypatch.syspath_prepend(str(tmp_path))
  yield name, marker
  sys.modules.pop(name, None)


def _archive(path, config, keras_version):
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("metadata.json", json.dumps(
        {"keras_version": keras_version, "date_saved": "2026-01-01@00:00:00"}))
    archive.writestr("config.json", json.dumps(config))
    archive.writestr("model.weights.h5", b"")
  return path


def _dense(activation):
  return {"module": "keras.layers", "class_name": "Dense",
          "config": {"units": 2, "activation": activation},
          "registered_name": None}


def _sequential(*layers):
  return {"module": "keras", "class_name": "Sequential",
          "config": {"name": "s", "layers": list(layers)},
          "registered_name": None}


def _configs(module):
  """Payload configs by name: classes, functions, builtins, non-modelling."""
  cls = {"module": module, "class_name": "Payload", "config": {},
         "registered_name": "Payload"}
  fn = {"module": module, "class_name": "function", "config": "run",
        "registered_name": "function"}
  return {
      "class_top": cls,
      "class_in_layers": _sequential(cls),
      "function_activation": _sequential(_dense(fn)),
      "os_system": _sequential(_dense(
          {"module": "os", "class_name": "function", "config": "system",
           "registered_name": "function"})),
      "builtins_exec": _sequential(_dense(
          {"module": "builtins", "class_name": "function", "config": "exec",
           "registered_name": "function"})),
      "keras_get_file": _sequential(_dense(
          {"module": "keras.utils", "class_name": "function",
           "config": "get_file", "registered_name": "function"})),
      "qualname": _sequential(
          {"module": "tf_keras.src.saving.serialization_lib",
           "class_name": "importlib.import_module", "config": {}}),
      "lambda": _sequential(_dense(
          {"class_name": "__lambda__", "config": {"value": "ZZZ"}})),
  }


def test_tf_keras_imports_the_payload_module_by_itself(payload):
  # What the check below prevents: tf_keras imports any module it is told.
  name, marker = payload
  obj = tf_keras_serialization.deserialize_keras_object(
      _configs(name)["class_top"], safe_mode=True)
  assert type(obj).__name__ == "Payload"
  assert marker.read_text() == "from_config"


@pytest.mark.parametrize("version", ["3.15.1", "2.21.0"],
                         ids=["keras3", "tf_keras"])
@pytest.mark.parametrize("case", list(_configs("m")))
def test_payload_configs_are_refused_unexecuted(payload, tmp_path, version,
                                                case):
  name, marker = payload
  path = _archive(tmp_path / "evil.keras", _configs(name)[case], version)
  for loader in (tf_compress.load_model, models.load_tfmot_model,
                 tf_compress.analysis.model_summary):
    with pytest.raises(ModelError) as info:
      loader(path)
    message = str(info.value)
    assert message.startswith(f"refusing to load '{path}': it contains ")
    assert OPT_IN in message
  expected = {"class_top": f"`{name}.Payload`", "os_system": "`os.system`",
              "builtins_exec": "`builtins.exec`",
              "keras_get_file": "`keras.utils.get_file`",
              "lambda": "a Python lambda"}.get(case, f"`{name}")
  assert expected in message if case != "qualname" else (
      "importlib.import_module" in message)
  assert not marker.exists() and name not in sys.modules


@keras.saving.register_keras_serializable(package="tfc_untrusted_tests")
class Doubler(keras.layers.Layer):
  """A registered custom layer from a module outside Keras."""

  def call(self, x):
    return x * 2.0


def test_registered_custom_objects_still_load(tmp_path):
  model = keras.Sequential([keras.Input((3,)), Doubler(), keras.layers.Dense(
      2, activation="relu")])
  path = tmp_path / "custom.keras"
  tf_compress.save_model(model, path)
  with zipfile.ZipFile(path) as archive:
    assert '"module": "test_untrusted_files"' in archive.read(
        "config.json").decode()
  x = np.ones((1, 3), np.float32)
  loaded = tf_compress.load_model(path)
  np.testing.assert_allclose(loaded.predict(x, verbose=0),
                             model.predict(x, verbose=0), rtol=1e-6)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  """A Lambda .keras, a full-model .h5, and both renamed, by name."""
  tmp = tmp_path_factory.mktemp("untrusted")
  lam = keras.Sequential([keras.Input((3,)),
                          keras.layers.Lambda(lambda x: x + 1.0),
                          keras.layers.Dense(2)])
  plain = tf_keras.Sequential([tf_keras.Input((3,)),
                               tf_keras.layers.Dense(2)])
  paths = {"lambda": tmp / "lambda.keras", "h5": tmp / "plain.h5",
           "h5_as_keras": tmp / "plain_h5.keras"}
  tf_compress.save_model(lam, paths["lambda"])
  tf_compress.save_model(plain, paths["h5"])
  paths["h5_as_keras"].write_bytes(paths["h5"].read_bytes())
  return paths


@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5")
@pytest.mark.parametrize("name,what", [
    ("lambda", "a Lambda layer"), ("h5", "a full-model .h5 file"),
    ("h5_as_keras", "an HDF5 file under a .keras name")])
def test_unsafe_files_need_the_opt_in(saved, name, what):
  path = saved[name]
  with pytest.raises(ModelError) as info:
    tf_compress.load_model(path)
  assert f"'{path}'" in str(info.value) and what in str(info.value)
  assert OPT_IN in str(info.value)
  model = tf_compress.load_model(path, safe_mode=False)
  assert model.predict(np.ones((1, 3), np.float32), verbose=0).shape == (1, 2)


def _summary_flags(*argv):
  values = summary_cli.define_flags(flags.FlagValues())
  values(["prog", *argv])
  return values


def test_summary_command_refuses_then_allows(saved, capsys):
  for name in ("lambda", "h5"):
    assert summary_cli.run_from_flags(str(saved[name]), _summary_flags()) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: refusing to load")
    assert "--allow_unsafe_load" in err
    assert summary_cli.run_from_flags(
        str(saved[name]), _summary_flags("--allow_unsafe_load")) == 0
    assert capsys.readouterr().out.startswith(f"Model: {saved[name].name}")


def test_train_flag_opts_in_for_model_and_teacher(saved):
  flat = pipeline.RunConfig().to_dict()
  assert flat["allow_unsafe_load"] is False
  splits = types.SimpleNamespace(input_shape=(3,), num_classes=2)
  config = pipeline.RunConfig.from_flat(model=str(saved["lambda"]))
  with pytest.raises(ModelError, match="--allow_unsafe_load"):
    pipeline.training.build_model_for(config, splits)
  model = pipeline.training.build_model_for(
      config.replace(allow_unsafe_load=True), splits)
  assert type(model.layers[0]).__name__ == "Lambda"


# ------------------------------------------------------ damaged .tflite


@pytest.fixture(scope="module")
def tflite_model():
  """A tiny float32 model, parsed into the flatbuffer object API."""
  model = tf_keras.Sequential([tf_keras.Input((3,)), tf_keras.layers.Dense(2)])
  return export.convert_to_tflite(model, "float32")


def _damaged(data, damage):
  """`data` with `damage(model)` applied to its object form, repacked."""
  parsed = export.flatbuffer.parse_model(data, "m")
  damage(parsed)
  builder = flatbuffers.Builder(1024)
  builder.Finish(parsed.Pack(builder), file_identifier=b"TFL3")
  return bytes(builder.Output())


def test_tflite_output_index_out_of_range_is_a_clear_error(tflite_model):
  def damage(model):  # a bit flip the verifier lets by
    model.subgraphs[0].outputs = [1036]
  with pytest.raises(UserInputError, match=(
      r"names tensor 1036 as a model output, but its subgraph has \d+ "
      "tensors")):
    tf_compress.analysis.model_summary(_damaged(tflite_model, damage))


def test_tflite_tensor_name_not_utf8_is_a_clear_error(tflite_model):
  def damage(model):
    model.subgraphs[0].tensors[model.subgraphs[0].inputs[0]].name = b"x\xf3"
  data = _damaged(tflite_model, damage)
  for call in (lambda: export.verify_tflite(data, np.zeros((2, 3))),
               lambda: benchmark.benchmark_model(data, num_runs=1)):
    with pytest.raises(UserInputError, match=(
        "input and output tensors cannot be read: 'utf-8' codec")):
      call()


@pytest.mark.parametrize("shape", [[1, 2**20, 2**20, 1], [1, -3, 8]],
                         ids=["terabytes", "negative"])
def test_benchmark_inputs_of_absurd_shapes_are_refused(shape):
  detail = {"name": "x", "dtype": np.float32, "shape": np.array(shape),
            "quantization": (0.0, 0)}
  with pytest.raises(UserInputError, match=(
      r"model input 'x' has shape .* negative or over 256 MiB")):
    benchmark.make_inputs([detail])


# ---------------------------------------------------------------- images


def _png(path, value=100):
  path.parent.mkdir(parents=True, exist_ok=True)
  image = tf.fill([4, 5, 1], tf.constant(value, tf.uint8))
  path.write_bytes(tf.io.encode_png(image).numpy())


@pytest.fixture
def folder(tmp_path):
  root = tmp_path / "pets"
  _png(root / "cat" / "a.png")
  _png(root / "dog" / "b.png", 50)
  _png(tmp_path / "outside" / "secret.png", 7)
  return root


def test_links_inside_the_folder_are_followed(folder):
  os.symlink(folder / "cat" / "a.png", folder / "dog" / "again.png")
  raw = sources.load_raw(str(folder), image_size=(4, 5))
  assert raw.x_train.shape == (3, 4, 5, 1)
  assert sorted(raw.x_train[:, 0, 0, 0].tolist()) == [50, 100, 100]


@pytest.mark.parametrize("link", ["cat/leak.png", "dog/nested", "bird"])
def test_links_out_of_the_folder_are_refused(folder, link):
  target = folder.parent / "outside"
  os.symlink(target / "secret.png" if link.endswith(".png") else target,
             folder / link)
  with pytest.raises(DataError) as info:
    sources.load_raw(str(folder), image_size=(4, 5))
  assert f"'{folder / link}' is a symbolic link to '{target}" in str(
      info.value)
  assert "outside the directory" in str(info.value)


@pytest.mark.parametrize("content", [b"#!/bin/sh\nrm -rf ~\n",
                                     b"\x7fELF\x02\x01\x01", b""],
                         ids=["script", "elf", "empty"])
def test_files_named_like_images_must_be_images(folder, content):
  fake = folder / "cat" / "photo.jpg"
  fake.write_bytes(content)
  with pytest.raises(DataError) as info:
    sources.load_raw(str(folder), image_size=(4, 5))
  assert f"could not decode image '{fake}': it is not an image" in str(
      info.value)


def test_non_image_names_are_still_ignored(folder):
  (folder / "dog" / "notes.txt").write_text("a note")
  os.symlink(folder.parent / "outside" / "secret.png",
             folder / "dog" / "notes.md")  # not an image name: not read
  raw = sources.load_raw(str(folder), image_size=(4, 5))
  assert raw.x_train.shape[0] == 2
