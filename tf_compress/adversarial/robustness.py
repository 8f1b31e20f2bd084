"""Robust accuracy: accuracy under FGSM and PGD at several radii.

`robust_accuracy` attacks a Keras model and measures it; 
`robust_accuracy_tflite` crafts the adversarial examples on the Keras model
(TFLite has no gradients) and measures the exported file on LiteRT, i.e.
how much robustness survives conversion and quantization.

Both engines: the Keras model may be tf_keras or Keras 3 (TensorFlow
backend); the attacks and the forward passes run as `tf.function`s, inside
the model's `MirroredStrategy` when it was built under one.

FGSM is a weak attack. A model whose FGSM accuracy is much higher than its
PGD accuracy at the same radius masks its gradients (typically after
catastrophic overfitting in FGSM training): its FGSM figure overstates its
robustness. Both functions then warn and set `catastrophic_overfitting`.
"""

import numbers
import warnings

import numpy as np

from tf_compress._keras import tf
from tf_compress.adversarial import attacks as attack_lib
from tf_compress.errors import UserInputError
from tf_compress.export import litert

__all__ = ["robust_accuracy", "robust_accuracy_tflite", "craft_examples",
           "result_key", "OVERFIT_GAP"]

OVERFIT_GAP = 0.2


def result_key(attack, epsilon):
  """`"pgd@0.1"`: the result key of an attack at a radius."""
  return f"{attack}@{epsilon:g}"


def _check(model, x, y, attacks, epsilons, pgd_steps, pgd_step_size, norm,
           clip_min, clip_max, batch_size):
  attack_lib.check_attack_model(model)
  x = np.asarray(x, dtype=np.float32)
  y = np.asarray(y)
  if x.ndim < 1 or len(x) == 0 or y.ndim != 1 or len(y) != len(x):
    raise UserInputError(
        f"x and y must hold the same number of samples (at least 1), with y "
        f"1-D labels; got x of shape {x.shape} and y of shape {y.shape}")
  if not np.issubdtype(y.dtype, np.integer):
    raise UserInputError(f"y must hold integer labels, got {y.dtype}")
  if isinstance(attacks, str):
    attacks = (attacks,)
  attacks = tuple(attacks)
  for attack in attacks:
    if attack not in attack_lib.ATTACKS:
      raise UserInputError(
          f"unknown attack {attack!r}: expected some of "
          f"{attack_lib.ATTACKS}")
  if norm not in attack_lib.NORMS:
    raise UserInputError(f"norm must be one of {attack_lib.NORMS}, got "
                         f"{norm!r}")
  if norm != "linf" and "fgsm" in attacks:
    raise UserInputError(
        f"FGSM is an L-inf attack, but norm={norm!r}; use attacks=('pgd',) "
        "for L2")
  epsilons = tuple(attack_lib.check_epsilon(e, "each epsilon")
                   for e in np.atleast_1d(np.asarray(epsilons, dtype=object)))
  if not epsilons or not attacks:
    raise UserInputError("give at least one attack and one epsilon")
  for name, value in (("pgd_steps", pgd_steps), ("batch_size", batch_size)):
    if isinstance(value, bool) or not isinstance(
        value, numbers.Integral) or value < 1:
      raise UserInputError(f"{name} must be an integer >= 1, got {value!r}")
  if pgd_step_size is not None and (
      not isinstance(pgd_step_size, numbers.Real) or pgd_step_size < 0):
    raise UserInputError(
        f"pgd_step_size must be a number >= 0 or None, got {pgd_step_size!r}")
  if not clip_min < clip_max:
    raise UserInputError(
        f"clip_min must be below clip_max, got {clip_min!r} and "
        f"{clip_max!r}; use DatasetSplits.value_range")
  return x, y.astype(np.int64), attacks, epsilons


def _compiled(model, fn, signature):
  """`fn` as a `tf.function`, run where `model` can run.

  tfmot's wrappers in a model built under MirroredStrategy only run in a
  replica context: there every replica computes the same result on the
  same inputs, and the first is kept. A Keras 3 model built under one
  (`distribute_strategy` is the TensorFlow trainer's) is run the same way.
  """
  strategy = model.distribute_strategy
  if not isinstance(strategy, tf.distribute.MirroredStrategy):
    return tf.function(fn, input_signature=signature)

  @tf.function(input_signature=signature)
  def replicated(*args):
    return strategy.experimental_local_results(strategy.run(fn, args=args))[0]

  def call(*args):
    with strategy.scope():
      return replicated(*args)
  return call


def craft_examples(model, x, y, attacks=("fgsm", "pgd"),
                   epsilons=(0.05, 0.1, 0.2), pgd_steps=20,
                   pgd_step_size=None, random_start=True, norm="linf",
                   clip_min=0.0, clip_max=1.0, batch_size=256, seed=0,
                   from_logits=True):
  """Adversarial versions of `x` for each attack and radius.

  Args: as for `robust_accuracy`.

  Returns:
    A dict from `result_key(attack, epsilon)` to a float32 array shaped
    like `x`.

  Raises:
    TypeError: `model` is not a Keras model.
    ModelError: a Keras 3 model on another backend than TensorFlow.
    UserInputError: bad data or attack settings.
  """
  x, y, attacks, epsilons = _check(model, x, y, attacks, epsilons, pgd_steps,
                                   pgd_step_size, norm, clip_min, clip_max,
                                   batch_size)
  spec = [tf.TensorSpec((None,) + x.shape[1:], tf.float32),
          tf.TensorSpec((None,), tf.int64), tf.TensorSpec((), tf.float32)]

  def fgsm_fn(xb, yb, eps):
    return attack_lib.fgsm_tensor(model, xb, yb, eps, clip_min, clip_max,
                                  from_logits)

  def pgd_fn(xb, yb, eps, batch_seed):
    step = (attack_lib.default_step_size(eps, pgd_steps)
            if pgd_step_size is None else pgd_step_size)
    return attack_lib.pgd_tensor(
        model, xb, yb, eps, step, pgd_steps, norm, random_start, clip_min,
        clip_max, None if seed is None else batch_seed, from_logits)

  run_fgsm = _compiled(model, fgsm_fn, spec)
  run_pgd = _compiled(model, pgd_fn, spec + [tf.TensorSpec((), tf.int64)])
  examples = {}
  for epsilon in epsilons:
    for attack in attacks:
      batches = []
      for index, start in enumerate(range(0, len(x), batch_size)):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        eps = tf.constant(epsilon, tf.float32)
        if attack == "fgsm":
          batches.append(run_fgsm(xb, yb, eps).numpy())
        else:  # a fresh random start per batch, reproducible from `seed`
          batch_seed = tf.constant((seed or 0) + index, tf.int64)
          batches.append(run_pgd(xb, yb, eps, batch_seed).numpy())
      examples[result_key(attack, epsilon)] = np.concatenate(batches)
  return examples


def _accuracy(predict, x, y):
  return float(np.mean(np.argmax(predict(x), axis=-1) == y))


def _flag_overfitting(results, epsilons, gap, where):
  flagged = [e for e in epsilons
             if result_key("fgsm", e) in results and
             result_key("pgd", e) in results and
             results[result_key("fgsm", e)] - results[result_key("pgd", e)] >
             gap]
  results["catastrophic_overfitting"] = bool(flagged)
  if flagged:
    pairs = ", ".join(
        f"eps {e:g}: fgsm {results[result_key('fgsm', e)]:.3f} vs pgd "
        f"{results[result_key('pgd', e)]:.3f}" for e in flagged)
    warnings.warn(
        f"{where}: FGSM accuracy exceeds PGD accuracy by more than {gap:g} "
        f"({pairs}). The model masks its gradients (catastrophic overfitting "
        "of FGSM training?), so FGSM overstates its robustness: trust the "
        "PGD figures, and train with PGD or FGSM with a random start.",
        RuntimeWarning, stacklevel=3)
  return results


def _keras_predict(model, batch_size, input_shape):
  forward = _compiled(model, lambda xb: model(xb, training=False),
                      [tf.TensorSpec((None,) + input_shape, tf.float32)])

  def predict(x):
    return np.concatenate([np.asarray(forward(x[s:s + batch_size]))
                           for s in range(0, len(x), batch_size)])
  return predict


def robust_accuracy(model, x, y, attacks=("fgsm", "pgd"),
                    epsilons=(0.05, 0.1, 0.2), pgd_steps=20,
                    pgd_step_size=None, random_start=True, clip_min=0.0,
                    clip_max=1.0, norm="linf", batch_size=256, seed=0,
                    from_logits=True, overfit_gap=OVERFIT_GAP, examples=None):
  """Accuracy of a Keras classifier on clean and adversarial inputs.

  Args:
    model: a tf_keras or Keras 3 (TensorFlow backend) classifier (logits
      unless `from_logits=False`).
    x: inputs inside `[clip_min, clip_max]`.
    y: 1-D integer labels.
    attacks: some of `"fgsm"` and `"pgd"`.
    epsilons: radii (>= 0) in input units.
    pgd_steps: PGD steps.
    pgd_step_size: PGD step; None means 2.5 * epsilon / pgd_steps.
    random_start: start PGD from a random point of the ball.
    clip_min: smallest valid input (`DatasetSplits.value_range[0]`).
    clip_max: largest valid input.
    norm: `"linf"`, or `"l2"` (PGD only).
    batch_size: samples per attack batch.
    seed: seed of PGD's random starts (None: the global generator).
    from_logits: whether the model outputs logits.
    overfit_gap: FGSM minus PGD accuracy above which the result is flagged.
    examples: adversarial sets already crafted on `model` by
      `craft_examples` with these settings, to reuse instead of crafting
      them again (e.g. for the model and its TFLite exports).

  Returns:
    A dict: `clean`, one `"<attack>@<epsilon>"` accuracy per attack and
    radius (e.g. `"pgd@0.1"`), and `catastrophic_overfitting` (bool).

  Raises:
    TypeError: `model` is not a Keras model.
    ModelError: a Keras 3 model on another backend than TensorFlow.
    UserInputError: bad data or attack settings.
  """
  if examples is None:
    examples = craft_examples(model, x, y, attacks, epsilons, pgd_steps,
                              pgd_step_size, random_start, norm, clip_min,
                              clip_max, batch_size, seed, from_logits)
  x = np.asarray(x, dtype=np.float32)
  y = np.asarray(y).astype(np.int64)
  predict = _keras_predict(model, batch_size, x.shape[1:])
  results = {"clean": _accuracy(predict, x, y)}
  for key, x_adv in examples.items():
    results[key] = _accuracy(predict, x_adv, y)
  epsilons = sorted({float(k.split("@")[1]) for k in examples})
  return _flag_overfitting(results, epsilons, overfit_gap, "robust_accuracy")


def robust_accuracy_tflite(tflite_path, keras_model, x, y,
                           attacks=("fgsm", "pgd"),
                           epsilons=(0.05, 0.1, 0.2), pgd_steps=20,
                           pgd_step_size=None, random_start=True,
                           clip_min=0.0, clip_max=1.0, norm="linf",
                           batch_size=256, seed=0, from_logits=True,
                           overfit_gap=OVERFIT_GAP, isolate=False,
                           examples=None):
  """Robust accuracy of a TFLite model, attacked through its Keras source.

  The adversarial examples are crafted on `keras_model` (white-box for the
  float model, transferred to the converted one), then the clean and every
  adversarial set run through LiteRT in one pass (int8 inputs are
  quantized, outputs dequantized).

  Args:
    tflite_path: the .tflite file (or its bytes), exported from
      `keras_model` (tfmot's pruning wrappers stripped; a Keras 3 model
      pruned by the native engine exports as it is).
    keras_model: the tf_keras or Keras 3 model the attacks use.
    x, y, attacks, epsilons, pgd_steps, pgd_step_size, random_start,
      clip_min, clip_max, norm, seed, from_logits, overfit_gap: as for
      `robust_accuracy` (`from_logits` describes the Keras model).
    batch_size: samples per attack batch and per LiteRT invocation.
    isolate: run LiteRT in a child process (for files of unknown origin,
      which may crash it; see `tf_compress.export.run_isolated`).
    examples: adversarial sets already crafted on `keras_model` by
      `craft_examples`, reused instead of crafted again.

  Returns:
    A dict like `robust_accuracy`'s, with the TFLite model's accuracies,
    plus `keras_clean` (the Keras model's clean accuracy) and `agreement`
    (share of all clean and adversarial samples on which TFLite and Keras
    predict the same class).

  Raises:
    TypeError: `keras_model` is not a Keras model.
    ModelError: a Keras 3 model on another backend than TensorFlow.
    UserInputError: a missing or invalid file, inputs that do not fit it,
      or bad data or attack settings.
  """
  interpreter, _ = litert.load_interpreter(tflite_path)
  litert.check_inputs(interpreter, np.asarray(x, dtype=np.float32))
  if examples is None:
    examples = craft_examples(keras_model, x, y, attacks, epsilons,
                              pgd_steps, pgd_step_size, random_start, norm,
                              clip_min, clip_max, batch_size, seed,
                              from_logits)
  x = np.asarray(x, dtype=np.float32)
  y = np.asarray(y).astype(np.int64)
  names = ["clean"] + list(examples)
  stacked = np.concatenate([x] + [examples[k] for k in examples])
  if isolate:
    outputs, _ = litert.run_isolated(tflite_path, stacked,
                                     batch_size=batch_size)
  else:
    outputs, _ = litert.run_interpreter(interpreter, stacked,
                                        batch_size=batch_size)
  tflite_pred = np.argmax(outputs.reshape(len(stacked), -1), axis=-1)
  keras_pred = np.argmax(_keras_predict(keras_model, batch_size,
                                        x.shape[1:])(stacked),
                         axis=-1)
  results = {}
  for index, name in enumerate(names):
    part = slice(index * len(x), (index + 1) * len(x))
    results[name] = float(np.mean(tflite_pred[part] == y))
  results["keras_clean"] = float(np.mean(keras_pred[:len(x)] == y))
  results["agreement"] = float(np.mean(tflite_pred == keras_pred))
  epsilons = sorted({float(k.split("@")[1]) for k in examples})
  return _flag_overfitting(results, epsilons, overfit_gap,
                           "robust_accuracy_tflite")
