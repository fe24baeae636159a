import keras
import pytest

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.experiments import ExperimentConfig
from defect_aux_net.training.time_budget import (
    StepTiming,
    epochs_for_budget,
    parse_duration,
    training_deadline,
)
from defect_aux_net.training.training_run import early_stopping


@pytest.mark.parametrize(
    "text, seconds", [("30m", 1800), ("1h", 3600), ("90s", 90), ("1h30m", 5400), ("2.5m", 150)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["30", "m", "30x", "1h 30m", "0s", ""])
def test_bad_durations_name_the_field(text):
    with pytest.raises(ConfigError, match=rf"^ExperimentConfig.time_budget='{text}'") as error:
        parse_duration(text)
    assert error.value.field == "ExperimentConfig.time_budget"
    assert "--" not in str(error.value)


def test_epochs_fill_what_the_budget_leaves():
    # A forward pass per image: 1.0 s / 8 / 3 = 1/24 s. Set-up 15 s; compilation: 20 s
    # for the step, 4 x 10 s for validation, thresholds, test and export: 60 s. After
    # training: (24 + 48) / 24 = 3 s. A pass: 10 steps + 24 / 24 s = 11 s. Left:
    # 600 - 100 - 15 - 60 - 3 = 422 s, 38 passes; the 4 s over, less than a step per
    # epoch, stay unused.
    epochs, passes, reason = epochs_for_budget(
        600, 100, StepTiming(20.0, 1.0, 15.0), 10, 8, 24, 48
    )
    assert (epochs, passes) == (38, 1.0)
    assert "11.0 s per pass" in reason and "38 epoch(s) of 10 steps" in reason
    assert "too short" not in reason


@pytest.mark.parametrize(
    "pass_steps, epochs, steps",
    [
        # 422 s as above, epochs of 1 s validation. 200-step passes: 2 fit (402 s), and
        # the 20 s over give each epoch 10 more steps: (422 - 2) // 2 = 210.
        (200, 2, 210),
        # One 301 s pass fits, and 121 s over: one epoch of 421 steps.
        (300, 1, 421),
        # A pass takes longer than the budget: one epoch of the 421 steps that fit.
        (1000, 1, 421),
    ],
)
def test_the_time_left_over_trains_too(pass_steps, epochs, steps):
    chosen = epochs_for_budget(600, 100, StepTiming(20.0, 1.0, 15.0), pass_steps, 8, 24, 48)
    assert chosen[:2] == (epochs, steps / pass_steps)
    assert f"{epochs} epoch(s) of {steps} steps" in chosen[2]


def test_the_batch_norm_pass_after_training_takes_its_time_from_the_epochs():
    # As above with a 30 s pass: 422 - 30 = 392 s left, 35 epochs of 11 s.
    timing = StepTiming(20.0, 1.0, 15.0, batch_norm_seconds=30.0)
    epochs, passes, reason = epochs_for_budget(600, 100, timing, 10, 8, 24, 48)
    assert (epochs, passes) == (35, 1.0)
    assert "33 s of the batch-norm pass, thresholds and test evaluation" in reason


def test_a_budget_too_short_gives_the_fewest_steps_and_says_so():
    # One-cycle needs 4 steps: one epoch of 4 steps, 4/3 of a 3-step pass.
    epochs, passes, reason = epochs_for_budget(100, 100, StepTiming(20.0, 1.0), 3, 8, 24, 0)
    assert (epochs, passes) == (1, 4 / 3)
    assert "the budget is too short: 4 steps, the fewest possible" in reason


def test_early_stopping_stops_after_patience_epochs_without_a_lower_validation_loss():
    experiment = ExperimentConfig.from_preset("quickstart", early_stopping_patience=2)
    (callback,) = early_stopping(experiment)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin()
    stopped = []
    for epoch, loss in enumerate([1.0, 0.8, 0.9, 0.85, 0.7]):
        callback.on_epoch_end(epoch, {"val_loss": loss})
        stopped.append(model.stop_training)
    # 0.8 at epoch 1 is the best; epochs 2 and 3 do not beat it: stop after epoch 3.
    assert stopped == [False, False, False, True, True]
    assert early_stopping(ExperimentConfig.from_preset("quickstart")) == []


def test_the_deadline_leaves_what_follows_the_epochs():
    # As above: after training 3 s of forward passes, and 3 of the 4 later graphs
    # (validation's is traced in the first epoch) at 10 s each.
    deadline = training_deadline(600, 1000.0, StepTiming(20.0, 1.0, 15.0), 8, 24, 48)
    assert deadline == pytest.approx(1000 + 600 - 3 - 30)
    # The batch-norm pass follows the epochs too.
    timing = StepTiming(20.0, 1.0, 15.0, batch_norm_seconds=30.0)
    deadline = training_deadline(600, 1000.0, timing, 8, 24, 48)
    assert deadline == pytest.approx(1000 + 600 - 3 - 30 - 30)
