"""Tiny trained classifiers shared by the compression tests' fixtures."""

import tf_compress
from tf_compress import keras


def compile_classifier(model, learning_rate=1e-3):
  """Adam, sparse cross-entropy on logits and accuracy: the tests' setup."""
  model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True),
                metrics=["accuracy"])
  return model


def trained_classifier(digits, name="cnn", epochs=5, batch_size=32, seed=0):
  """A registered model trained on digits from a fixed seed."""
  tf_compress.set_seed(seed)
  model = compile_classifier(tf_compress.build_model(
      name, digits.input_shape, digits.num_classes, seed=seed, keras_version=2))
  model.fit(digits.x_train, digits.y_train, batch_size=batch_size,
            epochs=epochs, verbose=0)
  return model


def attack_target(digits):
  """The MLP the attack and robustness tests perturb: 5 epochs, Adam 3e-3."""
  tf_compress.set_seed(0)
  net = tf_compress.build_model("mlp", digits.input_shape, digits.num_classes,
                                keras_version=2)
  net.compile(keras.optimizers.Adam(3e-3),
              keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
  net.fit(digits.train(32), epochs=5, verbose=0)
  return net
