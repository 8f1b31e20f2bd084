"""robust_accuracy and robust_accuracy_tflite: keys and values, agreement
with the attacks, the gradient-masking warning, LiteRT runs, a pruned
mirrored model, clear errors."""

import warnings

import numpy as np
import pytest

import tf_compress
from tf_compress import adversarial
from tf_compress import export
from tf_compress import pruning
from tf_compress import UserInputError

from classifiers import attack_target

N = 200
EVAL = dict(epsilons=(0.0, 0.1), pgd_steps=5)


@pytest.fixture(scope="module")
def model(digits):
  return attack_target(digits)


@pytest.fixture(scope="module")
def data(digits):
  return digits.x_test[:N], digits.y_test[:N]


@pytest.fixture(scope="module")
def results(model, data):
  with warnings.catch_warnings():
    warnings.simplefilter("error", RuntimeWarning)  # no masking warning
    return adversarial.robust_accuracy(model, *data, **EVAL)


def test_keys_and_values(model, data, results):
  assert list(results) == ["clean", "fgsm@0", "pgd@0", "fgsm@0.1", "pgd@0.1",
                           "catastrophic_overfitting"]
  x, y = data
  clean = np.mean(np.argmax(model.predict(x, verbose=0), -1) == y)
  assert results["clean"] == pytest.approx(clean)
  assert results["clean"] > 0.9
  # A radius of 0 changes nothing.
  assert results["fgsm@0"] == results["pgd@0"] == results["clean"]
  assert results["pgd@0.1"] <= results["fgsm@0.1"] < results["clean"]
  assert results["catastrophic_overfitting"] is False


def test_matches_the_crafted_examples(model, data, results):
  x, y = data
  examples = adversarial.craft_examples(model, x, y, attacks=("pgd",),
                                        epsilons=(0.1,), pgd_steps=5)
  assert list(examples) == ["pgd@0.1"]
  x_adv = examples["pgd@0.1"]
  assert np.abs(x_adv - x).max() <= 0.1 + 1e-6
  accuracy = np.mean(np.argmax(model.predict(x_adv, verbose=0), -1) == y)
  # The same seed gives the same random starts.
  assert results["pgd@0.1"] == pytest.approx(accuracy)


def test_gradient_masking_gap_warns_and_flags(model, data, results):
  gap = results["fgsm@0.1"] - results["pgd@0.1"]
  assert 0 <= gap < 0.2
  # Any gap above a negative threshold is flagged: the check itself works.
  with pytest.warns(RuntimeWarning, match=r"FGSM accuracy exceeds PGD "
                    r"accuracy by more than -0.01 \(eps 0: fgsm .* eps 0.1: "
                    r"fgsm"):
    flagged = adversarial.robust_accuracy(model, *data, overfit_gap=-0.01,
                                          **EVAL)
  assert flagged["catastrophic_overfitting"] is True
  with warnings.catch_warnings():
    warnings.simplefilter("error", RuntimeWarning)
    calm = adversarial.robust_accuracy(model, *data, overfit_gap=gap + 0.01,
                                       **EVAL)
  assert calm["catastrophic_overfitting"] is False


def test_l2_pgd_only(model, data):
  out = adversarial.robust_accuracy(model, *data, attacks="pgd", norm="l2",
                                    epsilons=(0.5,), pgd_steps=3)
  assert set(out) == {"clean", "pgd@0.5", "catastrophic_overfitting"}
  assert out["pgd@0.5"] < out["clean"]


@pytest.fixture(scope="module")
def tflite_files(model, digits, tmp_path_factory):
  folder = tmp_path_factory.mktemp("tflite")
  paths = {"float32": folder / "float.tflite", "int8": folder / "int8.tflite"}
  export.export_tflite(model, paths["float32"], "float32")
  export.export_tflite(model, paths["int8"], "int8",
                       representative_data=digits.x_train)
  return paths


def test_tflite_float_matches_keras(model, data, results, tflite_files):
  out = adversarial.robust_accuracy_tflite(tflite_files["float32"], model,
                                           *data, **EVAL)
  assert list(out) == ["clean", "fgsm@0", "pgd@0", "fgsm@0.1", "pgd@0.1",
                       "keras_clean", "agreement", "catastrophic_overfitting"]
  assert out["agreement"] >= 0.99
  assert out["clean"] == pytest.approx(results["clean"], abs=0.01)
  assert out["keras_clean"] == pytest.approx(results["clean"])
  for key in ("fgsm@0.1", "pgd@0.1"):
    assert out[key] == pytest.approx(results[key], abs=0.02)


def test_tflite_int8_isolated(model, data, results, tflite_files):
  out = adversarial.robust_accuracy_tflite(
      tflite_files["int8"], model, *data, attacks=("pgd",), epsilons=(0.1,),
      pgd_steps=5, isolate=True)
  assert out["clean"] > 0.85
  assert out["agreement"] > 0.9
  assert out["pgd@0.1"] < out["clean"]
  # Transferred from the float model, the attack is about as strong.
  assert out["pgd@0.1"] == pytest.approx(results["pgd@0.1"], abs=0.15)


def test_pruned_model_built_under_mirrored(logical_cpus, model, data,
                                          results):
  """tfmot's wrappers under MirroredStrategy run only in a replica context;
  with fresh masks (all ones) the pruned copy scores as the model."""
  del logical_cpus
  strategy = tf_compress.make_strategy("mirrored", 2)
  with strategy.scope():
    pruned = pruning.prune_model(model, pruning.PruningConfig(
        target_sparsity=0.5))
  assert pruning.find_pruning_wrappers(pruned)
  out = adversarial.robust_accuracy(pruned, *data, **EVAL)
  assert out == pytest.approx(results)


@pytest.mark.parametrize("kwargs,match", [
    ({"attacks": ("fgsm", "cw")}, "unknown attack 'cw'"),
    ({"epsilons": (0.1, -0.2)}, r"each epsilon must be a number >= 0"),
    ({"norm": "l2"}, "FGSM is an L-inf attack"),
    ({"pgd_steps": 0}, "pgd_steps must be an integer >= 1"),
    ({"clip_min": 1.0, "clip_max": 1.0}, "clip_min must be below clip_max"),
], ids=["attack", "epsilon", "fgsm-l2", "steps", "range"])
def test_bad_arguments_raise(model, data, kwargs, match):
  with pytest.raises(UserInputError, match=match):
    adversarial.robust_accuracy(model, *data, **kwargs)


def test_bad_data_and_files_raise(model, data, tmp_path):
  x, y = data
  with pytest.raises(UserInputError, match="same number of samples"):
    adversarial.robust_accuracy(model, x, y[:10])
  with pytest.raises(UserInputError):
    adversarial.robust_accuracy_tflite(tmp_path / "missing.tflite", model,
                                       x, y)
  with pytest.raises(TypeError, match="Model"):
    adversarial.robust_accuracy("model.keras", x, y)


def test_examples_crafted_once_give_the_same_results(model, data, results,
                                                    tflite_files):
  examples = adversarial.craft_examples(model, *data, **EVAL)
  assert sorted(examples) == ["fgsm@0", "fgsm@0.1", "pgd@0", "pgd@0.1"]
  assert adversarial.robust_accuracy(model, *data, examples=examples,
                                     **EVAL) == results
  shared = adversarial.robust_accuracy_tflite(
      tflite_files["float32"], model, *data, examples=examples, **EVAL)
  fresh = adversarial.robust_accuracy_tflite(tflite_files["float32"], model,
                                             *data, **EVAL)
  assert shared == fresh
  # The examples are really used: all-clean "adversarial" sets score clean.
  clean = {k: np.asarray(data[0], np.float32) for k in examples}
  same = adversarial.robust_accuracy(model, *data, examples=clean, **EVAL)
  assert same["pgd@0.1"] == same["clean"] > results["pgd@0.1"]
