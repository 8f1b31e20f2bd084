"""Real Keras 3 architectures end to end: prune, QAT, int8, cluster, slice.

Each `keras.applications` model is built once per module (Keras 3,
`weights=None`, 10 classes, logits out, a small input) and goes through the
public tf_compress API: pruning to 50%, one epoch of QAT on the pruned and
stripped model, int8 export checked in the flatbuffer and against LiteRT,
clustering to 16 values, and slicing half of the channels.

Speed: the data is one batch of 8 images, so every fit is one step, and the
fits run eagerly. For a one-step fit tracing dominates: MobileNetV2's pruning
fit took 36 s traced (with `jit_compile=False`) and 2.7 s eagerly on the
2-core machine. The traced inference graph is still exercised by the int8
export, which with the QAT step is most of this module's time (35-90 s per
architecture; the input size hardly matters: ResNet50 at 32x32 saved 10 s).
"""

import dataclasses
import typing

import keras
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

from tf_compress import analysis
from tf_compress import export
from tf_compress import pruning
from tf_compress import quantization
from tf_compress.export import flatbuffer
from tf_compress.quantization import keras3_qat

pytestmark = pytest.mark.slow

_LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
_KERNEL_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
_KERNEL_LAYERS = ("Conv2D", "DepthwiseConv2D", "Dense")
_APPS = keras.applications


@dataclasses.dataclass(frozen=True)
class Arch:
  """One architecture under test.

  Attributes:
    build: returns the model (logits out).
    preprocess: maps images in [0, 255] to the model's input range.
    kernels: `{layer class: count}` of its Conv2D/DepthwiseConv2D/Dense.
    head: the classifier layer (a Dense, or MobileNetV3's 1x1 Conv2D).
  """
  build: typing.Callable
  preprocess: typing.Callable
  kernels: dict
  head: str = "predictions"


def _app(constructor, size, **kwargs):
  return lambda: constructor(input_shape=(size, size, 3), weights=None,
                             classes=10, classifier_activation=None, **kwargs)


def _identity(images):
  # These models rescale [0, 255] images themselves (Rescaling layers).
  return images


ARCHS = [
    pytest.param(Arch(
        _app(_APPS.MobileNetV2, 96, alpha=0.35),
        _APPS.mobilenet_v2.preprocess_input,
        {"Conv2D": 35, "DepthwiseConv2D": 17, "Dense": 1}),
                 id="mobilenet_v2"),
    pytest.param(Arch(
        _app(_APPS.MobileNetV3Small, 64, minimalistic=True), _identity,
        {"Conv2D": 25, "DepthwiseConv2D": 11}, "logits"),
                 id="mobilenet_v3_small_minimalistic"),
    pytest.param(Arch(
        _app(_APPS.MobileNetV3Small, 64, minimalistic=False), _identity,
        {"Conv2D": 43, "DepthwiseConv2D": 11}, "logits"),
                 id="mobilenet_v3_small"),
    pytest.param(Arch(
        _app(_APPS.ResNet50, 64), _APPS.resnet50.preprocess_input,
        {"Conv2D": 53, "Dense": 1}),
                 id="resnet50"),
    pytest.param(Arch(
        _app(_APPS.EfficientNetB0, 64), _identity,
        {"Conv2D": 65, "DepthwiseConv2D": 16, "Dense": 1}),
                 id="efficientnet_b0"),
]


def _images(model, count, seed):
  """Uniform random [0, 255] images (`Arch.preprocess` maps them)."""
  shape = model.input_shape[1:]
  rng = np.random.RandomState(seed)
  return rng.uniform(0, 255, (count,) + shape).astype("float32")


def _calibrate_batch_norms(model, x):
  """Sets every BN's moving statistics to those of the batch `x`.

  With `weights=None` the moving mean and variance are 0 and 1, so in
  inference mode the activations blow up or die out and every input gets
  the same logits (a LiteRT comparison that could not fail). One forward
  pass in training mode with momentum 0 gives input-dependent logits.
  """
  layers = [layer for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)]
  momenta = [layer.momentum for layer in layers]
  for layer in layers:
    layer.momentum = 0.0
  model(x, training=True)
  for layer, momentum in zip(layers, momenta):
    layer.momentum = momentum


def _fit(model, x, y, callbacks=(), optimizer="adam"):
  """One step on the batch (eagerly: see the module docstring)."""
  model.compile(optimizer, _LOSS, jit_compile=False, run_eagerly=True)
  model.fit(x, y, batch_size=len(x), epochs=1, verbose=0,
            callbacks=list(callbacks))
  return model


def _kernel_layer_counts(model):
  counts = {}
  for layer in model.layers:
    name = type(layer).__name__
    if name in _KERNEL_LAYERS:
      counts[name] = counts.get(name, 0) + 1
  return counts


@pytest.fixture(scope="module", params=ARCHS)
def arch(request):
  return request.param


@pytest.fixture(scope="module")
def float_model(arch):
  keras.utils.set_random_seed(0)
  model = arch.build()
  _calibrate_batch_norms(model, arch.preprocess(_images(model, 16, 1)))
  return model


@pytest.fixture(scope="module")
def train_data(arch, float_model):
  x = arch.preprocess(_images(float_model, 8, 2))
  return x, np.random.RandomState(2).randint(0, 10, len(x))


@pytest.fixture(scope="module")
def pruned(float_model, train_data):
  model = pruning.prune_model(float_model, pruning.PruningConfig(
      target_sparsity=0.5, frequency=1), steps_per_epoch=1)
  return _fit(model, *train_data, callbacks=[pruning.PruningCallback()])


@pytest.fixture(scope="module")
def qat_model(arch, pruned, train_data):
  stripped = pruning.strip_pruning(pruned)
  # Half the weights are gone, so the BN statistics are stale: ResNet50's
  # logits saturated the output range (the same two values for every input)
  # until they were estimated again.
  _calibrate_batch_norms(stripped, arch.preprocess(_images(stripped, 16, 1)))
  qat = quantization.quantize_model(stripped)
  # A small step, as QAT fine-tuning is done: Adam's first step moves every
  # weight by its learning rate, which left ResNet50's QAT logits the same
  # for every input.
  return _fit(qat, *train_data, optimizer=keras.optimizers.SGD(1e-4))


@pytest.fixture(scope="module")
def int8_file(qat_model, tmp_path_factory):
  path = tmp_path_factory.mktemp("arch") / f"{qat_model.name}_int8.tflite"
  info = export.export_tflite(qat_model, str(path), "int8")
  return path, info


def test_pruned_kernels_are_half_zeros(arch, float_model, pruned):
  assert _kernel_layer_counts(float_model) == arch.kernels
  targets = pruning.find_pruner(pruned).targets
  assert len(targets) == sum(arch.kernels.values())
  zeros = sum(int(np.sum(keras.ops.convert_to_numpy(variable) == 0))
              for _, _, _, variable, _ in targets)
  size = sum(int(np.prod(variable.shape)) for _, _, _, variable, _ in targets)
  assert zeros / size == pytest.approx(0.5, abs=0.01)
  assert pruning.overall_sparsity(pruning.sparsity_table(pruned)) == (
      pytest.approx(0.5, abs=0.01))
  # The caller's model is not pruned.
  kernel = float_model.get_layer(targets[0][1].name).kernel
  assert np.mean(keras.ops.convert_to_numpy(kernel) == 0) < 0.01


def test_int8_file_holds_int8_kernels_and_no_float_conv(arch, qat_model,
                                                        int8_file):
  path, info = int8_file
  count = sum(arch.kernels.values())
  assert info["kernel_dtypes"] == {"int8": count}  # read from the file
  ops = set(info["ops"])
  assert "CONV_2D" in ops
  assert not ops & {"RELU", "RELU6"}, ops  # fused into the convolutions
  # Every BatchNormalization follows a convolution or Dense: all folded.
  assert not keras3_qat.unfolded_batch_norms(qat_model)
  # No float convolution: every kernel op reads an int8 activation.
  model = flatbuffer.parse_model(path.read_bytes(), str(path))
  codes = [flatbuffer.op_name(code) for code in model.operatorCodes]
  subgraph = model.subgraphs[0]
  kernel_ops = [op for op in subgraph.operators
                if codes[op.opcodeIndex] in _KERNEL_OPS]
  assert len(kernel_ops) == count
  int8 = schema.TensorType.INT8
  assert {(subgraph.tensors[op.inputs[0]].type,
           subgraph.tensors[op.inputs[1]].type,
           subgraph.tensors[op.outputs[0]].type)
          for op in kernel_ops} == {(int8, int8, int8)}


def _cosine(a, b):
  return np.sum(a * b, axis=1) / (
      np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _input_step(path):
  """The int8 step of the input: the scale of the QUANTIZE op's output."""
  model = flatbuffer.parse_model(path.read_bytes(), str(path))
  subgraph = model.subgraphs[0]
  codes = [flatbuffer.op_name(code) for code in model.operatorCodes]
  (first,) = [op for op in subgraph.operators
              if subgraph.inputs[0] in list(op.inputs)]
  assert codes[first.opcodeIndex] == "QUANTIZE"
  return float(subgraph.tensors[first.outputs[0]].quantization.scale[0])


def _litert(path, x):
  interpreter = Interpreter(model_path=str(path))
  detail = interpreter.get_input_details()[0]
  assert detail["dtype"] == np.float32  # QUANTIZE at the input edge
  interpreter.resize_tensor_input(detail["index"], x.shape)
  interpreter.allocate_tensors()
  interpreter.set_tensor(detail["index"], x)
  interpreter.invoke()
  return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def test_litert_int8_agrees_with_keras_qat(arch, qat_model, int8_file):
  path, _ = int8_file
  x = arch.preprocess(_images(qat_model, 32, 3))
  expected = keras.ops.convert_to_numpy(qat_model(x, training=False))
  got = _litert(path, x)
  assert got.shape == expected.shape == (32, 10)
  # An untrained BN network is chaotic: it amplifies a small change of its
  # input many times over its depth, and int8 rounds differently from the
  # fake-quant simulation at a few elements per layer (a single Conv-BN-
  # ReLU6 agrees to 1 step, 0.03% of elements off by one). So LiteRT's
  # logits are compared with what half an int8 input step does to the
  # Keras model itself: measured, LiteRT is off by 0.6-1.0 times that
  # (mean over the inputs), the Keras model's own cosine to its nudged
  # self being 0.63-0.87. A per-input cosine >= 0.98 only held where the
  # logits barely depended on the input.
  delta = np.random.RandomState(4).uniform(-0.5, 0.5, x.shape) * (
      _input_step(path))
  nudged = keras.ops.convert_to_numpy(
      qat_model(x + delta.astype("float32"), training=False))
  int8_gap = np.linalg.norm(got - expected, axis=1).mean()
  nudge_gap = np.linalg.norm(nudged - expected, axis=1).mean()
  assert nudge_gap > 0  # the logits depend on the input
  assert int8_gap <= 2 * nudge_gap, (int8_gap, nudge_gap)
  # Scales, folded BNs and biases move the logits of every input alike:
  # their mean over the inputs and their size must agree.
  assert _cosine(got.mean(axis=0, keepdims=True),
                 expected.mean(axis=0, keepdims=True))[0] >= 0.98
  size = np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
  assert 0.8 <= size.mean() <= 1.25, size


def test_clustering_keeps_at_most_16_values_per_kernel(arch, float_model,
                                                       train_data):
  # `linear` initialization: k-means++ alone took 14 s on ResNet50's 23M
  # weights (it is tested on small models in test_clustering_keras3).
  clustered = quantization.cluster_model(float_model, num_clusters=16,
                                         init="linear")
  _fit(clustered, *train_data)
  stripped = quantization.strip_clustering(clustered)
  rows = quantization.unique_values_per_layer(stripped)
  assert len(rows) == sum(arch.kernels.values())
  assert max(row["unique"] for row in rows) <= 16
  # The largest kernel really had more values than that before.
  largest = max(rows, key=lambda row: row["size"])
  kernel = float_model.get_layer(largest["layer"]).kernel
  assert np.unique(keras.ops.convert_to_numpy(kernel)).size > 1000


def test_slicing_half_the_channels_cuts_macs(arch, float_model):
  result = pruning.slice_model(float_model, 0.5)
  assert result.macs_before == analysis.count_macs(float_model)["total"]
  assert result.macs_after == analysis.count_macs(result.model)["total"]
  assert result.macs_before / result.macs_after >= 1.8
  assert result.params_after < result.params_before
  reasons = {row["layer"]: row["reason"] for row in result.skipped}
  assert all(isinstance(r, str) and r for r in reasons.values()), reasons
  # The classifier head feeds the output, so it keeps its 10 classes.
  assert "model output" in reasons[arch.head], reasons
  assert arch.head not in result.removed
  x = arch.preprocess(_images(float_model, 2, 4))
  assert tuple(result.model(x, training=False).shape) == (2, 10)
