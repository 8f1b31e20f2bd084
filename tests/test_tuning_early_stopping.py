"""The callback that stops hopeless trials: hooks called directly, real fits."""

import numpy as np
import optuna
import pytest

import tf_compress
from tf_compress import keras
from tf_compress.errors import UserInputError
from tf_compress.pipeline.tuning.early_stopping import HopelessTrialStopper


class _FakeTrial:

  def __init__(self):
    self.user_attrs = {}

  def set_user_attr(self, key, value):
    self.user_attrs[key] = value


def _stopper(epochs=4, **kwargs):
  trial = _FakeTrial()
  stopper = HopelessTrialStopper(0.8, trial=trial, **kwargs)
  stopper.set_params({"epochs": epochs, "verbose": 0, "steps": 1})
  return stopper, trial


def test_first_half_is_never_judged():
  stopper, trial = _stopper(epochs=4)
  assert stopper.first_judged_epoch(4) == 2
  stopper.on_epoch_end(0, {"val_accuracy": 0.1})  # epoch 1 of 4: not judged
  assert trial.user_attrs["val_accuracy_by_epoch"] == [0.1]
  with pytest.raises(optuna.TrialPruned, match="val_accuracy=0.5000 after "
                     "epoch 2 is below 0.8000"):
    stopper.on_epoch_end(1, {"val_accuracy": 0.5})
  assert stopper.stopped_epoch == 2
  assert trial.user_attrs["stopped"] == {"epoch": 2, "val_accuracy": 0.5,
                                         "threshold": 0.8}


def test_good_epochs_and_missing_metric_pass():
  stopper, trial = _stopper(epochs=2)
  stopper.on_epoch_end(0, {"val_accuracy": 0.8})   # equal: not below
  stopper.on_epoch_end(1, {"loss": 3.0})           # no validation metric
  assert stopper.stopped_epoch is None
  assert trial.user_attrs["val_accuracy_by_epoch"] == [0.8]


def test_min_epoch_and_start_fraction():
  stopper, _ = _stopper(epochs=10, min_epoch=3, start_fraction=0.0)
  assert stopper.first_judged_epoch(10) == 3
  stopper.on_epoch_end(1, {"val_accuracy": 0.0})  # epoch 2 < 3
  with pytest.raises(optuna.TrialPruned):
    stopper.on_epoch_end(2, {"val_accuracy": 0.0})


@pytest.mark.parametrize("kwargs,message", [
    (dict(threshold=float("nan")), "threshold must be a number"),
    (dict(threshold=0.5, min_epoch=0), "min_epoch must be >= 1"),
    (dict(threshold=0.5, start_fraction=1.5), "start_fraction must be in"),
])
def test_bad_arguments(kwargs, message):
  with pytest.raises(UserInputError, match=message):
    HopelessTrialStopper(**kwargs)


def test_config_round_trip():
  stopper = HopelessTrialStopper(0.75, monitor="val_acc", min_epoch=2,
                                 start_fraction=0.25)
  config = stopper.get_config()
  assert config == {"threshold": 0.75, "monitor": "val_acc", "min_epoch": 2,
                    "start_fraction": 0.25}
  cls = keras.utils.get_registered_object(
      "tf_compress>HopelessTrialStopper")
  assert cls is HopelessTrialStopper
  again = cls.from_config(config)
  assert again.get_config() == config


def _fit_objective(threshold, epochs=2):
  data = tf_compress.load_dataset("iris", seed=0)

  def objective(trial):
    tf_compress.set_seed(0)
    model = tf_compress.build_model("mlp", data.input_shape, data.num_classes,
                                    keras_version=2)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), metrics=["accuracy"])
    history = model.fit(data.x_train, data.y_train, epochs=epochs,
                        validation_data=(data.x_val, data.y_val), verbose=0,
                        callbacks=[HopelessTrialStopper(threshold, trial)])
    return history.history["val_accuracy"][-1]
  return objective


def test_real_fit_prunes_a_hopeless_trial_and_keeps_a_good_one():
  study = optuna.create_study(directions=["maximize", "minimize"])
  # Multi-objective: the objective returns two values; wrap the fit.
  hopeless = _fit_objective(threshold=1.01)
  study.optimize(lambda t: (hopeless(t), 1.0), n_trials=1)
  fine = _fit_objective(threshold=-1.0)
  study.optimize(lambda t: (fine(t), 1.0), n_trials=1)
  pruned, complete = study.trials
  assert pruned.state == optuna.trial.TrialState.PRUNED
  # Stopped after epoch 1 of 2 (the first judged one), not at the end.
  assert pruned.user_attrs["stopped"]["epoch"] == 1
  assert len(pruned.user_attrs["val_accuracy_by_epoch"]) == 1
  assert complete.state == optuna.trial.TrialState.COMPLETE
  assert len(complete.user_attrs["val_accuracy_by_epoch"]) == 2
  assert np.isfinite(complete.values[0])
