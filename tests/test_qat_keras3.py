"""Native Keras 3 QAT: the 8-bit scheme, folding, fusion, freeze, export.

One float CNN with BatchNormalization is trained on digits once per module;
the QAT tests fine-tune copies of it.
"""

import keras
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

import tf_compress as tfc
from tf_compress.errors import ModelError, UserInputError
from tf_compress.quantization import keras3_qat

_LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _cnn(input_shape):
  inputs = keras.Input(input_shape, name="image")
  x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False,
                          name="c1")(inputs)
  x = keras.layers.BatchNormalization(momentum=0.9, name="bn1")(x)
  x = keras.layers.ReLU(name="r1")(x)
  x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
  x = keras.layers.BatchNormalization(momentum=0.9, name="bn2")(x)
  x = keras.layers.ReLU(6.0, name="r2")(x)
  x = keras.layers.Conv2D(24, 3, padding="same", activation="relu",
                          name="c2")(x)
  x = keras.layers.Flatten(name="flat")(x)
  x = keras.layers.Dense(32, activation="relu", name="d1")(x)
  outputs = keras.layers.Dense(10, name="logits")(x)
  return keras.Model(inputs, outputs, name="bn_cnn")


def _compile(model, lr=1e-3):
  model.compile(keras.optimizers.Adam(lr), _LOSS, metrics=["accuracy"])
  return model


@pytest.fixture(scope="module")
def float_model(digits):
  keras.utils.set_random_seed(0)
  model = _compile(_cnn(digits.input_shape), 3e-3)
  model.fit(digits.x_train, digits.y_train, epochs=4, batch_size=32,
            verbose=0)
  return model


@pytest.fixture(scope="module")
def qat_model(float_model, digits):
  keras.utils.set_random_seed(1)
  qat = _compile(tfc.quantization.quantize_model(float_model))
  qat.fit(digits.x_train, digits.y_train, epochs=2, batch_size=32,
          verbose=0)
  return qat


@pytest.fixture(scope="module")
def int8_file(qat_model, tmp_path_factory):
  path = tmp_path_factory.mktemp("qat3") / "qat.tflite"
  info = tfc.export.export_tflite(qat_model, str(path), "int8")
  return path, info


def _litert_logits(path, x):
  interpreter = Interpreter(model_path=str(path))
  detail = interpreter.get_input_details()[0]
  interpreter.resize_tensor_input(detail["index"], x.shape)
  interpreter.allocate_tensors()
  interpreter.set_tensor(detail["index"], x.astype(np.float32))
  interpreter.invoke()
  return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _states(model):
  return {layer.name: state for layer, state in
          keras3_qat.keras3_qat_states(model)}


def test_caller_model_untouched_and_plan_folds_and_fuses(float_model,
                                                          qat_model):
  assert not keras3_qat.keras3_qat_states(float_model)
  assert qat_model is not float_model
  states = _states(qat_model)
  # BN folded into c1 and dw, ReLU/ReLU6 fused: their ranges sit on r1, r2.
  assert set(states) == {"c1", "r1", "dw", "r2", "c2", "d1",
                         "logits"}
  assert states["c1"].quantized_inputs == (0,)       # the model input
  assert not states["c1"].quantize_output            # r1 holds the range
  assert not states["dw"].quantize_output
  assert states["r1"].quantize_output and states["r2"].quantize_output
  assert states["dw"].quantized_inputs == ()         # r1 already quantized
  bn1 = qat_model.get_layer("bn1")
  x = np.ones((1, 8, 8, 16), np.float32) * 3.0
  np.testing.assert_array_equal(bn1(x), x)           # BN is an identity now


def test_ranges_follow_batches(qat_model, digits):
  states = _states(qat_model)
  low, high = (float(v.numpy()) for v in states["c1"].ranges["input_0"])
  # Digits pixels are scaled to [0, 1]; the moving average sits inside.
  assert low == pytest.approx(0.0, abs=1e-6)
  assert 0.9 < high <= float(digits.x_train.max()) + 1e-6
  relu_low, relu_high = (float(v.numpy()) for v in
                         states["r1"].ranges["output"])
  assert relu_low == pytest.approx(0.0, abs=1e-6) and relu_high > 0.1
  low, high = (float(v.numpy()) for v in states["logits"].ranges["output"])
  assert low < 0 < high


def test_folded_inference_matches_float_batch_norm(qat_model, digits):
  # The stripped float model (BN as its own layer, in inference mode) and
  # the folded fake-quant model differ by int8 rounding only.
  stripped = tfc.quantization.strip_quantization(qat_model)
  assert not keras3_qat.keras3_qat_states(stripped)
  assert [l.name for l in stripped.layers] == [l.name for l in
                                               qat_model.layers]
  x = digits.x_test[:128]
  float_out = stripped.predict(x, verbose=0)
  qat_out = qat_model.predict(x, verbose=0)
  cosine = np.sum(float_out * qat_out, axis=1) / (
      np.linalg.norm(float_out, axis=1) * np.linalg.norm(qat_out, axis=1))
  assert np.median(cosine) > 0.995 and cosine.min() > 0.95, cosine
  assert np.mean(float_out.argmax(1) == qat_out.argmax(1)) >= 0.97


def test_int8_export_is_all_int8_builtin_and_matches_keras(
    qat_model, int8_file, digits):
  path, info = int8_file
  assert info["kernel_dtypes"] == {"int8": 5}
  ops = set(info["ops"])
  assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= ops
  # BN folded (no MUL/ADD), ReLUs fused (no RELU ops), no Flex ops.
  assert not ops & {"MUL", "ADD", "RELU", "RELU6"}, ops
  assert not any(op.startswith("Flex") for op in ops)
  assert ops <= {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "RESHAPE",
                 "SHAPE", "STRIDED_SLICE", "PACK",  # Flatten, dynamic batch
                 "QUANTIZE", "DEQUANTIZE"}, ops
  lite = _litert_logits(path, digits.x_test)
  keras_logits = qat_model.predict(digits.x_test, verbose=0)
  lite_acc = float(np.mean(lite.argmax(1) == digits.y_test))
  keras_acc = float(np.mean(keras_logits.argmax(1) == digits.y_test))
  assert keras_acc > 0.9, keras_acc
  assert abs(lite_acc - keras_acc) <= 0.005, (lite_acc, keras_acc)


def test_weights_per_channel_for_conv_per_tensor_for_dense(int8_file):
  path, _ = int8_file
  interpreter = Interpreter(model_path=str(path))
  scales = {}
  for detail in interpreter.get_tensor_details():
    params = detail["quantization_parameters"]
    if detail["dtype"] == np.int8 and len(detail["shape"]) >= 2 and len(
        params["scales"]):
      if np.all(params["zero_points"] == 0) and detail["name"].count("/"):
        scales[tuple(detail["shape"])] = len(params["scales"])
  # Conv kernels (out, kh, kw, in): one scale per output channel; the
  # depthwise kernel (1, kh, kw, channels) too; Dense (out, in): one scale.
  assert scales.get((16, 3, 3, 1)) == 16, scales
  assert scales.get((1, 3, 3, 16)) == 16, scales
  assert scales.get((24, 3, 3, 16)) == 24, scales
  assert scales.get((32, 8 * 8 * 24)) == 1, scales
  assert scales.get((10, 32)) == 1, scales


def test_freeze_callback_stops_ranges_and_bn_statistics(float_model, digits):
  qat = _compile(tfc.quantization.quantize_model(float_model))
  states = _states(qat)
  bn = qat.get_layer("bn1")

  def snapshot():
    return (float(states["r1"].ranges["output"][1].numpy()),
            np.array(bn.moving_mean.numpy()))

  x, y = digits.x_train[:256], digits.y_train[:256]
  history = qat.fit(x, y, epochs=3, batch_size=32, verbose=0,
                    callbacks=[tfc.quantization.QATFreezeCallback(1)])
  assert history.history["qat_frozen"] == [0.0, 1.0, 1.0]
  # Live again after fit: one more epoch moves them; frozen, nothing moves.
  before = snapshot()
  qat.fit(x, y, epochs=1, batch_size=32, verbose=0)
  after = snapshot()
  assert after[0] != before[0]
  assert not np.array_equal(after[1], before[1])
  callback = tfc.quantization.QATFreezeCallback(0)
  before = snapshot()
  qat.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[callback])
  after = snapshot()
  assert after[0] == before[0]
  np.testing.assert_array_equal(after[1], before[1])


def test_freeze_callback_refuses_a_float_keras3_model(float_model):
  callback = tfc.quantization.QATFreezeCallback(0)
  with pytest.raises(ModelError, match="not quantization-aware"):
    callback.set_model(float_model)


def test_layer_selection_leaves_others_float(float_model):
  qat = tfc.quantization.quantize_model(float_model, layer_types=["Dense"])
  assert set(_states(qat)) == {"d1", "logits"}
  assert _states(qat)["d1"].quantized_inputs == (0,)


class Scale(keras.layers.Layer):
  """A custom layer with a weight the engine does not know."""

  def build(self, input_shape):
    self.alpha = self.add_weight(shape=(), initializer="ones")

  def call(self, x):
    return x * self.alpha


def test_unknown_weighted_layer_is_named_with_advice():
  inputs = keras.Input((4,))
  x = Scale(name="my_scale")(inputs)
  model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x))
  with pytest.raises(ModelError, match=r"'my_scale' \(Scale\).*layers="):
    tfc.quantization.quantize_model(model)
  qat = tfc.quantization.quantize_model(model, layers=["out"])
  assert set(_states(qat)) == {"out"}


def test_16x8_scheme_refused_for_keras3(float_model):
  with pytest.raises(UserInputError, match="8-bit scheme only"):
    tfc.quantization.quantize_model(float_model, scheme="16x8")


@keras.saving.register_keras_serializable(package="tf_compress_tests")
class SubclassedNet(keras.Model):
  """A subclassed CNN with its own call."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.conv = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)
    self.norm = keras.layers.BatchNormalization()
    self.act = keras.layers.ReLU()
    self.flat = keras.layers.Flatten()
    self.head = keras.layers.Dense(10)

  def call(self, x):
    return self.head(self.flat(self.act(self.norm(self.conv(x)))))


def _nested(input_shape):
  inner = keras.Sequential([
      keras.Input(input_shape), keras.layers.Conv2D(8, 3, name="inner_conv"),
      keras.layers.BatchNormalization(name="inner_bn"),
      keras.layers.ReLU(name="inner_relu")], name="inner")
  inputs = keras.Input(input_shape)
  x = keras.layers.GlobalAveragePooling2D(name="pool")(inner(inputs))
  return keras.Model(inputs, keras.layers.Dense(10, name="head")(x),
                     name="outer")


@pytest.mark.parametrize("kind", ["subclassed", "nested"])
def test_subclassed_and_nested_train_save_reload_export(kind, digits,
                                                        tmp_path):
  keras.utils.set_random_seed(2)
  if kind == "subclassed":
    model = SubclassedNet()
    model(digits.x_train[:2])
  else:
    model = _nested(digits.input_shape)
  qat = tfc.quantization.quantize_model(model)
  if kind == "subclassed":
    assert qat is model  # instrumented in place
  states = _states(qat)
  # The graph was found (traced for the subclassed model): BN folded and
  # ReLU fused, so the conv has no output range of its own.
  conv = "conv2d" if kind == "subclassed" else "inner_conv"
  conv_name = [n for n in states if n.startswith(conv)][0]
  assert not states[conv_name].quantize_output
  _compile(qat).fit(digits.x_train, digits.y_train, epochs=2, batch_size=32,
                    verbose=0)
  path = tmp_path / "qat.keras"
  qat.save(path)
  again = tfc.quantization.load_qat_model(path)
  x = digits.x_test[:64]
  np.testing.assert_array_equal(again.predict(x, verbose=0),
                                qat.predict(x, verbose=0))
  for (_, a), (_, b) in zip(keras3_qat.keras3_qat_states(again),
                            keras3_qat.keras3_qat_states(qat)):
    for va, vb in zip(a.weights, b.weights):
      assert float(va.numpy()) == float(vb.numpy())
  info = tfc.export.export_tflite(again, str(tmp_path / "q.tflite"), "int8")
  assert info["kernel_dtypes"] == {"int8": 2}
  assert "RELU" not in info["ops"]
  lite = _litert_logits(tmp_path / "q.tflite", x)
  agree = np.mean(lite.argmax(1) == qat.predict(x, verbose=0).argmax(1))
  assert agree >= 0.95, agree


def test_qat_trains_under_mirrored_strategy(float_model, digits,
                                            logical_cpus):
  del logical_cpus
  strategy = tfc.make_strategy("mirrored")
  with strategy.scope():
    model = _cnn(digits.input_shape)
    model.set_weights(float_model.get_weights())
    qat = _compile(tfc.quantization.quantize_model(model))
  history = qat.fit(digits.x_train[:512], digits.y_train[:512], epochs=2,
                    batch_size=64, verbose=0,
                    callbacks=[tfc.quantization.QATFreezeCallback(1)])
  assert np.all(np.isfinite(history.history["loss"]))
  low, high = (float(v.numpy()) for v in
               _states(qat)["r1"].ranges["output"])
  assert low == 0.0 and 0.1 < high < 100.0
  assert history.history["qat_frozen"] == [0.0, 1.0]


def test_model_stats_do_not_count_ranges(float_model, qat_model):
  assert tfc.analysis.count_params(qat_model) == tfc.analysis.count_params(
      float_model)


def test_freeze_and_thaw_keep_an_unfolded_bn_trainable_flag():
  inputs = keras.Input((6,))
  x = keras.layers.Dense(4, activation="relu", name="fc")(inputs)
  x = keras.layers.BatchNormalization(name="own_bn")(x)  # after a ReLU
  frozen_bn = keras.layers.BatchNormalization(name="user_frozen_bn")
  frozen_bn.trainable = False
  model = keras.Model(inputs, frozen_bn(x))
  qat = tfc.quantization.quantize_model(model)
  own, user = qat.get_layer("own_bn"), qat.get_layer("user_frozen_bn")
  assert {l.name for l in keras3_qat.unfolded_batch_norms(qat)} == {
      "own_bn", "user_frozen_bn"}
  keras3_qat.freeze_keras3_qat(qat)
  assert not own.trainable and not user.trainable
  keras3_qat.freeze_keras3_qat(qat, frozen=False)
  assert own.trainable and not user.trainable
  # Through the callback, in fit: the unfolded BN stops following batches.
  qat.compile("adam", "mse")
  x = np.random.default_rng(0).normal(size=(64, 6)).astype("float32")
  mean_before = None

  class Probe(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
      nonlocal mean_before
      if epoch == 1:
        mean_before = np.array(own.moving_mean.numpy())

  history = qat.fit(x, x[:, :4], epochs=3, batch_size=16, verbose=0,
                    callbacks=[tfc.quantization.QATFreezeCallback(2),
                               Probe()])
  assert history.history["qat_frozen"] == [0.0, 0.0, 1.0]
  np.testing.assert_array_equal(own.moving_mean.numpy(), mean_before)
  assert own.trainable and not user.trainable
