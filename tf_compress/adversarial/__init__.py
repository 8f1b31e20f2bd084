"""Adversarial robustness: attacks, adversarial training, robust accuracy.

    from tf_compress import adversarial

    x_adv = adversarial.pgd(model, x, y, epsilon=0.1, steps=10)
    adv = adversarial.AdversarialModel(model, attack="pgd", epsilon=0.1)
    adv.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), metrics=["accuracy"])
    adv.fit(splits.train(), epochs=10,
            callbacks=[adversarial.EpsilonWarmup(epochs=3)])
    print(adversarial.robust_accuracy(adv.base_model, x_test, y_test))

Both engines: a Keras 3 model (TensorFlow backend), pruned natively or not,
goes through the same functions; `AdversarialModel(keras3_model)` builds a
`Keras3AdversarialModel`, which `isinstance(.., AdversarialModel)` accepts.
"""

from tf_compress.adversarial.attacks import ATTACKS
from tf_compress.adversarial.attacks import fgsm
from tf_compress.adversarial.attacks import NORMS
from tf_compress.adversarial.attacks import pgd
from tf_compress.adversarial.epsilon_warmup import EpsilonWarmup
from tf_compress.adversarial.epsilon_warmup import find_adversarial_model
from tf_compress.adversarial.keras3_model import Keras3AdversarialModel
from tf_compress.adversarial.model import AdversarialModel
from tf_compress.adversarial.robustness import craft_examples
from tf_compress.adversarial.robustness import robust_accuracy
from tf_compress.adversarial.robustness import robust_accuracy_tflite
from tf_compress.adversarial.robustness import result_key
from tf_compress.adversarial.training_attack import TrainingAttack

__all__ = [
    "AdversarialModel", "ATTACKS", "craft_examples", "EpsilonWarmup",
    "fgsm", "find_adversarial_model", "Keras3AdversarialModel", "NORMS",
    "pgd", "result_key", "robust_accuracy", "robust_accuracy_tflite",
    "TrainingAttack",
]
