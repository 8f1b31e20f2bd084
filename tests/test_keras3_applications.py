"""A real Keras 3 architecture through the native engine: MobileNetV2."""

import keras
import numpy as np
import pytest

from tf_compress import export
from tf_compress import pruning
from tf_compress import quantization


def _pruned_mobilenet(seed):
  """MobileNetV2 (alpha 0.35, 96x96) pruned to 50% in one epoch."""
  keras.utils.set_random_seed(seed)
  model = keras.applications.MobileNetV2(
      input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10)
  rng = np.random.RandomState(seed)
  x = rng.rand(16, 96, 96, 3).astype("float32")
  y = rng.randint(0, 10, 16)
  pruned = pruning.prune_model(model, pruning.PruningConfig(
      target_sparsity=0.5, frequency=1), steps_per_epoch=1)
  pruned.compile("adam", "sparse_categorical_crossentropy",
                 jit_compile=False)  # XLA would compile for ~10 s more
  pruned.fit(x, y, batch_size=16, epochs=1, verbose=0,
             callbacks=[pruning.PruningCallback()])
  return pruned, x, y


@pytest.mark.slow
def test_mobilenet_v2_pruned_to_half_then_qat_exports_all_int8(tmp_path):
  pruned, x, y = _pruned_mobilenet(0)
  targets = pruning.find_pruner(pruned).targets
  assert len(targets) == 53  # 35 conv, 17 depthwise, 1 dense kernel
  kinds = {type(layer).__name__ for _, layer, _, _, _ in targets}
  assert kinds == {"Conv2D", "DepthwiseConv2D", "Dense"}
  assert pruning.overall_sparsity(pruning.sparsity_table(pruned)) == (
      pytest.approx(0.5, abs=0.01))
  info = export.export_tflite(pruned, tmp_path / "mnv2_int8.tflite", "int8",
                              representative_data=x)
  assert info["kernel_dtypes"] == {"int8": 53}
  assert info["kernel_nonzero_fraction"] == pytest.approx(0.5, abs=0.01)
  assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= set(
      info["ops"])

  # Then one epoch of QAT, and int8 from the fake-quant ranges alone.
  qat = quantization.quantize_model(pruning.strip_pruning(pruned))
  states = quantization.keras3_qat.keras3_qat_states(qat)
  # Every Conv2D is followed by BatchNormalization in MobileNetV2: all 52
  # convolutions fold it, so no BatchNormalization keeps a range.
  assert not [layer.name for layer, _ in states
              if type(layer).__name__ == "BatchNormalization"]
  qat.compile("adam", "sparse_categorical_crossentropy", jit_compile=False)
  qat.fit(x, y, batch_size=16, epochs=1, verbose=0)
  info = export.export_tflite(qat, tmp_path / "mnv2_qat.tflite", "int8")
  assert info["kernel_dtypes"] == {"int8": 53}
  ops = set(info["ops"])
  assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD"} <= ops
  assert not ops & {"MUL", "RELU6", "RELU"}, ops  # BN folded, ReLU6 fused
