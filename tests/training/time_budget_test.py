import pytest

from defect_aux_net.training.time_budget import StepTiming, epochs_for_budget, parse_duration


@pytest.mark.parametrize(
    "text, seconds", [("30m", 1800), ("1h", 3600), ("90s", 90), ("1h30m", 5400), ("2.5m", 150)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["30", "m", "30x", "1h 30m", "0s", ""])
def test_bad_durations_name_the_flag(text):
    with pytest.raises(ValueError, match="--time_budget"):
        parse_duration(text)


def test_epochs_fill_what_the_budget_leaves():
    # A forward pass per image: 1.0 s / 8 / 3 = 1/24 s. Compilation: 20 s for the
    # step, 4 x 10 s for validation, thresholds, test and export: 60 s. After training:
    # (24 + 48) / 24 = 3 s. An epoch: 10 steps + 24 / 24 s = 11 s. Left: 600 - 100 -
    # 60 - 3 = 437 s, 39 epochs.
    epochs, reason = epochs_for_budget(600, 100, StepTiming(20.0, 1.0), 10, 8, 24, 48)
    assert epochs == 39
    assert "11.0 s per epoch" in reason


def test_a_budget_too_short_gives_the_fewest_epochs_and_says_so():
    # One-cycle needs 4 steps: 2 epochs of 3 steps.
    epochs, reason = epochs_for_budget(100, 100, StepTiming(20.0, 1.0), 3, 8, 24, 0)
    assert epochs == 2
    assert "too short" in reason
