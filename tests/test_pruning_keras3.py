"""The native Keras 3 pruning engine: masks, schedules, scopes, model kinds."""

import contextlib

import keras
import numpy as np
import pytest

import tf_compress
from tf_compress import pruning
from tf_compress.pruning import keras3_masks
from tf_compress.pruning import keras3_pruning

STEPS = 8  # steps per epoch on the fixed batch data below


def _data(shape=(8, 8, 1), n=256, classes=4, seed=0):
  rng = np.random.RandomState(seed)
  x = rng.rand(n, *shape).astype("float32")
  y = rng.randint(0, classes, n)
  return x, y


def _cnn(seed=0):
  keras.utils.set_random_seed(seed)
  inputs = keras.Input((8, 8, 1))
  x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
  x = keras.layers.Flatten()(x)
  x = keras.layers.Dense(16, activation="relu", name="fc")(x)
  outputs = keras.layers.Dense(4, name="logits")(x)
  return keras.Model(inputs, outputs, name="cnn")


def _fit(model, epochs=2, x=None, y=None, callbacks=(), strategy=None,
         **compile_args):
  if x is None:
    x, y = _data()
  with strategy.scope() if strategy else contextlib.nullcontext():
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), **compile_args)
  return model.fit(x, y, batch_size=32, epochs=epochs, verbose=0,
                   shuffle=False,
                   callbacks=[pruning.PruningCallback()] + list(callbacks))


# ------------------------------------------------------------------ masks


def test_magnitude_mask_zeros_exactly_the_smallest():
  kernel = np.random.RandomState(0).randn(16, 8).astype("float32")
  mask = np.asarray(keras3_masks.magnitude_mask(kernel, 0.75))
  assert mask.sum() == 32  # 128 weights, 96 zeros
  assert np.abs(kernel[mask == 0]).max() <= np.abs(kernel[mask == 1]).min()


def test_block_mask_zeros_whole_blocks():
  kernel = np.random.RandomState(1).randn(16, 8).astype("float32")
  mask = np.asarray(keras3_masks.block_mask(kernel, 0.5, (4, 1)))
  blocks = mask.reshape(4, 4, 8)
  assert (blocks.min(axis=1) == blocks.max(axis=1)).all()
  assert mask.mean() == 0.5


def test_m_by_n_mask_holds_in_every_group():
  kernel = np.random.RandomState(2).randn(3, 3, 8, 4).astype("float32")
  mask = np.asarray(keras3_masks.m_by_n_mask(kernel, 2, 4, axis=2))
  kept = mask.reshape(3, 3, 2, 4, 4).sum(axis=3)
  assert (kept == 2).all()
  assert keras3_masks.m_by_n_mask(kernel, 2, 3, axis=2) is None


def test_global_masks_use_one_threshold():
  rng = np.random.RandomState(3)
  big, small = rng.randn(32, 8), 0.1 * rng.randn(4, 4)
  masks = [np.asarray(m) for m in keras3_masks.global_masks([big, small],
                                                            0.5)]
  kept = np.concatenate([np.abs(k[m == 1]) for k, m in
                         zip((big, small), masks)])
  dropped = np.concatenate([np.abs(k[m == 0]) for k, m in
                            zip((big, small), masks)])
  assert dropped.max() <= kept.min()
  assert sum(int((m == 0).sum()) for m in masks) == (256 + 16) // 2
  assert (masks[1] == 0).mean() > 0.9 > (masks[0] == 0).mean()


# --------------------------------------------------------------- schedules


@pytest.mark.parametrize("schedule,scope", [
    ("constant", "layer"), ("polynomial", "layer"), ("constant", "global"),
    ("polynomial", "global")])
def test_target_reached_for_every_schedule_and_scope(schedule, scope):
  model = _cnn()
  before = [w.copy() for w in model.get_weights()]
  config = pruning.PruningConfig(target_sparsity=0.8, schedule=schedule,
                                 scope=scope, end_epoch=2, frequency=2)
  pruned = pruning.prune_model(model, config, steps_per_epoch=STEPS)
  assert pruned is not model
  history = _fit(pruned, epochs=3)
  assert history.history["sparsity"][-1] == pytest.approx(0.8, abs=0.01)
  rows = pruning.sparsity_table(pruned)
  assert [r["layer"] for r in rows] == ["conv", "fc", "logits"]
  if scope == "layer":
    for row in rows:
      assert row["sparsity"] == pytest.approx(0.8, abs=0.01)
  # The caller's model is a different object with its own weights.
  assert all(np.array_equal(a, b) for a, b in zip(before,
                                                  model.get_weights()))
  if schedule == "polynomial":
    # The schedule ramps up: the first epoch ends below the target.
    assert history.history["sparsity"][0] < 0.79


def test_forward_pass_sees_masked_weights_at_every_step():
  pruned = pruning.prune_model(_cnn(), pruning.PruningConfig(
      target_sparsity=0.5, frequency=1), steps_per_epoch=STEPS)
  pruner = keras3_pruning.find_pruner(pruned)
  seen = []

  class Check(keras.callbacks.Callback):

    def on_train_batch_end(self, batch, logs=None):
      for _, _, _, variable, mask in pruner.targets:
        kernel = keras.ops.convert_to_numpy(variable)
        seen.append(bool((kernel[keras.ops.convert_to_numpy(mask) == 0]
                          == 0).all()))

  _fit(pruned, epochs=1, callbacks=[Check()], steps_per_execution=4)
  assert seen and all(seen)
  assert pruning.overall_sparsity(pruning.sparsity_table(pruned)) == (
      pytest.approx(0.5, abs=0.01))


def test_m_by_n_2_4_holds_for_every_group_after_training():
  pruned = pruning.prune_model(_cnn(), pruning.PruningConfig(m_by_n="2:4"))
  _fit(pruned, epochs=2)
  for path, layer, name, variable, _ in keras3_pruning.find_pruner(
      pruned).targets:
    kernel = keras.ops.convert_to_numpy(variable)
    axis = 0 if kernel.ndim == 2 else kernel.ndim - 2
    groups = np.moveaxis(kernel, axis, -1).reshape(-1, 4)
    assert ((groups != 0).sum(axis=1) <= 2).all(), (path, name)
  # conv's kernel has 1 input channel: not a multiple of 4, left dense.
  assert "conv/kernel" in keras3_pruning.find_pruner(pruned).skipped


def test_block_pruning_of_dense_kernels():
  pruned = pruning.prune_model(_cnn(), pruning.PruningConfig(
      target_sparsity=0.5, block_size="4x1", frequency=1),
      steps_per_epoch=STEPS)
  _fit(pruned, epochs=1)
  fc = keras.ops.convert_to_numpy(pruned.get_layer("fc").kernel)
  blocks = (fc != 0).reshape(-1, 4, fc.shape[1])
  assert (blocks.min(axis=1) == blocks.max(axis=1)).all()
  assert (fc == 0).mean() == pytest.approx(0.5, abs=0.01)


def test_layer_selection_by_name_and_type():
  model = _cnn()
  only_dense = pruning.prune_model(model, pruning.PruningConfig(
      target_sparsity=0.5, layer_types=("Dense",), keep_last=True))
  names = [p for p, *_ in keras3_pruning.find_pruner(only_dense).targets]
  assert names == ["fc"]
  by_name = pruning.prune_model(model, pruning.PruningConfig(
      target_sparsity=0.5, include=("conv",)))
  assert [p for p, *_ in keras3_pruning.find_pruner(by_name).targets] == [
      "conv"]


# ----------------------------------------------------------- layer kinds


def _kinds_model():
  keras.utils.set_random_seed(1)
  tokens = keras.Input((6,), dtype="int32")
  emb = keras.layers.Embedding(32, 8, name="embedding")(tokens)
  seq = keras.layers.Conv1D(8, 3, name="conv1d")(emb)
  seq = keras.layers.EinsumDense("abc,cd->abd", (4, 8), name="einsum")(seq)
  seq = keras.layers.Flatten()(seq)
  image = keras.Input((8, 8, 4))
  img = keras.layers.DepthwiseConv2D(3, name="depthwise")(image)
  img = keras.layers.SeparableConv2D(8, 3, name="separable")(img)
  img = keras.layers.Reshape((4, 4, 4, 2))(img)
  img = keras.layers.Conv3D(4, 2, name="conv3d")(img)
  img = keras.layers.Flatten()(img)
  joined = keras.layers.Concatenate()([seq, img])
  out = keras.layers.Dense(4, name="logits")(joined)
  return keras.Model([tokens, image], out)


def test_every_kernel_kind_is_pruned():
  model = _kinds_model()
  pruned = pruning.prune_model(model, pruning.PruningConfig(
      target_sparsity=0.6, frequency=1), steps_per_epoch=4)
  rng = np.random.RandomState(0)
  x = [rng.randint(0, 32, (64, 6)), rng.rand(64, 8, 8, 4).astype("float32")]
  y = rng.randint(0, 4, 64)
  _fit(pruned, epochs=1, x=x, y=y)
  targets = keras3_pruning.find_pruner(pruned).targets
  weights = {(p, n) for p, _, n, _, _ in targets}
  assert weights == {
      ("embedding", "embeddings"), ("conv1d", "kernel"), ("einsum", "kernel"),
      ("depthwise", "kernel"), ("separable", "depthwise_kernel"),
      ("separable", "pointwise_kernel"), ("conv3d", "kernel"),
      ("logits", "kernel")}
  for row in pruning.sparsity_table(pruned):
    assert row["sparsity"] == pytest.approx(0.6, abs=0.02), row


# -------------------------------------------- subclassed and nested models


class SubclassedCNN(keras.Model):

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.conv = keras.layers.Conv2D(8, 3, activation="relu", name="conv")
    self.flat = keras.layers.Flatten()
    self.head = keras.Sequential([keras.layers.Dense(16, activation="relu",
                                                     name="fc"),
                                  keras.layers.Dense(4, name="logits")],
                                 name="head")

  def call(self, x):
    return self.head(self.flat(self.conv(x)))


def test_subclassed_model_with_nested_head_is_pruned_in_place():
  keras.utils.set_random_seed(2)
  model = SubclassedCNN()
  model(np.zeros((1, 8, 8, 1), "float32"))
  pruned = pruning.prune_model(model, pruning.PruningConfig(
      target_sparsity=0.7, frequency=1), steps_per_epoch=STEPS)
  assert pruned is model  # a subclassed model cannot be cloned
  _fit(pruned, epochs=1)
  rows = {r["layer"]: r["sparsity"] for r in pruning.sparsity_table(model)}
  assert set(rows) == {"conv", "head/fc", "head/logits"}
  assert all(v == pytest.approx(0.7, abs=0.01) for v in rows.values())
  stripped = pruning.strip_pruning(model)
  assert stripped is model and keras3_pruning.find_pruner(model) is None
  assert model.get_layer("conv").kernel.constraint is None
  assert pruning.overall_sparsity(pruning.sparsity_table(model)) == (
      pytest.approx(0.7, abs=0.01))


def test_nested_functional_model_save_reload_and_masks_from_zeros(tmp_path):
  inner = _cnn(seed=3)
  inputs = keras.Input((8, 8, 1))
  outer = keras.Model(inputs, keras.layers.Activation("linear")(
      inner(inputs)))
  pruned = pruning.prune_model(outer, pruning.PruningConfig(
      target_sparsity=0.6, frequency=1), steps_per_epoch=STEPS)
  _fit(pruned, epochs=1)
  pruner = keras3_pruning.find_pruner(pruned)
  assert [p for p, *_ in pruner.targets] == ["cnn/conv", "cnn/fc",
                                             "cnn/logits"]
  masks = [keras.ops.convert_to_numpy(m) for *_, m in pruner.targets]
  path = tmp_path / "mid.keras"
  pruned.save(path)
  loaded = keras.models.load_model(path, safe_mode=True)
  again = keras3_pruning.Keras3Pruner(loaded, pruner.config,
                                      steps_per_epoch=STEPS)
  reloaded = [keras.ops.convert_to_numpy(m) for *_, m in again.targets]
  assert all(np.array_equal(a, b) for a, b in zip(masks, reloaded))
  assert int(loaded.optimizer.iterations) == STEPS  # the step comes back


def test_callback_on_an_unpruned_keras3_model_is_a_clear_error():
  model = _cnn()
  model.compile("adam", "mse")
  with pytest.raises(tf_compress.ModelError, match="is not being pruned"):
    pruning.PruningCallback().set_model(model)


def test_pruning_fit_under_mirrored_strategy(logical_cpus):
  strategy = tf_compress.make_strategy("mirrored", 2)
  with strategy.scope():
    pruned = pruning.prune_model(_cnn(), pruning.PruningConfig(
        target_sparsity=0.8, schedule="polynomial", end_epoch=1,
        frequency=1), steps_per_epoch=STEPS)
  history = _fit(pruned, epochs=2, strategy=strategy)
  assert history.history["sparsity"][-1] == pytest.approx(0.8, abs=0.01)
  assert np.isfinite(history.history["loss"]).all()
