import dataclasses

import pytest

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.training.time_budget import (
    epochs_for_budget,
    parse_duration,
    training_deadline,
)
from defect_aux_net.training.warm_up import StepTiming

# Compilation 20 s, a step 1 s, set-up 15 s; a prediction 1/24 s an image, 10 s a trace;
# the export 10 s.
TIMING = StepTiming(
    20.0, 1.0, 15.0, image_seconds=1 / 24, trace_seconds=10.0, export_seconds=10.0
)


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
    # Set-up 15 s; compilation: 20 s for the step, 2 traces each for validation,
    # thresholds and test: 20 + 6 x 10 = 80 s. After training: (24 + 48) / 24 = 3 s of
    # predictions and 10 s of export. A pass: 10 steps + 24 / 24 s = 11 s. Left:
    # 600 - 100 - 15 - 80 - 13 = 392 s, 35 passes; the 7 s over, less than a step per
    # epoch, stay unused.
    epochs, passes, reason = epochs_for_budget(600, 100, TIMING, 10, 24, 48)
    assert (epochs, passes) == (35, 1.0)
    assert "11.0 s per pass" in reason and "35 epoch(s) of 10 steps" in reason
    # Without a test split: neither its predictions (2 s) nor its traces (20 s).
    assert epochs_for_budget(600, 100, TIMING, 10, 24, 0)[0] == (392 + 22) // 11
    assert "too short" not in reason


@pytest.mark.parametrize(
    "pass_steps, epochs, steps",
    [
        # 392 s as above, epochs of 1 s validation. 150-step passes: 2 fit (302 s), and
        # the 90 s over give each epoch 45 more steps: (392 - 2) // 2 = 195.
        (150, 2, 195),
        # One 301 s pass fits, and 91 s over: one epoch of 391 steps.
        (300, 1, 391),
        # A pass takes longer than the budget: one epoch of the 391 steps that fit.
        (1000, 1, 391),
    ],
)
def test_the_time_left_over_trains_too(pass_steps, epochs, steps):
    chosen = epochs_for_budget(600, 100, TIMING, pass_steps, 24, 48)
    assert chosen[:2] == (epochs, steps / pass_steps)
    assert f"{epochs} epoch(s) of {steps} steps" in chosen[2]


def test_the_batch_norm_pass_after_training_takes_its_time_from_the_epochs():
    # As above with a 30 s pass: 392 - 30 = 362 s left, 32 epochs of 11 s.
    timing = dataclasses.replace(TIMING, batch_norm_seconds=30.0)
    epochs, passes, reason = epochs_for_budget(600, 100, timing, 10, 24, 48)
    assert (epochs, passes) == (32, 1.0)
    assert (
        "43 s of the best model's load, the batch-norm pass, thresholds, test evaluation "
        "and export" in reason
    )


def test_a_budget_too_short_gives_the_fewest_steps_and_says_so():
    # One-cycle needs 4 steps: one epoch of 4 steps, 4/3 of a 3-step pass.
    epochs, passes, reason = epochs_for_budget(100, 100, StepTiming(20.0, 1.0), 3, 24, 0)
    assert (epochs, passes) == (1, 4 / 3)
    assert "the budget is too short: 4 steps, the fewest possible" in reason


def test_the_deadline_leaves_what_follows_the_epochs():
    # As above: after training 3 s of predictions, 10 s of export, and the 4 traces of
    # thresholds and test (validation's are made in the first epoch) at 10 s each.
    deadline = training_deadline(600, 1000.0, TIMING, 24, 48)
    assert deadline == pytest.approx(1000 + 600 - 3 - 10 - 40)
    # A run that does not export keeps those 10 s for its epochs.
    unexported = dataclasses.replace(TIMING, export_seconds=0.0)
    assert training_deadline(600, 1000.0, unexported, 24, 48) == pytest.approx(deadline + 10)
    # The batch-norm pass follows the epochs too.
    timing = dataclasses.replace(TIMING, batch_norm_seconds=30.0)
    deadline = training_deadline(600, 1000.0, timing, 24, 48)
    assert deadline == pytest.approx(1000 + 600 - 3 - 10 - 40 - 30)
    # And the best model's load before it.
    timing = dataclasses.replace(timing, load_seconds=2.0)
    assert training_deadline(600, 1000.0, timing, 24, 48) == pytest.approx(deadline - 2)
