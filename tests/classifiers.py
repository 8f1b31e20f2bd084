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
      name, digits.input_shape, digits.num_classes, seed=seed))
  model.fit(digits.x_train, digits.y_train, batch_size=batch_size,
            epochs=epochs, verbose=0)
  return model
