"""make_pruning_schedule, our registered schedules, and update-step logic."""

import json

import pytest
import tensorflow_model_optimization as tfmot

from tf_compress import keras
from tf_compress import UserInputError
from tf_compress.pruning import GlobalSparsity
from tf_compress.pruning import make_pruning_schedule
from tf_compress.pruning import MbyNSparsity
from tf_compress.pruning import PruningConfig
from tf_compress.pruning.schedules import deserialize_schedule
from tf_compress.pruning.schedules import last_update_step


def test_constant_in_steps():
  schedule = make_pruning_schedule(
      PruningConfig(target_sparsity=0.7, begin_step=5, frequency=4))
  assert isinstance(schedule, tfmot.sparsity.keras.ConstantSparsity)
  assert schedule.get_config()["config"] == {
      "target_sparsity": 0.7, "begin_step": 5, "end_step": -1,
      "frequency": 4}


def test_polynomial_epochs_converted_and_end_aligned():
  config = PruningConfig(target_sparsity=0.8, schedule="polynomial",
                         initial_sparsity=0.1, begin_epoch=0.5, end_epoch=3,
                         frequency=7, power=2)
  schedule = make_pruning_schedule(config, steps_per_epoch=40)
  assert isinstance(schedule, tfmot.sparsity.keras.PolynomialDecay)
  # begin 20; end 120 rounded down to 20 + 14 * 7 = 118, an update step.
  assert schedule.get_config()["config"] == {
      "initial_sparsity": 0.1, "final_sparsity": 0.8, "power": 2,
      "begin_step": 20, "end_step": 118, "frequency": 7}
  should_prune, sparsity = schedule(118)
  assert bool(should_prune) and float(sparsity) == pytest.approx(0.8)


def test_steps_win_over_epochs():
  config = PruningConfig(target_sparsity=0.5, schedule="polynomial",
                         begin_epoch=1, end_epoch=2, begin_step=3,
                         end_step=33, frequency=10)
  schedule = make_pruning_schedule(config, steps_per_epoch=100)
  assert (schedule.begin_step, schedule.end_step) == (3, 33)


def test_epochs_need_steps_per_epoch():
  config = PruningConfig(target_sparsity=0.5, schedule="polynomial",
                         end_epoch=2)
  with pytest.raises(UserInputError,
                     match=r"end_epoch=2 is in epochs, so steps_per_epoch "
                     r"is needed"):
    make_pruning_schedule(config)
  with pytest.raises(UserInputError,
                     match=r"steps_per_epoch must be an integer >= 1, got 0"):
    make_pruning_schedule(config, steps_per_epoch=0)


def test_mixed_units_end_before_begin():
  config = PruningConfig(target_sparsity=0.5, begin_epoch=2, end_step=30)
  with pytest.raises(UserInputError,
                     match=r"pruning ends at step 30, before it begins at "
                     r"step 80"):
    make_pruning_schedule(config, steps_per_epoch=40)


@pytest.mark.parametrize("schedule,begin", [("polynomial", 3),
                                             ("constant", 0)])
def test_window_shorter_than_frequency(schedule, begin):
  config = PruningConfig(target_sparsity=0.5, schedule=schedule,
                         begin_step=begin, end_step=begin + 5, frequency=10)
  with pytest.raises(UserInputError,
                     match=rf"the {schedule} schedule runs from step {begin} "
                     rf"to {begin + 5}, less than one update interval"):
    make_pruning_schedule(config)


def test_constant_single_update_at_begin():
  schedule = make_pruning_schedule(PruningConfig(
      target_sparsity=0.5, begin_step=7, end_step=9, frequency=10))
  assert (schedule.begin_step, schedule.end_step) == (7, 7)


def _round_trip(schedule):
  """What tfmot's wrapper does: get_config → JSON → deserialize."""
  config = json.loads(json.dumps(schedule.get_config()))
  return keras.utils.deserialize_keras_object(config), config


def test_global_sparsity_round_trip():
  inner = make_pruning_schedule(PruningConfig(
      target_sparsity=0.6, schedule="polynomial", begin_step=10,
      end_step=50, frequency=5))
  schedule = GlobalSparsity(inner)
  loaded, config = _round_trip(schedule)
  assert config["class_name"] == "tf_compress>GlobalSparsity"
  assert isinstance(loaded, GlobalSparsity)
  assert loaded.get_config() == schedule.get_config()
  assert (loaded.begin_step, loaded.end_step, loaded.frequency) == (10, 50, 5)
  for step in (0, 10, 25, 50, 80):
    assert loaded.sparsity_at(step) == schedule.sparsity_at(step)
  assert schedule.sparsity_at(50) == pytest.approx(0.6)
  assert schedule.sparsity_at(30) == pytest.approx(0.6 * (1 - 0.5**3))
  # tfmot's own per-layer update must never fire.
  should_prune, _ = loaded(50)
  assert not bool(should_prune)


def test_m_by_n_schedule_round_trip():
  loaded, config = _round_trip(MbyNSparsity(2, 4))
  assert config == {"class_name": "tf_compress>MbyNSparsity",
                    "config": {"m": 2, "n": 4}}
  should_prune, sparsity = loaded(1)
  assert not bool(should_prune) and float(sparsity) == 0.5
  with pytest.raises(UserInputError, match="1 <= m < n"):
    MbyNSparsity(4, 4)


def test_deserialize_schedule_knows_tfmot_and_ours():
  constant = tfmot.sparsity.keras.ConstantSparsity(0.3, 2, frequency=3)
  assert deserialize_schedule(constant.get_config()).get_config() == (
      constant.get_config())
  nested = GlobalSparsity(constant.get_config())
  assert nested.schedule.get_config() == constant.get_config()
  with pytest.raises(UserInputError, match="needs a tfmot ConstantSparsity"):
    GlobalSparsity(MbyNSparsity(2, 4))


@pytest.mark.parametrize("after,upto,expected", [
    (8, 12, 10),    # steps_per_execution=4 jumped over step 10
    (12, 16, None),  # nothing due in (12, 16]
    (0, 100, 50),   # a long jump applies the last due step, the end
    (40, 41, None),
    (39, 40, 40),
    (50, 60, None),  # after the end
    (0, 5, None),   # before the begin
], ids=["jump-over", "none-due", "clipped-at-end", "between", "exact",
        "after-end", "before-begin"])
def test_last_update_step(after, upto, expected):
  schedule = tfmot.sparsity.keras.PolynomialDecay(
      0.0, 0.8, begin_step=10, end_step=50, frequency=10)
  assert last_update_step(schedule, after, upto) == expected


def test_last_update_step_open_end():
  schedule = tfmot.sparsity.keras.ConstantSparsity(0.5, 0, frequency=3)
  assert last_update_step(schedule, 1000, 1004) == 1002
