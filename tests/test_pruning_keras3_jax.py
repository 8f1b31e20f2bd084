"""The native Keras 3 pruning engine under the JAX backend.

The backend is chosen when Keras is first imported, and this process runs
TensorFlow's, so pruning runs in a child process with KERAS_BACKEND=jax.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip(
    "jax", reason="jax is not installed: pip install -e '.[test]' brings it")

_SCRIPT = textwrap.dedent("""
    import json

    import keras
    import numpy as np
    from sklearn.datasets import load_digits

    from tf_compress import pruning

    digits = load_digits()
    x = (digits.images[:512, :, :, None] / 16.0).astype("float32")
    y = digits.target[:512]
    steps = 8  # 512 samples, batch 64

    class MaskedAtEveryStep(keras.callbacks.Callback):

      def __init__(self, pruner):
        super().__init__()
        self.pruner = pruner
        self.seen = []

      def on_train_batch_end(self, batch, logs=None):
        self.model.jax_state_sync()  # mid-epoch, the state is the step's
        for _, _, _, kernel, mask in self.pruner.targets:
          kernel = keras.ops.convert_to_numpy(kernel)
          mask = keras.ops.convert_to_numpy(mask)
          self.seen.append(bool((kernel[mask == 0] == 0).all()))

    results = []
    for steps_per_execution in (1, 4):
      keras.utils.set_random_seed(0)
      model = keras.Sequential([
          keras.Input((8, 8, 1)),
          keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
          keras.layers.Flatten(),
          keras.layers.Dense(32, activation="relu", name="fc"),
          keras.layers.Dense(10, name="logits")])
      config = pruning.PruningConfig(
          target_sparsity=0.8, schedule="polynomial", end_epoch=2,
          frequency=2)
      pruned = pruning.prune_model(model, config, steps_per_epoch=steps)
      pruner = pruning.find_pruner(pruned)
      check = MaskedAtEveryStep(pruner)
      pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(
          from_logits=True), steps_per_execution=steps_per_execution)
      # A third epoch past the schedule's end: no update, the constraint
      # alone keeps the pruned weights at zero inside the jitted step.
      history = pruned.fit(
          x, y, batch_size=64, epochs=3, verbose=0, shuffle=False,
          callbacks=[pruning.PruningCallback(), check])
      layers = {}
      for path, _, _, kernel, mask in pruner.targets:
        kernel = keras.ops.convert_to_numpy(kernel)
        mask = keras.ops.convert_to_numpy(mask)
        layers[path] = {
            "kernel_sparsity": float((kernel == 0).mean()),
            "mask_sparsity": float((mask == 0).mean()),
            "zeros_where_mask_is_0": bool((kernel[mask == 0] == 0).all())}
      # The forward pass: the Dense head in numpy, on kernel * mask.
      numpy = keras.ops.convert_to_numpy
      masks = {path: numpy(mask) for path, *_, mask in pruner.targets}
      hidden = keras.Model(pruned.inputs[0], pruned.get_layer("fc").input)
      h = numpy(hidden(x[:32]))
      for name in ("fc", "logits"):
        layer = pruned.get_layer(name)
        h = h @ (numpy(layer.kernel) * masks[name]) + numpy(layer.bias)
        h = np.maximum(h, 0) if name == "fc" else h
      expected = h
      out = pruned.predict(x[:32], verbose=0)
      results.append({
          "backend": keras.backend.backend(),
          "steps_per_execution": steps_per_execution,
          "kernel_type": type(pruner.targets[0][3].value).__module__,
          "sparsity": history.history["sparsity"],
          "loss": history.history["loss"],
          "iterations": int(pruned.optimizer.iterations),
          "masked_at_every_step": bool(check.seen) and all(check.seen),
          "forward_max_diff": float(np.abs(out - expected).max()),
          "layers": layers})
    print("RESULT " + json.dumps(results))
    """)


@pytest.fixture(scope="module")
def jax_runs(repo_root):
  env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
             PYTHONPATH=str(repo_root))
  env.pop("TF_USE_LEGACY_KERAS", None)
  done = subprocess.run([sys.executable, "-c", _SCRIPT], env=env,
                        cwd=repo_root, capture_output=True, text=True,
                        timeout=300, check=False)
  lines = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
  assert done.returncode == 0 and lines, done.stderr[-4000:]
  return json.loads(lines[-1][len("RESULT "):])


def test_runs_under_jax(jax_runs):
  for run in jax_runs:
    assert run["backend"] == "jax"
    assert run["kernel_type"].startswith("jax")  # the variables are JAX's
    assert run["iterations"] == 24


@pytest.mark.parametrize("index", [0, 1], ids=["per_step", "per_4_steps"])
def test_target_reached_and_kept_inside_the_jitted_step(jax_runs, index):
  run = jax_runs[index]
  assert run["sparsity"][0] < 0.79  # the polynomial ramp
  assert run["sparsity"][-1] == pytest.approx(0.8, abs=0.01)
  assert set(run["layers"]) == {"conv", "fc", "logits"}
  for path, layer in run["layers"].items():
    assert layer["kernel_sparsity"] == pytest.approx(0.8, abs=0.01), path
    assert layer["mask_sparsity"] == pytest.approx(0.8, abs=0.01), path
    assert layer["zeros_where_mask_is_0"], path
  assert run["masked_at_every_step"]
  assert all(loss == loss for loss in run["loss"])  # no NaN


def test_forward_pass_uses_the_masked_kernels(jax_runs):
  for run in jax_runs:
    assert run["forward_max_diff"] < 1e-4
