"""The Keras binding: `import tf_compress` changes nothing global.

tf_compress imports `tf_keras` directly for its tfmot engine and never sets
`TF_USE_LEGACY_KERAS`, so `tf.keras` keeps the meaning the user's
environment gives it; tfmot (which sets that variable when imported) is
imported through `tf_compress._tfmot`, which puts the variable back.

Fresh Pythons check it (three, as each costs a TensorFlow import): a user's
legacy setting; tf_compress imported before Keras; and Keras imported
first, where every Keras 3 method runs (tfmot never imported), then both
engines prune in the same process.
"""

import json
import os
import subprocess
import sys

import keras as keras3  # the real Keras 3
import numpy as np
import pytest

import tf_compress
from tf_compress import keras
from tf_compress._keras import tf

_ENV = "TF_USE_LEGACY_KERAS"


def _run(code, legacy=None):
  """Runs `code` in a fresh Python; returns the JSON it prints last."""
  env = {k: v for k, v in os.environ.items() if k != _ENV}
  if legacy is not None:
    env[_ENV] = legacy
  result = subprocess.run([sys.executable, "-c", code], env=env,
                          capture_output=True, text=True, timeout=300,
                          check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


_PROBE = """
import json, os, sys
import tensorflow as tf
out = {"env": os.environ.get("TF_USE_LEGACY_KERAS"),
       "tf_keras_module": tf.keras.Model.__module__,
       "tfmot_imported": "tensorflow_model_optimization" in sys.modules}
"""


def test_tf_compress_keras_is_tf_keras():
  assert keras.__name__ == "tf_keras"
  assert tf_compress.keras is keras
  assert keras3.__version__.startswith("3.")
  assert not isinstance(keras3.Sequential([keras3.Input((4,))]), keras.Model)


def test_this_process_keeps_the_users_binding():
  # The suite never sets TF_USE_LEGACY_KERAS, and neither does tf_compress.
  assert _ENV not in os.environ
  assert tf.keras.Model is keras3.Model


def test_import_keeps_a_users_legacy_setting():
  out = _run("import tf_compress\n" + _PROBE + "print(json.dumps(out))\n",
             legacy="1")
  assert out["env"] == "1"
  assert out["tf_keras_module"].startswith("tf_keras"), out


_BOTH_ENGINES = """
import numpy as np
from tf_compress import keras as tf_keras
x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
y = (x[:, 0] > 0).astype("int32")
config = tfc.pruning.PruningConfig(target_sparsity=0.5, schedule="constant",
                                   begin_step=0, frequency=1)
sparsity = {}
for name, k in (("keras3", keras), ("tf_keras", tf_keras)):
  model = k.Sequential([k.Input((8,)), k.layers.Dense(16, activation="relu"),
                        k.layers.Dense(2)])
  pruned = tfc.pruning.prune_model(model, config)
  if name == "tf_keras":
    wrapped = type(pruned.layers[0]).__name__
  pruned.compile("adam", k.losses.SparseCategoricalCrossentropy(True))
  pruned.fit(x, y, epochs=2, batch_size=16, verbose=0,
             callbacks=[tfc.pruning.PruningCallback()])
  table = tfc.pruning.sparsity_table(pruned)
  sparsity[name] = [round(float(r["sparsity"]), 3) for r in table]
""" + _PROBE + """
out["sparsity"] = sparsity
out["wrapped"] = wrapped
print(json.dumps(out))
"""


def _check_both_engines(out):
  # Neither importing tf_compress nor running the tfmot engine (which
  # imports tfmot) set TF_USE_LEGACY_KERAS or changed tf.keras.
  assert out["env"] is None
  assert out["tf_keras_module"].startswith("keras.src"), out
  assert out["tfmot_imported"] and out["wrapped"] == "PruneLowMagnitude"
  for name in ("keras3", "tf_keras"):
    assert out["sparsity"][name] == [0.5, 0.5], out


_KERAS3_ONLY = """
import keras
import numpy as np
import tf_compress as tfc
from tf_compress import pruning, quantization as q
x = np.random.default_rng(0).uniform(size=(64, 6, 6, 1)).astype("float32")
y = (x.mean(axis=(1, 2, 3)) > 0.5).astype("int32")
model = keras.Sequential([keras.Input((6, 6, 1)),
                          keras.layers.Conv2D(4, 3, use_bias=False),
                          keras.layers.BatchNormalization(),
                          keras.layers.ReLU(), keras.layers.Flatten(),
                          keras.layers.Dense(2)])
loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
pruned = tfc.pruning.prune_model(model, tfc.pruning.PruningConfig(
    target_sparsity=0.5, frequency=1), steps_per_epoch=4)
pruned.compile("adam", loss)
pruned.fit(x, y, batch_size=16, epochs=1, verbose=0,
           callbacks=[tfc.pruning.PruningCallback()])
qat = tfc.quantization.quantize_model(tfc.pruning.strip_pruning(pruned))
qat.compile("adam", loss)
qat.fit(x, y, batch_size=16, epochs=2, verbose=0,
        callbacks=[tfc.quantization.QATFreezeCallback(1)])
data = tfc.export.convert_to_tflite(qat, "int8")
tfc.model_stats(qat)
tfc.analysis.model_summary(qat)
clustered = tfc.quantization.cluster_model(model, 4)
clustered.compile("adam", loss)
clustered.fit(x, y, batch_size=16, epochs=1, verbose=0)
unique = tfc.quantization.unique_values_per_layer(
    tfc.quantization.strip_clustering(clustered))
sliced = tfc.pruning.slice_model(model, 0.5).model
student = keras.models.clone_model(sliced)
distiller = tfc.distillation.Distiller(model, student)
distiller.compile("adam", loss)
distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
robust = tfc.adversarial.AdversarialModel(student, epsilon=0.1)
robust.compile("adam", loss)
robust.fit(x, y, batch_size=16, epochs=1, verbose=0)
# The collaborative methods: CQAT, PQAT, prune -> cluster -> PCQAT.
small = keras.Sequential([keras.Input((6, 6, 1)),
                          keras.layers.Conv2D(4, 3, activation="relu"),
                          keras.layers.Flatten(), keras.layers.Dense(2)])
clustered = q.cluster_model(small, 4)
clustered.compile("adam", keras.losses.SparseCategoricalCrossentropy(True))
clustered.fit(x, y, batch_size=32, epochs=1, verbose=0)
stripped = q.strip_clustering(clustered)
collaborative_unique = [r["unique"]
                        for r in q.unique_values_per_layer(stripped)]
q.cqat_model(stripped)(x[:2], training=True)
half = pruning.strip_pruning(pruning.prune_model(
    small, pruning.PruningConfig(target_sparsity=0.5)))
for layer in half.layers:  # half the kernels zero
  if hasattr(layer, "kernel"):
    layer.kernel.assign(layer.kernel * (np.arange(layer.kernel.shape[-1]) % 2))
q.pqat_model(half)(x[:2], training=True)
both = q.strip_clustering(q.prune_then_cluster(half, 4))
q.strip_quantization(q.cqat_model(both, preserve_sparsity=True))
""" + _PROBE + """
out["kernels"] = tfc.export.inspect_tflite(data)["kernel_dtypes"]
out["max_unique"] = max(row["unique"] for row in unique)
out["sliced_filters"] = sliced.layers[0].filters
out["collaborative_unique"] = collaborative_unique
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def keras3_then_both_engines():
  """One fresh Python (Keras imported first): Keras 3 only, then tfmot.

  Every Keras 3 method runs first and the binding is probed; then both
  engines prune in the same process and it is probed again. Returns the
  two probes.
  """
  out = _run(_KERAS3_ONLY.replace("print(json.dumps(out))",
                                  "keras3_out = out") + _BOTH_ENGINES +
             "print(json.dumps({'keras3': keras3_out, 'both': out}))\n")
  return out["keras3"], out["both"]


@pytest.mark.parametrize("first", ["keras", "tf_compress"])
def test_both_engines_in_one_process_either_import_order(
    first, request):
  if first == "keras":  # the process that ran the Keras 3 engine first
    out = request.getfixturevalue("keras3_then_both_engines")[1]
  else:
    out = _run("import tf_compress as tfc\nimport keras\n" + _BOTH_ENGINES)
  _check_both_engines(out)


def test_keras3_engine_never_imports_tfmot(keras3_then_both_engines):
  out, _ = keras3_then_both_engines
  assert out["kernels"] == {"int8": 2}
  assert out["max_unique"] <= 4
  assert out["sliced_filters"] == 2
  assert not out["tfmot_imported"]
  assert out["env"] is None


def test_keras3_collaborative_methods_never_import_tfmot(
    keras3_then_both_engines):
  # PQAT, CQAT and prune -> cluster (moved from test_collaborative_keras3,
  # to share this process's TensorFlow import).
  out, _ = keras3_then_both_engines
  assert out["collaborative_unique"] == [4, 4]
  assert not out["tfmot_imported"]


@pytest.mark.parametrize("func", [tf_compress.check_model],
                         ids=["check_model"])
def test_tfmot_only_functions_refuse_keras3_with_advice(func):
  model = keras3.Sequential([keras3.Input((4,)), keras3.layers.Dense(2)])
  with pytest.raises(TypeError) as info:
    func(model)
  message = str(info.value)
  assert "Keras 3" in message
  assert "tf_compress import keras" in message


def test_non_model_raises_type_error():
  with pytest.raises(TypeError, match="must be a tf_keras Model, got str"):
    tf_compress.check_model("not a model")


def test_tf_keras_model_trains():
  model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
  assert tf_compress.check_model(model) is model
  model.compile("sgd", "mse")
  x = np.ones((8, 4), np.float32)
  loss = model.fit(x, np.zeros((8, 2)), epochs=1, verbose=0).history["loss"]
  assert np.isfinite(loss[0])
