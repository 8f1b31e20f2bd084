"""sparsity_table, overall_sparsity and format_sparsity_table."""

import numpy as np
import pytest

import tf_compress
from tf_compress import keras
from tf_compress import pruning


def _model():
  tf_compress.set_seed(0)
  inputs = keras.Input((6,))
  x = keras.layers.Dense(4, name="a")(inputs)
  x = keras.layers.BatchNormalization(name="bn")(x)
  outputs = keras.layers.Dense(2, name="b")(x)
  return keras.Model(inputs, outputs, name="tiny")


def test_format_sparsity_table_exact():
  rows = [{"layer": "conv1", "weights": 288, "zeros": 230,
           "sparsity": 230 / 288},
          {"layer": "features/fc1", "weights": 1000, "zeros": 800,
           "sparsity": 0.8}]
  assert pruning.format_sparsity_table(rows) == "\n".join([
      "layer           weights      zeros  sparsity",
      "--------------------------------------------",
      "conv1               288        230    0.7986",
      "features/fc1       1000        800    0.8000",
      "--------------------------------------------",
      "total              1288       1030    0.7997",
  ])
  assert pruning.format_sparsity_table([]).splitlines()[-1] == (
      "total          0          0    0.0000")


def test_overall_sparsity_of_rows():
  rows = [{"layer": "a", "weights": 10, "zeros": 5, "sparsity": 0.5},
          {"layer": "b", "weights": 30, "zeros": 3, "sparsity": 0.1}]
  assert pruning.overall_sparsity(rows) == 8 / 40
  assert pruning.overall_sparsity([]) == 0.0


def test_wrapped_model_counts_kernel_times_mask():
  pruned = pruning.prune_model(
      _model(), pruning.PruningConfig(target_sparsity=0.5))
  wrapper_a = pruned.get_layer("prune_low_magnitude_a")
  wrapper_b = pruned.get_layer("prune_low_magnitude_b")
  mask_a = np.ones((6, 4), np.float32)
  mask_a[:3] = 0  # 12 of 24
  wrapper_a.pruning_vars[0][1].assign(mask_a)
  kernel_b = wrapper_b.layer.kernel.numpy()
  kernel_b[0, 0] = 0.0  # a kernel zero counts even where the mask is 1
  wrapper_b.layer.kernel.assign(kernel_b)
  rows = pruning.sparsity_table(pruned)
  assert rows == [
      {"layer": "a", "weights": 24, "zeros": 12, "sparsity": 0.5},
      {"layer": "b", "weights": 8, "zeros": 1, "sparsity": 0.125}]
  assert pruning.overall_sparsity(pruned) == 13 / 32
  # Masks apply in the export too, so the stripped table is the same.
  export = pruning.strip_pruning(pruned)
  assert pruning.sparsity_table(export) == rows


def test_plain_model_lists_kernels_with_zeros_only():
  model = _model()
  assert pruning.sparsity_table(model) == []
  assert pruning.overall_sparsity(model) == 0.0
  kernel = model.get_layer("b").kernel.numpy()
  kernel[:2] = 0.0
  model.get_layer("b").kernel.assign(kernel)
  # BatchNormalization has nothing tfmot prunes; "a" has no zeros.
  assert pruning.sparsity_table(model) == [
      {"layer": "b", "weights": 8, "zeros": 4, "sparsity": 0.5}]


def test_nested_names():
  inner = _model()
  inputs = keras.Input((6,))
  outer = keras.Model(inputs, keras.layers.Dense(3, name="head")(
      inner(inputs)), name="outer")
  pruned = pruning.prune_model(outer, pruning.PruningConfig(
      target_sparsity=0.5))
  assert [r["layer"] for r in pruning.sparsity_table(pruned)] == [
      "tiny/a", "tiny/b", "head"]
  assert all(r["zeros"] == 0 for r in pruning.sparsity_table(pruned))


def test_keras3_model_counted_by_the_native_engine():
  import keras as keras3  # pylint: disable=g-import-not-at-top
  model = keras3.Sequential([keras3.Input((2,)),
                             keras3.layers.Dense(4, name="dense")])
  assert pruning.overall_sparsity(model) == 0.0
  kernel = model.layers[0].kernel
  values = keras3.ops.convert_to_numpy(kernel)
  values.reshape(-1)[:6] = 0.0
  kernel.assign(values)
  assert pruning.sparsity_table(model) == [
      {"layer": "dense", "weights": 8, "zeros": 6, "sparsity": 0.75}]
