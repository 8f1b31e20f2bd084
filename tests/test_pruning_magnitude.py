"""prune_model, strip_pruning and load_pruned_model on real training runs."""

import math

import keras as keras3  # the real Keras 3, to hand us the wrong kind of model
from ai_edge_litert import schema_py_generated as schema
import numpy as np
import pytest
import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_utils  # pylint: disable=line-too-long

import tf_compress
from tf_compress import keras
from tf_compress import ModelError
from tf_compress import pruning
from tf_compress._keras import tf
# Not re-exported by tf_compress.pruning (yet).
from tf_compress.pruning.magnitude import takes_blocks

BATCH = 32


def _compile(model, steps_per_execution=1):
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True),
                metrics=["accuracy"], steps_per_execution=steps_per_execution)
  return model


def _steps(digits):
  return math.ceil(len(digits.x_train) / BATCH)


def _fit(model, digits, epochs, **kwargs):
  return model.fit(digits.x_train, digits.y_train, batch_size=BATCH,
                   epochs=epochs, verbose=0,
                   callbacks=[pruning.PruningCallback()], **kwargs)


def _wrapped_names(model):
  return [w.layer.name for _, w in pruning.find_pruning_wrappers(model)]


@pytest.fixture(scope="module")
def baseline(digits):
  tf_compress.set_seed(0)
  model = _compile(tf_compress.build_model(
      "mlp", digits.input_shape, digits.num_classes, seed=0, keras_version=2))
  model.fit(digits.x_train, digits.y_train, batch_size=BATCH, epochs=3,
            verbose=0)
  return model


@pytest.fixture(scope="module")
def baseline_weights(baseline):
  return [w.copy() for w in baseline.get_weights()]


@pytest.fixture(scope="module")
def polynomial_run(baseline, baseline_weights, digits):
  """80% polynomial over 2 epochs, 1 more epoch of fine-tuning."""
  del baseline_weights  # taken before pruning
  config = pruning.PruningConfig(target_sparsity=0.8, schedule="polynomial",
                                 end_epoch=2)
  pruned = _compile(pruning.prune_model(baseline, config, _steps(digits)))
  history = _fit(pruned, digits, epochs=3)
  return pruned, history


def test_constant_reaches_target(baseline, digits):
  config = pruning.PruningConfig(target_sparsity=0.6, frequency=5)
  pruned = _compile(pruning.prune_model(baseline, config))
  history = _fit(pruned, digits, epochs=1)
  assert _wrapped_names(pruned) == ["fc1", "fc2", "logits"]
  rows = pruning.sparsity_table(pruned)
  assert [r["layer"] for r in rows] == ["fc1", "fc2", "logits"]
  for row in rows:
    assert row["sparsity"] == pytest.approx(0.6, abs=0.01), row
  assert history.history["sparsity"][-1] == pytest.approx(0.6, abs=0.01)


def test_polynomial_reaches_target_and_grows(polynomial_run, digits):
  pruned, history = polynomial_run
  sparsities = history.history["sparsity"]
  assert 0.3 < sparsities[0] < 0.79  # still ramping up after epoch 1
  assert sparsities[1] == pytest.approx(0.8, abs=0.01)
  assert sparsities[2] == pytest.approx(0.8, abs=0.01)
  assert pruning.overall_sparsity(pruned) == pytest.approx(0.8, abs=0.01)
  _, accuracy = pruned.evaluate(digits.x_test, digits.y_test, verbose=0)
  assert accuracy > 0.85


def test_original_unchanged_after_pruning_and_fine_tuning(
    baseline, baseline_weights, polynomial_run, digits):
  pruned, _ = polynomial_run
  assert pruned is not baseline
  after = baseline.get_weights()
  assert len(after) == len(baseline_weights)
  for before, now in zip(baseline_weights, after):
    np.testing.assert_array_equal(before, now)
  assert np.count_nonzero(baseline.get_layer("fc1").kernel.numpy() == 0) == 0
  baseline_vars = {id(v) for v in baseline.weights}
  assert not baseline_vars & {id(v) for v in pruned.weights}
  del digits


def test_strip_gives_plain_independent_model(polynomial_run, digits):
  pruned, _ = polynomial_run
  export = pruning.strip_pruning(pruned)
  assert not pruning.find_pruning_wrappers(export)
  assert [type(l).__name__ for l in export.layers] == [
      "InputLayer", "Flatten", "Dense", "Dense", "Dense"]
  assert [l.name for l in export.layers][2:] == ["fc1", "fc2", "logits"]
  assert not {id(v) for v in export.weights} & {id(v) for v in pruned.weights}
  np.testing.assert_allclose(export.predict(digits.x_test, verbose=0),
                             pruned.predict(digits.x_test, verbose=0),
                             atol=1e-5)
  rows = pruning.sparsity_table(export)
  assert rows == pruning.sparsity_table(pruned)
  # Changing the pruned model afterwards leaves the export alone.
  kernel = export.get_layer("fc1").kernel.numpy().copy()
  pruned.get_layer("prune_low_magnitude_fc1").layer.kernel.assign(
      np.ones_like(kernel))
  np.testing.assert_array_equal(export.get_layer("fc1").kernel.numpy(),
                                kernel)


def test_m_by_n_pattern_along_input_channels(baseline, digits, tmp_path):
  config = pruning.PruningConfig(m_by_n="2:4")
  pruned = _compile(pruning.prune_model(baseline, config))
  _fit(pruned, digits, epochs=1)
  # tfmot keeps the M:N masks after a save/load (its wrapper forgets
  # sparsity_m_by_n, our MbyNSparsity schedule keeps them fixed).
  path = str(tmp_path / "m_by_n.keras")
  pruned.save(path)
  loaded = pruning.load_pruned_model(path)
  _fit(loaded, digits, epochs=1)
  export = pruning.strip_pruning(loaded)
  for name in ("fc1", "fc2", "logits"):
    kernel = export.get_layer(name).kernel.numpy()  # (inputs, outputs)
    fan_in, fan_out = kernel.shape
    # tfmot groups 4 consecutive input channels for each output (TFLite's
    # [out, in] layout); every group keeps at most 2 weights.
    groups = kernel.T.reshape(fan_out, fan_in // 4, 4)
    nonzero = np.count_nonzero(groups, axis=-1)
    assert nonzero.max() == 2, name
    assert np.mean(nonzero == 2) > 0.99, name
    assert pruning_utils.is_pruned_m_by_n(tf.constant(kernel), m_by_n=(2, 4))
    # Groups of 4 outputs are not 2:4: the axis matters.
    by_output = kernel[:, :fan_out // 4 * 4].reshape(fan_in, -1, 4)
    assert np.count_nonzero(by_output, axis=-1).max() > 2, name
  assert pruning.overall_sparsity(export) == pytest.approx(0.5, abs=0.002)


def test_m_by_n_refuses_rank_3_kernels():
  inputs = keras.Input((16, 4))
  x = keras.layers.Conv1D(8, 3, name="conv1d")(inputs)
  model = keras.Model(inputs, keras.layers.Dense(2, name="head")(x))
  with pytest.raises(ModelError, match=r"layer 'conv1d' prunes a weight of "
                     r"shape \(3, 4, 8\)"):
    pruning.prune_model(model, pruning.PruningConfig(m_by_n=(2, 4)))
  pruned = pruning.prune_model(model, pruning.PruningConfig(
      m_by_n=(2, 4), layer_types=["Dense"]))
  assert _wrapped_names(pruned) == ["head"]


def test_selection_include_types_keep(baseline):
  def names(**kwargs):
    config = pruning.PruningConfig(target_sparsity=0.5, **kwargs)
    return _wrapped_names(pruning.prune_model(baseline, config))
  assert names(include="fc.*") == ["fc1", "fc2"]
  assert names(include=["logits", "fc2"]) == ["fc2", "logits"]
  assert names(keep_last=True) == ["fc1", "fc2"]
  assert names(keep_first=True, keep_last=True) == ["fc2"]
  assert names(layer_types="Dense") == ["fc1", "fc2", "logits"]
  with pytest.raises(ModelError, match=r"no layer of model 'mlp' is selected"
                     r" for pruning \(include=\['conv.\*'\]"):
    names(include="conv.*")


def test_sequential_and_nested_models(digits):
  tf_compress.set_seed(1)
  inner = keras.Sequential([keras.Input((8, 8, 1)),
                            keras.layers.Conv2D(8, 3, name="conv"),
                            keras.layers.BatchNormalization(name="bn"),
                            keras.layers.ReLU(name="relu"),
                            keras.layers.Flatten(name="flat")],
                           name="features")
  inputs = keras.Input((8, 8, 1))
  x = inner(inputs)
  outputs = keras.layers.Dense(10, name="head")(
      keras.layers.Dense(32, activation="relu", name="hidden")(x))
  model = keras.Model(inputs, outputs, name="outer")
  before = model.predict(digits.x_test[:16], verbose=0)
  config = pruning.PruningConfig(target_sparsity=0.7, frequency=5)
  pruned = pruning.prune_model(model, config)
  # BatchNormalization and ReLU have nothing to prune: left unwrapped.
  assert [r["layer"] for r in pruning.sparsity_table(pruned)] == [
      "features/conv", "hidden", "head"]
  np.testing.assert_allclose(pruned.predict(digits.x_test[:16], verbose=0),
                             before, atol=1e-6)
  _compile(pruned)
  history = _fit(pruned, digits, epochs=1)
  assert history.history["sparsity/features/conv"][-1] == pytest.approx(
      0.7, abs=0.01)
  assert pruning.overall_sparsity(pruned) == pytest.approx(0.7, abs=0.01)
  export = pruning.strip_pruning(pruned)
  assert isinstance(export.get_layer("features"), keras.Sequential)
  assert pruning.overall_sparsity(export) == pytest.approx(0.7, abs=0.01)
  np.testing.assert_array_equal(model.predict(digits.x_test[:16], verbose=0),
                                before)

  sequential = keras.Sequential([keras.Input((4,)),
                                 keras.layers.Dense(6, name="a"),
                                 keras.layers.Dense(2, name="b")])
  pruned_seq = pruning.prune_model(sequential, config)
  assert isinstance(pruned_seq, keras.Sequential)
  assert _wrapped_names(pruned_seq) == ["a", "b"]


class _Scale(keras.layers.Layer):
  """A custom layer with a weight that tfmot does not know."""

  def build(self, input_shape):
    self.scale = self.add_weight("scale", shape=input_shape[-1:])

  def call(self, inputs):
    return inputs * self.scale


class _PrunableScale(_Scale, tfmot.sparsity.keras.PrunableLayer):

  def get_prunable_weights(self):
    return [self.scale]


def _model_with(layer):
  inputs = keras.Input((12,))
  x = layer(keras.layers.Dense(12, name="dense")(inputs))
  return keras.Model(inputs, keras.layers.Dense(3, name="out")(x))


def test_unprunable_custom_layer_error_and_exclusion():
  model = _model_with(_Scale(name="my_scale"))
  with pytest.raises(ModelError) as info:
    pruning.prune_model(model, pruning.PruningConfig(target_sparsity=0.5))
  message = str(info.value)
  assert "layer 'my_scale' (_Scale) was selected for pruning" in message
  assert "tfmot.sparsity.keras.PrunableLayer" in message
  assert "get_prunable_weights()" in message
  assert "PruningConfig.include" in message
  # Left out by the selection, it is simply left alone.
  pruned = pruning.prune_model(model, pruning.PruningConfig(
      target_sparsity=0.5, layer_types=["Dense"]))
  assert _wrapped_names(pruned) == ["dense", "out"]
  pruned = pruning.prune_model(model, pruning.PruningConfig(
      target_sparsity=0.5, include=["dense", "out"]))
  assert _wrapped_names(pruned) == ["dense", "out"]
  # A PrunableLayer is wrapped and pruned like a built-in one.
  pruned = pruning.prune_model(_model_with(_PrunableScale(name="ok_scale")),
                               pruning.PruningConfig(target_sparsity=0.5))
  assert _wrapped_names(pruned) == ["dense", "ok_scale", "out"]


def test_unregistered_custom_layer_in_nested_model_is_copied():
  inputs = keras.Input((12,))
  inner = keras.Model(inputs, _Scale(name="inner_scale")(inputs),
                      name="inner")
  outer_in = keras.Input((12,))
  outer = keras.Model(outer_in, keras.layers.Dense(3, name="out")(
      inner(outer_in)))
  x = np.random.RandomState(0).rand(4, 12).astype(np.float32)
  pruned = pruning.prune_model(outer, pruning.PruningConfig(
      target_sparsity=0.5, layer_types="Dense"))
  assert _wrapped_names(pruned) == ["out"]
  np.testing.assert_array_equal(pruned.predict(x, verbose=0),
                                outer.predict(x, verbose=0))
  scale = pruned.get_layer("inner").get_layer("inner_scale")
  assert scale is not inner.get_layer("inner_scale")


def test_subclassed_models_refused():
  class Net(keras.Model):

    def __init__(self):
      super().__init__(name="net")
      self.dense = keras.layers.Dense(2)

    def call(self, inputs):
      return self.dense(inputs)

  net = Net()
  net(np.zeros((1, 3), np.float32))
  with pytest.raises(ModelError, match=r"prune_model needs a Sequential or "
                     r"Functional model, got the subclassed model 'net'"):
    pruning.prune_model(net, pruning.PruningConfig(target_sparsity=0.5))
  inputs = keras.Input((3,))
  outer = keras.Model(inputs, net(inputs))
  with pytest.raises(ModelError, match=r"sub-model 'net' \(Net\) was "
                     r"selected for pruning"):
    pruning.prune_model(outer, pruning.PruningConfig(target_sparsity=0.5))


def test_bad_arguments():
  model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
  with pytest.raises(tf_compress.UserInputError, match="PruningConfig"):
    pruning.prune_model(model, {"target_sparsity": 0.5})
  pruned = pruning.prune_model(model,
                               pruning.PruningConfig(target_sparsity=0.5))
  with pytest.raises(ModelError, match="already has pruning wrappers"):
    pruning.prune_model(pruned, pruning.PruningConfig(target_sparsity=0.5))
  with pytest.raises(ModelError, match="model file not found"):
    pruning.load_pruned_model("/nonexistent/pruned.keras")


def test_keras3_model_goes_to_the_native_engine():
  model = keras3.Sequential([keras3.Input((4,)), keras3.layers.Dense(2)])
  assert pruning.sparsity_table(model) == []  # no zeros yet
  pruned = pruning.prune_model(model, pruning.PruningConfig(
      target_sparsity=0.5))
  assert isinstance(pruned, keras3.Model) and pruned is not model
  assert isinstance(pruning.find_pruner(pruned), pruning.Keras3Pruner)
  assert pruning.find_pruner(model) is None  # the caller's copy is untouched
  stripped = pruning.strip_pruning(pruned)
  assert isinstance(stripped, keras3.Model)
  assert stripped.layers[-1].kernel.constraint is None


def test_predictions_identical_before_training(baseline, digits):
  pruned = pruning.prune_model(
      baseline, pruning.PruningConfig(target_sparsity=0.9))
  np.testing.assert_array_equal(
      pruned.predict(digits.x_test[:32], verbose=0),
      baseline.predict(digits.x_test[:32], verbose=0))
  assert tf.reduce_all(pruned.get_layer(
      "prune_low_magnitude_fc1").pruning_step == -1)


# Block pruning. A tiny CNN whose Dense kernel (256 x 64) holds most of the
# weights, so that its layout decides the size of the int8 file.


def _tiny_cnn():
  tf_compress.set_seed(3)
  inputs = keras.Input((8, 8, 1))
  x = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(inputs)
  x = keras.layers.Conv2D(16, 3, activation="relu", name="conv2")(x)
  x = keras.layers.Flatten(name="flatten")(x)
  x = keras.layers.Dense(64, activation="relu", name="fc")(x)
  return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x),
                     name="tiny_cnn")


def _block_config(block_size):
  return pruning.PruningConfig(target_sparsity=0.8, frequency=5,
                               block_size=block_size)


@pytest.fixture(scope="module")
def block_runs(digits, logical_cpus):
  """The tiny CNN trained 2 epochs, then pruned 80% for 1 epoch two ways.

  In (4, 1) blocks under MirroredStrategy (2 replicas), and unstructured.
  """
  del logical_cpus  # the block run trains on 2 replicas
  baseline = _compile(_tiny_cnn())
  baseline.fit(digits.x_train, digits.y_train, batch_size=BATCH, epochs=2,
               verbose=0)
  strategy = tf_compress.make_strategy("mirrored", 2)
  with strategy.scope():
    blocks = _compile(pruning.prune_model(baseline, _block_config("4x1")))
  _fit(blocks, digits, epochs=1)
  flat = _compile(pruning.prune_model(baseline, _block_config((1, 1))))
  _fit(flat, digits, epochs=1)
  return baseline, blocks, flat


def _int8_kernel_bytes(data, shape):
  """The raw bytes of the one FULLY_CONNECTED-shaped int8 tensor `shape`."""
  model = schema.Model.GetRootAsModel(data, 0)
  subgraph = model.Subgraphs(0)
  found = []
  for i in range(subgraph.TensorsLength()):
    tensor = subgraph.Tensors(i)
    if (tensor.Type() == schema.TensorType.INT8 and
        tuple(tensor.ShapeAsNumpy()) == shape):
      buffer = model.Buffers(tensor.Buffer())
      if buffer.DataLength():
        found.append(buffer.DataAsNumpy().view(np.int8))
      elif buffer.Size():
        found.append(np.frombuffer(data, np.int8, count=buffer.Size(),
                                   offset=buffer.Offset()))
  assert len(found) == 1, shape
  return found[0]


def test_block_pruning_dense_in_whole_blocks_conv_unstructured(block_runs):
  _, blocks, _ = block_runs
  sizes = {w.layer.name: tuple(w.block_size)
           for _, w in pruning.find_pruning_wrappers(blocks)}
  assert sizes == {"conv1": (1, 1), "conv2": (1, 1), "fc": (4, 1),
                   "logits": (4, 1)}
  wrapper = dict(pruning.find_pruning_wrappers(blocks))["fc"]
  masks = [v.numpy() for v in wrapper.pruning_vars[0][1].values]
  np.testing.assert_array_equal(masks[0], masks[1])
  export = pruning.strip_pruning(blocks)
  for name in ("fc", "logits"):
    kernel = export.get_layer(name).kernel.numpy()  # (inputs, outputs)
    fan_in, fan_out = kernel.shape
    zeros = np.count_nonzero(kernel.reshape(fan_in // 4, 4, fan_out) == 0,
                             axis=1)
    assert set(np.unique(zeros)) == {0, 4}, name  # whole blocks only
    assert np.mean(zeros == 4) == pytest.approx(0.8, abs=0.01), name
  # conv2's kernel (3, 3, 8, 16) is pruned weight by weight: groups of 4
  # input channels hold every count of zeros.
  conv = export.get_layer("conv2").kernel.numpy()
  groups = np.count_nonzero(conv.reshape(3, 3, 2, 4, 16) == 0, axis=3)
  assert set(np.unique(groups)) == {0, 1, 2, 3, 4}
  rows = {r["layer"]: r["sparsity"] for r in pruning.sparsity_table(export)}
  for name, sparsity in rows.items():
    assert sparsity == pytest.approx(0.8, abs=0.01), name
  assert pruning.overall_sparsity(export) == pytest.approx(0.8, abs=0.01)


def test_block_pruned_int8_file_gzips_smaller(block_runs, digits):
  _, blocks, flat = block_runs
  infos, exports = {}, {}
  for name, pruned in (("blocks", blocks), ("flat", flat)):
    exports[name] = pruning.strip_pruning(pruned)
    data = tf_compress.export.convert_to_tflite(
        exports[name], "int8", representative_data=digits.x_train)
    infos[name] = (data, tf_compress.export.inspect_tflite(data))
  # Same model, same share of zeros, same file size before gzip.
  assert (pruning.overall_sparsity(exports["blocks"]) ==
          pytest.approx(pruning.overall_sparsity(exports["flat"]), abs=0.002))
  assert infos["blocks"][1]["bytes"] == infos["flat"][1]["bytes"]
  gzip_blocks = infos["blocks"][1]["gzip_bytes"]
  gzip_flat = infos["flat"][1]["gzip_bytes"]
  # Measured: 7,930 against 8,942 bytes (11% smaller).
  assert gzip_blocks < 0.95 * gzip_flat, (gzip_blocks, gzip_flat)
  # TFLite stores the FULLY_CONNECTED kernel as (outputs, inputs): a (4, 1)
  # Keras block is 4 contiguous zero bytes.
  kernel = exports["blocks"].get_layer("fc").kernel.numpy()
  raw = _int8_kernel_bytes(infos["blocks"][0], (64, 256))
  assert np.all(raw.reshape(64, 256)[kernel.T == 0] == 0)
  pruned_blocks = np.all(kernel.T.reshape(-1, 4) == 0, axis=1)
  zero_runs = np.all(raw.reshape(-1, 4) == 0, axis=1)
  assert np.all(zero_runs[pruned_blocks])
  assert np.mean(zero_runs) == pytest.approx(0.8, abs=0.01)


def test_block_pruned_model_save_load_keeps_blocks(block_runs, digits,
                                                   tmp_path):
  _, blocks, _ = block_runs
  path = str(tmp_path / "blocks.keras")
  blocks.save(path)
  loaded = pruning.load_pruned_model(path)
  sizes = {w.layer.name: tuple(w.block_size)
           for _, w in pruning.find_pruning_wrappers(loaded)}
  assert sizes == {"conv1": (1, 1), "conv2": (1, 1), "fc": (4, 1),
                   "logits": (4, 1)}
  # (The original was built on 2 replicas: the sums may differ in the last
  # bit.)
  np.testing.assert_allclose(loaded.predict(digits.x_test, verbose=0),
                             blocks.predict(digits.x_test, verbose=0),
                             atol=1e-5)


def test_takes_blocks_only_2d_kernels_wider_than_one():
  inputs = keras.Input((16, 4))
  x = keras.layers.Conv1D(8, 3, name="conv1d")(inputs)
  x = keras.layers.Dense(6, name="wide")(x)
  x = keras.layers.Dense(1, name="narrow")(x)
  model = keras.Model(inputs, x)
  assert [takes_blocks(model.get_layer(n))
          for n in ("conv1d", "wide", "narrow")] == [False, True, False]
  pruned = pruning.prune_model(model, _block_config((2, 2)))
  sizes = {w.layer.name: tuple(w.block_size)
           for _, w in pruning.find_pruning_wrappers(pruned)}
  assert sizes == {"conv1d": (1, 1), "wide": (2, 2), "narrow": (1, 1)}
