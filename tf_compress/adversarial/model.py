"""`AdversarialModel`: adversarial training as a Keras model wrapping another.

Each training batch is perturbed by an attack (FGSM, RS-FGSM or PGD)
against the current weights, and the loss mixes clean and adversarial
examples: `(1 - ratio) * clean + ratio * adversarial`.

Two details make it compose with the other harnesses in one `fit`:

* The attack runs the model with `training=False`, and the clean and
  adversarial examples then go through the model in one `training=True`
  call (concatenated). tfmot's pruning wrappers count a step per training
  call, so a pruned base model keeps one step per batch, and the schedule
  and `PruningCallback` behave as without adversarial training.
* The base may be a `Distiller`: the attack targets its student, and the
  distillation loss applies to both halves with the teacher's targets on the
  clean inputs (as in adversarially robust distillation, Goldblum et al.,
  2020), so cached teacher outputs keep working. Distillation, pruning and
  adversarial training then share one `fit`:
  `AdversarialModel(Distiller(teacher, pruned_student))`.
"""

from tf_compress._keras import check_model, is_keras3_object
from tf_compress._keras import keras, register, tf
from tf_compress.adversarial.keras3_model import Keras3AdversarialModel
from tf_compress.adversarial.training_attack import TrainingAttack
from tf_compress.adversarial.training_core import AdversarialCore
from tf_compress.distillation.distiller import Distiller
from tf_compress.distillation.engine_ops import TF_OPS

__all__ = ["AdversarialModel"]


def _base_argument(args, kwargs):
  return args[0] if args else kwargs.get("base_model")


class _EngineDispatch(type(keras.Model)):
  """Builds the engine of the base model; `isinstance` holds for both.

  `AdversarialModel(base, ...)` with a Keras 3 `base` returns a
  `Keras3AdversarialModel` (a Keras 3 model cannot be a tf_keras one), and
  `isinstance(obj, AdversarialModel)` is True for either engine's model, so
  `find_adversarial_model` and `EpsilonWarmup` find both.
  """

  def __call__(cls, *args, **kwargs):
    if cls is AdversarialModel and is_keras3_object(
        _base_argument(args, kwargs)):
      return Keras3AdversarialModel(*args, **kwargs)
    return super().__call__(*args, **kwargs)

  def __instancecheck__(cls, obj):
    if cls is AdversarialModel and isinstance(obj, Keras3AdversarialModel):
      return True
    return super().__instancecheck__(obj)

  def __subclasscheck__(cls, subclass):
    if cls is AdversarialModel and issubclass(subclass,
                                              Keras3AdversarialModel):
      return True
    return super().__subclasscheck__(subclass)


@register
class AdversarialModel(AdversarialCore, keras.Model,
                       metaclass=_EngineDispatch):
  """Trains `base_model` on a mix of clean and adversarial batches.

  `compile(optimizer, loss, metrics)` as usual (`loss` on labels; the
  metrics are computed on the clean examples). `fit` reports `loss` (the
  mixed total), `clean_loss`, `adversarial_loss`, `adversarial_accuracy`
  (of the examples crafted for the batch), the metrics, and with a
  `Distiller` base also `student_loss`, `distillation_loss` (and
  `feature_loss`), mixed in the same ratio. `evaluate` is on clean data
  (see `robust_accuracy` for attacks); `call`/`predict` use the base model.
  Save or export `.base_model` (or the Distiller's student).

  Attacks: `"pgd"` (`steps` steps of `step_size`, default
  2.5 * epsilon / steps, from a random start unless `random_start=False`);
  `"fgsm"` with `random_start=True` is RS-FGSM (Wong et al., 2020: a random
  start, then one step of 1.25 * epsilon, projected), a cheap and robust
  default; `"fgsm"` without random start is plain FGSM, prone to
  catastrophic overfitting. `epsilon` is a non-trainable variable that
  `EpsilonWarmup` can ramp during training.

  Both engines: with a Keras 3 `base_model` (TensorFlow backend, possibly
  pruned by the native engine, or a Keras 3 `Distiller`) this builds a
  `Keras3AdversarialModel`, which `isinstance(model, AdversarialModel)`
  accepts too.

  Args:
    base_model: a tf_keras classifier (logits unless `from_logits=False`),
      possibly pruning-wrapped, or a `Distiller`; or the same in Keras 3.
    attack: `"pgd"` or `"fgsm"`.
    epsilon: the attack's radius (>= 0) in input units.
    ratio: weight of the adversarial loss, in (0, 1]; 1 trains on
      adversarial examples only (Madry et al.).
    steps: PGD steps (>= 1); ignored by FGSM.
    step_size: step size (>= 0), or None for the attack's default.
    norm: `"linf"` or `"l2"` (PGD only; FGSM is L-inf).
    random_start: start the attack from a random point of the ball.
    clip_min: smallest valid input value (`DatasetSplits.value_range`).
    clip_max: largest valid input value.
    from_logits: whether the base model outputs logits.
    **kwargs: `keras.Model` arguments such as `name`.

  Raises:
    TypeError: `base_model` is not a Keras model.
    ModelError: a Keras 3 `base_model` on another backend than TensorFlow.
    UserInputError: a bad attack, epsilon, ratio, steps, step size, norm or
      range.

  Example:
    >>> adv = AdversarialModel(model, attack="pgd", epsilon=0.1, steps=5)
    >>> adv.compile("adam", keras.losses.SparseCategoricalCrossentropy(
    ...     from_logits=True), metrics=["accuracy"])
    >>> adv.fit(splits.train(), epochs=10, callbacks=[EpsilonWarmup(3)])
    >>> adv.base_model.save("robust.keras")
  """

  _OPS = TF_OPS

  def __init__(self, base_model, attack="pgd", epsilon=0.1, ratio=0.5,
               steps=5, step_size=None, norm="linf", random_start=True,
               clip_min=0.0, clip_max=1.0, from_logits=True, **kwargs):
    super().__init__(**kwargs)
    check_model(base_model, "base_model")
    settings = TrainingAttack(attack, epsilon, ratio, steps, step_size, norm,
                              random_start, clip_min, clip_max, from_logits)
    self._set_up(base_model, settings, keras, Distiller)

  # -- Keras hooks -----------------------------------------------------------

  def _results(self, names):
    logs = {m.name: m.result() for m in self.metrics
            if m.name not in self._trackers and
            m is not self.adversarial_accuracy}
    for name in names:
      tracker = (self.adversarial_accuracy if name == "adversarial_accuracy"
                 else self._trackers[name])
      logs[name] = tracker.result()
    return logs

  def train_step(self, data):
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    targets, x_adv = self._attacked(x, y)
    labels = targets[0]
    with tf.GradientTape() as tape:
      clean_logits, adv_logits, clean, adv, total = self._mixed_loss(
          x, x_adv, targets, sample_weight)
      # Gradients are summed over replicas: scale each replica's mean.
      scaled = total / tf.distribute.get_strategy().num_replicas_in_sync
    self.optimizer.minimize(scaled, self.trainable_variables, tape=tape)
    self._track_train(total, clean, adv, labels, adv_logits, sample_weight)
    self.compute_metrics(x, labels, clean_logits, sample_weight)
    return self._results(list(self._trackers) + ["adversarial_accuracy"])

  def test_step(self, data):
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    targets = self._targets(x, y)
    logits, terms, total = self._clean_loss(x, targets, sample_weight)
    names = self._track_test(total, terms)
    self.compute_metrics(x, targets[0], logits, sample_weight)
    return self._results(names)

  def get_config(self):
    return {
        "name": self.name,
        "base_model": keras.utils.serialize_keras_object(self.base_model),
        "attack": self.attack,
        "epsilon": float(keras.backend.get_value(self.epsilon)),
        "ratio": self.ratio,
        "steps": self.steps,
        "step_size": self.step_size,
        "norm": self.norm,
        "random_start": self.random_start,
        "clip_min": self.clip_min,
        "clip_max": self.clip_max,
        "from_logits": self.from_logits,
    }

  @classmethod
  def from_config(cls, config, custom_objects=None):
    config = dict(config)
    config["base_model"] = keras.utils.deserialize_keras_object(
        config["base_model"], custom_objects=custom_objects)
    return cls(**config)
