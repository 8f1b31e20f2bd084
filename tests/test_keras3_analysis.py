"""Model statistics of Keras 3 models: params, non-zeros, MACs, summaries.

Every count is computed by hand from the layer shapes. Weights are set to
known values, so non-zero counts are exact.
"""

import importlib

import keras
import numpy as np
import pytest

import tf_compress
from tf_compress import _tfmot
from tf_compress import analysis
from tf_compress import models
from tf_compress import pruning
from tf_compress.analysis import report_weights
from tf_compress.pruning import keras3_pruning

L = keras.layers
# `tf_compress.analysis.model_summary` is the function; this is its module.
model_summary_lib = importlib.import_module(
    "tf_compress.analysis.model_summary")


def _ones(model):
  """Sets every weight of `model` to 1, so non-zeros are the sizes."""
  model.set_weights([np.ones(w.shape, "float32") for w in model.weights])
  return model


def _mlp(name="mlp"):
  """Dense 4->3, BatchNorm(3), Dense 3->2: 15 + 12 + 8 = 35 params."""
  return keras.Sequential([keras.Input((4,)), L.Dense(3, name="fc1"),
                           L.BatchNormalization(name="bn"),
                           L.Dense(2, name="fc2")], name=name)


def _conv():
  """Conv 3x3x1x2 on 5x5x1 (valid: 3x3 out), Flatten (18), Dense 18->4.

  Params: 18 + 2 + 72 + 4 = 96. MACs: 3*3 positions * 18 + 18*4 = 234.
  """
  inputs = keras.Input((5, 5, 1))
  x = L.Conv2D(2, 3, name="conv")(inputs)
  x = L.Flatten(name="flat")(x)
  return keras.Model(inputs, L.Dense(4, name="fc")(x), name="convnet")


def _nested():
  """Input 4 -> inner Sequential (Dense 4->3, Dense 3->3) -> Dense 3->2."""
  inner = keras.Sequential([keras.Input((4,)), L.Dense(3, name="a"),
                            L.Dense(3, name="b")], name="inner")
  inputs = keras.Input((4,))
  return keras.Model(inputs, L.Dense(2, name="head")(inner(inputs)),
                     name="outer")


class _Net(keras.Model):
  """A subclassed model: Dense 4->5, then Dense 5->2 (25 + 12 = 37)."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.hidden = L.Dense(5, name="hidden")
    self.out = L.Dense(2, name="out")

  def call(self, x):
    return self.out(self.hidden(x))


def _net():
  net = _Net(name="net")
  net(np.zeros((1, 4), "float32"))
  return net


@pytest.fixture
def no_tfmot(monkeypatch):
  """Fails the test if the Keras 3 path reaches for tfmot."""

  def refuse(*args, **kwargs):
    raise AssertionError("tfmot was used on a Keras 3 model")

  monkeypatch.setattr(_tfmot, "import_tfmot", refuse)
  monkeypatch.setattr(model_summary_lib, "_tfmot_wrappers", refuse)


def test_sequential_counts_by_hand(no_tfmot):
  model = _mlp()
  # Glorot kernels are non-zero; biases, beta and the moving mean start at 0.
  assert analysis.count_params(model) == 35
  assert analysis.count_nonzero_params(model) == 12 + 3 + 3 + 6
  _ones(model)
  weights = model.get_weights()
  weights[0][:2] = 0.0  # two rows of fc1's kernel: 6 zeros
  weights[-1][:] = 0.0  # fc2's bias: 2 zeros
  model.set_weights(weights)
  assert analysis.count_nonzero_params(model) == 35 - 8
  stats = tf_compress.model_stats(model)
  assert stats["params"] == 35 and stats["nonzero_params"] == 27
  assert stats["keras_bytes"] == analysis.keras_file_bytes(model) > 0


def test_functional_conv_params_and_macs(no_tfmot):
  model = _conv()
  assert analysis.count_params(model) == 96
  macs = analysis.count_macs(model)
  assert macs == {"total": 234, "per_layer": [
      {"layer": "conv", "type": "Conv2D", "macs": 162},
      {"layer": "flat", "type": "Flatten", "macs": 0},
      {"layer": "fc", "type": "Dense", "macs": 72}]}


@pytest.mark.parametrize("layer,input_shape,expected", [
    (lambda: L.Conv2DTranspose(3, 2, strides=2), (4, 4, 2), 16 * 2 * 2 * 3 * 2),
    (lambda: L.DepthwiseConv2D(3, depth_multiplier=2), (5, 5, 4),
     9 * 3 * 3 * 4 * 2),
    (lambda: L.SeparableConv2D(6, 3), (5, 5, 4), 9 * (3 * 3 * 4 + 4 * 6)),
    (lambda: L.Conv1D(4, 3, groups=2), (6, 2), 4 * 3 * 1 * 4),
    (lambda: L.Dense(5), (7, 3), 7 * 3 * 5),
], ids=["conv2d_transpose", "depthwise", "separable", "grouped_conv1d",
        "dense_on_sequence"])
def test_single_layer_macs(layer, input_shape, expected):
  inputs = keras.Input(input_shape)
  model = keras.Model(inputs, layer()(inputs))
  assert analysis.count_macs(model)["total"] == expected


def test_nested_model_is_counted_layer_by_layer(no_tfmot):
  model = _ones(_nested())
  assert analysis.count_params(model) == 15 + 12 + 8
  assert [(r["layer"], r["macs"]) for r in
          analysis.count_macs(model)["per_layer"]] == [
              ("inner/a", 12), ("inner/b", 9), ("head", 6)]
  summary = analysis.model_summary(model)
  assert [(r["name"], r["output_shape"], r["params"], r["macs"])
          for r in summary["rows"]] == [
              ("inner/a", [None, 3], 15, 12), ("inner/b", [None, 3], 12, 9),
              ("head", [None, 2], 8, 6)]
  assert summary["totals"]["params"] == summary["totals"]["nonzero"] == 35
  assert summary["totals"]["memory_bytes"] == 4 * 35


def test_subclassed_model_rows_without_shapes(no_tfmot):
  net = _net()
  assert analysis.count_params(net) == 37
  summary = analysis.model_summary(net)
  assert [(r["name"], r["type"], r["output_shape"], r["params"], r["macs"])
          for r in summary["rows"]] == [("hidden", "Dense", None, 25, None),
                                        ("out", "Dense", None, 12, None)]
  assert summary["totals"]["macs"] is None
  with pytest.raises(tf_compress.UserInputError, match="not a built"):
    analysis.count_macs(net)


def test_pruned_model_summary_excludes_masks(no_tfmot):
  model = _ones(_mlp())
  plain = analysis.model_summary(model)
  pruned = pruning.prune_model(model, pruning.PruningConfig(0.5))
  pruner = keras3_pruning.find_pruner(pruned)
  assert [t[0] for t in pruner.targets] == ["fc1", "fc2"]
  # The masks, set here without touching the kernels: 8 of fc1's 12 kernel
  # values and 1 of fc2's 6 are masked out.
  masks = {"fc1": np.ones((4, 3), "float32"), "fc2": np.ones((3, 2),
                                                             "float32")}
  masks["fc1"][:2, :] = 0.0
  masks["fc1"][2, :2] = 0.0
  masks["fc2"][0, 0] = 0.0
  for path, _, _, _, mask in pruner.targets:
    mask.assign(masks[path])
  summary = analysis.model_summary(pruned)
  assert [[w["name"] for w in r["weights"]] for r in summary["rows"]] == [
      ["kernel", "bias"], ["gamma", "beta", "moving_mean", "moving_variance"],
      ["kernel", "bias"]]
  assert [(r["name"], r["params"], r["nonzero"]) for r in summary["rows"]] == [
      ("fc1", 15, 15 - 8), ("bn", 12, 12), ("fc2", 8, 8 - 1)]
  assert summary["totals"]["params"] == plain["totals"]["params"] == 35
  assert summary["totals"]["memory_bytes"] == 4 * 35
  # Pruned kernels count kernel * mask; the masks are not weights.
  assert analysis.count_params(pruned) == 35
  assert analysis.count_nonzero_params(pruned) == 35 - 9
  assert analysis.model_summary(model)["totals"]["nonzero"] == 35  # a copy


def test_subclassed_model_nested_in_a_functional(no_tfmot):
  net = _net()
  inputs = keras.Input((4,))
  outer = keras.Model(inputs, L.Dense(3, name="head")(net(inputs)),
                      name="outer")
  assert analysis.count_params(outer) == 37 + 9
  summary = analysis.model_summary(outer)
  assert [(r["name"], r["params"]) for r in summary["rows"]] == [
      ("net/hidden", 25), ("net/out", 12), ("head", 9)]
  assert summary["totals"]["macs"] is None  # the subclassed part is unknown


def _mask_out(pruner, zeros):
  """Zeros `zeros[path]` mask entries (flat indices); kernels untouched."""
  for path, _, _, _, mask in pruner.targets:
    value = np.ones(mask.shape, "float32")
    value.reshape(-1)[list(zeros.get(path, ()))] = 0.0
    mask.assign(value)


def test_pruned_subclassed_and_nested_pruned_models(no_tfmot):
  net = _ones(_net())
  assert pruning.prune_model(net, pruning.PruningConfig(0.5)) is net
  _mask_out(keras3_pruning.find_pruner(net), {"hidden": range(7),
                                              "out": [0]})
  assert [(r["name"], r["params"], r["nonzero"]) for r in
          analysis.model_summary(net)["rows"]] == [("hidden", 25, 18),
                                                   ("out", 12, 11)]
  assert analysis.count_params(net) == 37
  assert analysis.count_nonzero_params(net) == 37 - 8
  # A pruned model used as a layer: its pruner is found inside the outer one.
  pruned = pruning.prune_model(_ones(_mlp()), pruning.PruningConfig(0.5))
  _mask_out(keras3_pruning.find_pruner(pruned), {"fc2": range(6)})
  inputs = keras.Input((4,))
  outer = keras.Model(inputs, pruned(inputs), name="outer")
  rows = analysis.model_summary(outer)["rows"]
  assert [(r["name"], r["params"], r["nonzero"]) for r in rows] == [
      ("mlp/fc1", 15, 15), ("mlp/bn", 12, 12), ("mlp/fc2", 8, 2)]
  assert analysis.count_nonzero_params(outer) == 35 - 6


def test_summary_reference_ratios_and_saved_file(tmp_path, no_tfmot):
  small, wide = _ones(_mlp()), _ones(_conv())
  summary = analysis.model_summary(small, reference=wide)
  assert summary["ratios"]["params"] == pytest.approx(96 / 35)
  assert summary["ratios"]["macs"] == pytest.approx(234 / (12 + 6))
  path = tmp_path / "mlp.keras"
  size = tf_compress.save_model(small, path)
  from_file = analysis.model_summary(path)
  assert from_file["name"] == "mlp.keras" and from_file["file_bytes"] == size
  assert from_file["totals"] == summary["totals"]


def test_kernel_values_named_by_path():
  model = _ones(_nested())
  values = report_weights.keras_kernel_values(model)
  assert {name: v.size for name, v in values.items()} == {
      "inner/a/kernel": 12, "inner/b/kernel": 9, "head/kernel": 6}


def test_check_model_fits_graph_and_subclassed():
  models.check_model_fits(_mlp(), (4,), 2)
  with pytest.raises(tf_compress.ModelError, match=r"shape \(4,\).*\(6,\)"):
    models.check_model_fits(_mlp(), (6,), 2)
  with pytest.raises(tf_compress.ModelError, match="3 classes"):
    models.check_model_fits(_nested(), (4,), 3)
  models.check_model_fits(_net(), (4,), 2)  # run symbolically
  with pytest.raises(tf_compress.ModelError, match="5 classes"):
    models.check_model_fits(_net(), (4,), 5)
  with pytest.raises(tf_compress.ModelError, match=r"inputs of shape \(7,\)"):
    models.check_model_fits(_net(), (7,), 2)


@pytest.mark.parametrize("func", [
    analysis.count_params, analysis.count_nonzero_params,
    tf_compress.model_stats, analysis.model_summary, analysis.count_macs,
    lambda m: models.check_model_fits(m, (4,), 2),
], ids=["count_params", "count_nonzero", "model_stats", "model_summary",
        "count_macs", "check_model_fits"])
def test_non_models_raise_type_error(func):
  with pytest.raises(TypeError, match="Keras 3 or tf_keras Model, got Dense"):
    func(L.Dense(2))
