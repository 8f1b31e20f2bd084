"""quantize_model, strip_quantization and load_qat_model on the digits CNN.

One float baseline is trained per module; QAT fine-tunes a copy of it and
its int8 TFLite file is compared with post-training int8 and with float.
"""

import keras as keras3  # the real Keras 3, to hand us the wrong kind of model
import numpy as np
import pytest
import tensorflow_model_optimization as tfmot

import tf_compress
from tf_compress import export
from tf_compress import keras
from tf_compress import ModelError
from tf_compress import pruning
from tf_compress import quantization
from tf_compress import UserInputError
from tf_compress._keras import tf

from classifiers import compile_classifier
from classifiers import trained_classifier

BATCH = 32
tq = tfmot.quantization.keras


def _wrapped(model):
  wrappers, _ = quantization.find_quantizers(model)
  return [w.layer.name for w in wrappers]


def _kernel_quantized(model):
  """Names of the wrapped layers whose kernel is fake-quantized."""
  wrappers, _ = quantization.find_quantizers(model)
  return [w.layer.name for w in wrappers
          if any(v.name.endswith("kernel_min:0") for v in w.weights)]


@pytest.fixture(scope="module")
def baseline(digits):
  return trained_classifier(digits, "cnn", epochs=5, batch_size=BATCH)


@pytest.fixture(scope="module")
def baseline_weights(baseline):
  return [w.copy() for w in baseline.get_weights()]


@pytest.fixture(scope="module")
def qat_run(baseline, baseline_weights, digits):
  """QAT: 2 fine-tuning epochs at a tenth of the float learning rate."""
  del baseline_weights  # taken before QAT
  tf_compress.set_seed(1)
  qat = compile_classifier(quantization.quantize_model(baseline), 1e-4)
  qat.fit(digits.x_train, digits.y_train, batch_size=BATCH, epochs=2,
          verbose=0)
  data = export.convert_to_tflite(qat, "int8")
  check = export.verify_tflite(data, digits.x_test, digits.y_test,
                               keras_model=qat, isolate=False)
  return qat, data, check


@pytest.fixture(scope="module")
def float_and_ptq(baseline, digits):
  float_top1 = baseline.evaluate(digits.x_test, digits.y_test, verbose=0)[1]
  data = export.convert_to_tflite(baseline, "int8",
                                  representative_data=digits.x_train)
  check = export.verify_tflite(data, digits.x_test, digits.y_test,
                               isolate=False)
  return float_top1, check["tflite_top1"]


def test_qat_int8_matches_ptq_and_float(qat_run, float_and_ptq):
  _, _, check = qat_run
  float_top1, ptq_top1 = float_and_ptq
  qat_top1 = check["tflite_top1"]
  print(f"float={float_top1:.4f} ptq_int8={ptq_top1:.4f} "
        f"qat_int8={qat_top1:.4f}")
  assert qat_top1 >= ptq_top1 - 0.005
  assert qat_top1 >= float_top1 - 0.010
  # The file computes what the Keras QAT model computes.
  assert check["agreement"] >= 0.99
  assert check["keras_top1"] == pytest.approx(qat_top1, abs=0.01)


def test_qat_export_is_all_int8(qat_run):
  _, data, _ = qat_run
  info = export.inspect_tflite(data)
  assert info["kernel_dtypes"] == {"int8": 4}
  assert "float32" not in info["weight_dtypes"]
  assert info["activation_dtypes"].get("int8", 0) >= 6
  assert set(info["ops"]) >= {"CONV_2D", "FULLY_CONNECTED", "QUANTIZE"}


def test_every_kernel_is_fake_quantized(qat_run):
  # conv1 and conv2 feed separate ReLU layers: plain tfmot 0.8.1 would give
  # them a no-op config and leave their kernels float in training.
  qat, _, _ = qat_run
  assert _wrapped(qat) == ["conv1", "relu1", "conv2", "relu2", "pool",
                           "flatten", "fc1", "dropout", "logits"]
  assert _kernel_quantized(qat) == ["conv1", "conv2", "fc1", "logits"]
  conv = qat.get_layer("quant_conv1")
  assert type(conv.quantize_config).__name__ == "Default8BitConvQuantizeConfig"
  # No fake-quant op between conv1 and relu1: relu1 quantizes the output.
  assert not any("post_activation" in v.name for v in conv.weights)


def test_caller_model_untouched(qat_run, baseline, baseline_weights):
  del qat_run  # trained
  for before, after in zip(baseline_weights, baseline.get_weights()):
    np.testing.assert_array_equal(before, after)
  assert not quantization.find_quantizers(baseline)[0]


@pytest.mark.parametrize("kwargs", [
    {"layers": ["fc1", "log.*"]},
    {"layer_types": ["Dense"]},
    {"layers": ["fc.*", "logits", "conv1"], "layer_types": ["Dense"]},
], ids=["names", "types", "both"])
def test_chosen_layers_only(baseline, kwargs):
  qat = quantization.quantize_model(baseline, **kwargs)
  assert _kernel_quantized(qat) == ["fc1", "logits"]
  # tfmot quantizes the output of a float layer feeding a chosen one.
  assert _wrapped(qat) == ["flatten", "fc1", "dropout", "logits"]
  assert type(qat.get_layer("quant_flatten").quantize_config).__name__ == (
      "OutputOnlyConfig")
  assert type(qat.get_layer("conv1")) is keras.layers.Conv2D
  assert not quantization.find_quantizers(qat)[1]
  x = np.zeros((2,) + tuple(baseline.input_shape[1:]), np.float32)
  assert qat.predict(x, verbose=0).shape == (2, 10)


def test_16x8_scheme_exports_int16_activations(baseline, digits):
  qat = compile_classifier(quantization.quantize_model(baseline, scheme="16x8"), 1e-4)
  wrapper = qat.get_layer("quant_fc1")
  # pylint: disable=protected-access
  assert wrapper.quantize_config.weight_quantizer.num_bits == 8
  assert wrapper.quantize_config.activation_quantizer.num_bits == 16
  assert _kernel_quantized(qat) == ["conv1", "conv2", "fc1", "logits"]
  qat.fit(digits.x_train, digits.y_train, batch_size=BATCH, epochs=1,
          verbose=0)
  plain = quantization.strip_quantization(qat)
  assert [type(l).__name__ for l in plain.layers[1:3]] == ["Activation",
                                                           "Conv2D"]
  data = export.convert_to_tflite(plain, "int16x8",
                                  representative_data=digits.x_train)
  info = export.inspect_tflite(data)
  assert info["kernel_dtypes"] == {"int8": 4}
  assert info["activation_dtypes"].get("int16", 0) >= 6
  check = export.verify_tflite(data, digits.x_test, digits.y_test,
                               keras_model=plain, isolate=False)
  keras_top1 = qat.evaluate(digits.x_test, digits.y_test, verbose=0)[1]
  assert check["tflite_top1"] >= keras_top1 - 0.01
  assert check["agreement"] >= 0.98


def test_strip_quantization_keeps_trained_weights(qat_run, digits):
  qat, _, _ = qat_run
  plain = quantization.strip_quantization(qat)
  assert not quantization.find_quantizers(plain)[0]
  kernel = qat.get_layer("quant_fc1").weights
  trained = next(v for v in kernel if v.name.endswith("fc1/kernel:0"))
  np.testing.assert_array_equal(plain.get_layer("fc1").kernel.numpy(),
                                trained.numpy())
  # Float weights without fake quantization: nearly the same predictions.
  same = np.mean(np.argmax(plain.predict(digits.x_test, verbose=0), -1) ==
                 np.argmax(qat.predict(digits.x_test, verbose=0), -1))
  assert same >= 0.97
  assert plain.get_layer("conv1").get_config()["activation"] == "linear"


def test_save_load_round_trip(qat_run, digits, tmp_path):
  qat, _, _ = qat_run
  path = str(tmp_path / "qat.h5")
  tf_compress.save_model(qat, path)
  with pytest.raises(ModelError, match="--allow_unsafe_load"):
    quantization.load_qat_model(path)  # safe mode refuses .h5
  loaded = quantization.load_qat_model(path, safe_mode=False)
  np.testing.assert_array_equal(loaded.predict(digits.x_test, verbose=0),
                                qat.predict(digits.x_test, verbose=0))
  assert _kernel_quantized(loaded) == ["conv1", "conv2", "fc1", "logits"]
  with tq.quantize_scope():
    reloaded = keras.models.load_model(path)
  assert _wrapped(reloaded) == _wrapped(qat)


def test_keras_format_gets_advice(qat_run, tmp_path):
  qat, _, _ = qat_run
  path = str(tmp_path / "qat.keras")
  tf_compress.save_model(qat, path)
  with pytest.raises(ModelError, match=r"\.h5"):
    quantization.load_qat_model(path)


def test_trains_under_mirrored_strategy(baseline, digits, logical_cpus):
  del logical_cpus  # the 2 devices the strategy mirrors over
  strategy = tf_compress.make_strategy("mirrored", 2)
  assert strategy.num_replicas_in_sync == 2
  with strategy.scope():
    qat = compile_classifier(quantization.quantize_model(baseline), 1e-4)
  ranges = qat.get_layer("quant_fc1").weights
  kernel_max = next(v for v in ranges if v.name.endswith("kernel_max:0"))
  before = kernel_max.numpy().copy()
  # 10 steps of 2 x 16 samples: enough to move every range.
  history = qat.fit(digits.x_train[:320], digits.y_train[:320],
                    batch_size=BATCH, epochs=1, verbose=0)
  assert np.isfinite(history.history["loss"][0])
  assert not np.array_equal(kernel_max.numpy(), before)
  assert qat.evaluate(digits.x_test, digits.y_test, verbose=0)[1] >= 0.9


@keras.utils.register_keras_serializable(package="tf_compress_tests")
class Scale(keras.layers.Layer):
  """A custom layer tfmot knows nothing about: y = x * w."""

  def build(self, input_shape):
    self.w = self.add_weight("w", shape=(input_shape[-1],),
                             initializer="ones")

  def call(self, inputs):
    return inputs * self.w


@keras.utils.register_keras_serializable(package="tf_compress_tests")
class OutputOnlyConfig(tq.QuantizeConfig):
  """Quantizes the custom layer's output only."""

  def get_weights_and_quantizers(self, layer):
    return []

  def get_activations_and_quantizers(self, layer):
    return []

  def set_quantize_weights(self, layer, quantize_weights):
    pass

  def set_quantize_activations(self, layer, quantize_activations):
    pass

  def get_output_quantizers(self, layer):
    return [tq.quantizers.MovingAverageQuantizer(
        num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

  def get_config(self):
    return {}


def _custom_model(annotate=False):
  inputs = keras.Input((6,), name="input")
  x = keras.layers.Dense(4, name="dense")(inputs)
  scale = Scale(name="scale")
  if annotate:
    scale = tq.quantize_annotate_layer(scale,
                                       quantize_config=OutputOnlyConfig())
  x = scale(x)
  outputs = keras.layers.Dense(3, name="out")(x)
  return keras.Model(inputs, outputs, name="custom")


def test_custom_layer_error_says_how(baseline):
  del baseline
  with pytest.raises(ModelError) as info:
    quantization.quantize_model(_custom_model())
  message = str(info.value)
  for part in ("'scale'", "Scale", "quantize_annotate_layer",
               "QuantizeConfig", "layer_types"):
    assert part in message


def test_custom_layer_left_in_float():
  model = _custom_model()
  qat = quantization.quantize_model(model, layer_types=["Dense"])
  assert _wrapped(qat) == ["dense", "out"]
  assert type(qat.get_layer("scale")).__name__ == "Scale"
  x = np.ones((2, 6), np.float32)
  assert qat.predict(x, verbose=0).shape == (2, 3)


def test_custom_layer_with_users_config():
  model = _custom_model(annotate=True)
  qat = quantization.quantize_model(model)
  assert _wrapped(qat) == ["dense", "scale", "out"]
  config = qat.get_layer("quant_scale").quantize_config
  assert isinstance(config, OutputOnlyConfig)
  assert qat.predict(np.ones((2, 6), np.float32), verbose=0).shape == (2, 3)


@pytest.mark.parametrize("kwargs,error,pattern", [
    ({"scheme": "4bit"}, UserInputError, r"unknown quantization scheme '4bit'"),
    ({"scheme": None}, UserInputError, r"8bit, 16x8"),
    ({"layers": [""]}, UserInputError, r"`layers`"),
    ({"layers": ["fc1("]}, UserInputError, r"not a valid regular expression"),
    ({"layer_types": [3]}, UserInputError, r"`layer_types`"),
    ({"layers": ["nothing"]}, ModelError, r"no layer .* is selected"),
], ids=["scheme", "scheme-none", "empty-name", "bad-regex", "type-int",
        "no-match"])
def test_bad_arguments(baseline, kwargs, error, pattern):
  with pytest.raises(error, match=pattern):
    quantization.quantize_model(baseline, **kwargs)


def test_keras3_model_goes_to_the_native_engine():
  inputs = keras3.Input((4,))
  model = keras3.Model(inputs, keras3.layers.Dense(2, name="fc")(inputs))
  qat = quantization.quantize_model(model)
  assert [layer.name for layer, _ in
          quantization.keras3_qat.keras3_qat_states(qat)] == ["fc"]
  assert not quantization.keras3_qat.keras3_qat_states(
      quantization.strip_quantization(qat))


def test_wrapped_models_are_refused(baseline, qat_run):
  qat, _, _ = qat_run
  with pytest.raises(ModelError, match="already quantization-aware"):
    quantization.quantize_model(qat)
  pruned = pruning.prune_model(
      baseline, pruning.PruningConfig(target_sparsity=0.5))
  with pytest.raises(ModelError, match="strip_pruning"):
    quantization.quantize_model(pruned)


def test_nested_and_subclassed_models_are_refused():
  inner = tf_compress.build_model("mlp", (6,), 3, keras_version=2)
  inputs = keras.Input((6,))
  outer = keras.Model(inputs, inner(inputs), name="outer")
  with pytest.raises(ModelError, match="sub-model 'mlp'"):
    quantization.quantize_model(outer)

  class Sub(keras.Model):

    def __init__(self):
      super().__init__()
      self.dense = keras.layers.Dense(2)

    def call(self, inputs):
      return self.dense(inputs)

  sub = Sub()
  sub(tf.zeros((1, 3)))
  with pytest.raises(ModelError, match="subclassed"):
    quantization.quantize_model(sub)
