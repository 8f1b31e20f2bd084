"""Global-scope pruning, steps_per_execution > 1, and MirroredStrategy."""

import math

import numpy as np
import pytest

import tf_compress
from tf_compress import keras
from tf_compress import pruning
from tf_compress.pruning.global_pruning import apply_global_masks

BATCH = 32


def _compile(model, steps_per_execution=1):
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True),
                steps_per_execution=steps_per_execution)
  return model


@pytest.fixture(scope="module")
def baseline(digits):
  tf_compress.set_seed(0)
  model = _compile(tf_compress.build_model(
      "mlp", digits.input_shape, digits.num_classes, seed=0, keras_version=2))
  model.fit(digits.x_train, digits.y_train, batch_size=BATCH, epochs=3,
            verbose=0)
  return model


def test_global_masks_by_hand():
  a = np.array([3.0, -1.0, 0.5, 0.25], np.float32)
  b = np.array([[2.0, -4.0], [0.1, 1.5]], np.float32)
  masks, threshold = pruning.global_masks([a, b], 0.5)
  # Keep the 4 largest magnitudes of 8: 4, 3, 2, 1.5.
  np.testing.assert_array_equal(masks[0], [1, 0, 0, 0])
  np.testing.assert_array_equal(masks[1], [[1, 1], [0, 1]])
  assert masks[1].dtype == np.float32 and masks[1].shape == (2, 2)
  assert threshold == 1.5
  masks, _ = pruning.global_masks([a, b], 0.0)
  assert all(m.all() for m in masks)
  masks, _ = pruning.global_masks([a, b], 0.99)  # tfmot keeps at least one
  assert sum(int(m.sum()) for m in masks) == 1 and masks[1][0, 1] == 1


def test_global_masks_ties_are_deterministic():
  weights = [np.ones(10, np.float32), np.ones((2, 5), np.float32)]
  first, _ = pruning.global_masks(weights, 0.3)
  second, _ = pruning.global_masks(weights, 0.3)
  assert sum(int(m.sum()) for m in first) == 14  # exactly round(20 * 0.7)
  for x, y in zip(first, second):
    np.testing.assert_array_equal(x, y)


def test_apply_global_masks_sets_masks_thresholds_kernels(baseline):
  config = pruning.PruningConfig(target_sparsity=0.75, scope="global")
  pruned = pruning.prune_model(baseline, config)
  wrappers = [w for _, w in pruning.find_pruning_wrappers(pruned)]
  total = sum(int(np.prod(w.layer.kernel.shape)) for w in wrappers)
  threshold = apply_global_masks(wrappers, 0.75)
  zeros = sum(int(np.sum(w.pruning_vars[0][1].numpy() == 0))
              for w in wrappers)
  assert zeros == total - round(total * 0.25)
  for wrapper in wrappers:
    kernel, mask, thresh = (v.numpy() for v in wrapper.pruning_vars[0])
    assert float(thresh) == pytest.approx(threshold)
    np.testing.assert_array_equal(kernel == 0, mask == 0)
    assert np.abs(kernel[mask == 1]).min() >= threshold


def _fit_global(baseline, digits, config, steps_per_execution=1,
                strategy=None, epochs=1):
  steps = math.ceil(len(digits.x_train) / BATCH)
  if strategy is None:
    pruned = _compile(pruning.prune_model(baseline, config, steps),
                      steps_per_execution)
  else:
    with strategy.scope():
      pruned = _compile(pruning.prune_model(baseline, config, steps),
                        steps_per_execution)
  history = pruned.fit(digits.x_train, digits.y_train, batch_size=BATCH,
                       epochs=epochs, verbose=0,
                       callbacks=[pruning.PruningCallback()])
  return pruned, history


def test_global_scope_layers_differ_overall_meets_target(baseline, digits):
  config = pruning.PruningConfig(target_sparsity=0.8, schedule="polynomial",
                                 end_epoch=1, scope="global")
  pruned, history = _fit_global(baseline, digits, config, epochs=2)
  rows = {r["layer"]: r["sparsity"] for r in pruning.sparsity_table(pruned)}
  assert pruning.overall_sparsity(pruned) == pytest.approx(0.8, abs=0.01)
  assert history.history["sparsity"][-1] == pytest.approx(0.8, abs=0.01)
  # The 640-weight logits layer keeps far more than the hidden layers.
  assert rows["logits"] < rows["fc1"] - 0.1
  assert max(rows.values()) - min(rows.values()) > 0.1
  _, export_rows = pruned, pruning.sparsity_table(
      pruning.strip_pruning(pruned))
  assert {r["layer"]: r["sparsity"] for r in export_rows} == rows


# Linear ramp to 80% at step 30 with updates every 3 steps. With 4 steps per
# execution the callback sees steps 4, 8, ..., 28, 32: it must apply the
# update of step 30 (80%) at 32. Only checking `step % 3 == 0` at the
# callbacks would stop at step 24, i.e. 64%.
_JUMP_CONFIG = dict(target_sparsity=0.8, schedule="polynomial", power=1,
                    begin_step=0, end_step=30, frequency=3)


def test_steps_per_execution_4_reaches_target(baseline, digits):
  config = pruning.PruningConfig(scope="global", **_JUMP_CONFIG)
  pruned, history = _fit_global(baseline, digits, config,
                                steps_per_execution=4)
  assert pruned.optimizer.iterations.numpy() == 40
  assert history.history["sparsity"][-1] == pytest.approx(0.8, abs=0.01)
  assert pruning.overall_sparsity(pruned) == pytest.approx(0.8, abs=0.01)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_mirrored_strategy_reaches_target(baseline, digits, logical_cpus,
                                          scope):
  del logical_cpus
  strategy = tf_compress.make_strategy("mirrored", 2)
  assert strategy.num_replicas_in_sync == 2
  config = pruning.PruningConfig(scope=scope, **_JUMP_CONFIG)
  # tfmot's layer scope updates in the graph; 4 steps per execution checks
  # it there too.
  pruned, history = _fit_global(baseline, digits, config, strategy=strategy,
                                steps_per_execution=4)
  wrapper = pruning.find_pruning_wrappers(pruned)[0][1]
  assert type(wrapper.pruning_vars[0][1]).__name__ == "MirroredVariable"
  # Every replica holds the same mask.
  masks = [v.numpy() for v in wrapper.pruning_vars[0][1].values]
  assert len(masks) == 2
  np.testing.assert_array_equal(masks[0], masks[1])
  assert history.history["sparsity"][-1] == pytest.approx(0.8, abs=0.01)
  export = pruning.strip_pruning(pruned)
  assert pruning.overall_sparsity(export) == pytest.approx(0.8, abs=0.01)
