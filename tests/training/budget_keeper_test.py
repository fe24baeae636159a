import json

import keras
import numpy as np
import pytest

from defect_aux_net.experiments import ExperimentConfig
from defect_aux_net.training.budget_keeper import (
    EpochProgress,
    KeepToTimeBudget,
    keeper_for_run,
    most_epochs,
)
from defect_aux_net.training.one_cycle import OneCycleSchedule, one_cycle_value

STEPS_PER_EPOCH = 2
EPOCHS = 10


class StepClock(keras.callbacks.Callback):
    """Simulated time, advanced as `fit` ends each step: the first step takes
    `first_step` seconds (compilation), the others `step` each. Listed before the
    keeper, it has moved on when the keeper reads it."""

    def __init__(self, first_step: float, step: float):
        super().__init__()
        self.now, self.first_step, self.step, self.steps = 0.0, first_step, step, 0

    def __call__(self):
        return self.now

    def on_train_batch_end(self, batch, logs=None):
        self.now += self.first_step if self.steps == 0 else self.step
        self.steps += 1


def applied_learning_rates(
    deadline, jit_compile, epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH, fit_epochs=None
):
    """Trains w -> w - lr * 1 per step (MAE far above its target: gradient 1) under
    a keeper, and reads each step's learning rate off the weight's changes. Steps take
    5 s, the first 15 s: the first epoch of 2 steps 20 s, the others 10 s. `fit` is
    given `fit_epochs` (default: the planned `epochs`)."""
    schedule = OneCycleSchedule(1e-2, epochs * steps_per_epoch)
    schedule.hold_total_steps_in_variable()
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mae", jit_compile=jit_compile)
    refits = []
    clock = StepClock(15.0, 5.0)
    keeper = KeepToTimeBudget(
        schedule, epochs, steps_per_epoch, deadline,
        on_refit=lambda epochs, reason: refits.append((epochs, reason)), clock=clock,
    )
    weights = [0.0]
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: weights.append(
            float(model.layers[0].get_weights()[0][0, 0])
        )
    )
    x = np.ones((2 * steps_per_epoch, 1), np.float32)
    y = np.full((2 * steps_per_epoch, 1), -1e3, np.float32)
    history = model.fit(
        x, y, batch_size=2, epochs=fit_epochs or epochs, callbacks=[clock, keeper, record],
        verbose=0,
    )
    # Each rate is a difference of two float32 weights: off by up to two of the largest
    # weight's units in the last place.
    atol = 2 * float(np.spacing(np.float32(max(np.abs(weights)))))
    return -np.diff(weights), atol, schedule, refits, len(history.history["loss"])


def check_cycle_cut(rates, atol, total_steps, cut, new_total):
    """Steps before `cut` ran on the cycle of `total_steps`, the rest on the cycle of
    `new_total`, down to its end."""
    expected = expected_rates(total_steps, range(cut)) + expected_rates(
        new_total, range(cut, new_total)
    )
    np.testing.assert_allclose(rates, expected, rtol=1e-5, atol=atol)
    assert rates[-1] == pytest.approx(1e-2 / 25 / 1e4, abs=atol)


def expected_rates(total_steps, steps):
    return [
        float(one_cycle_value(step, total_steps, 0.3, 1e-2 / 25, 1e-2, 1e-2 / 25 / 1e4))
        for step in steps
    ]


@pytest.mark.parametrize("jit_compile", [False, True])
def test_late_epochs_shorten_the_schedule_and_the_compiled_step_follows(jit_compile):
    # After epoch 2 (at 30 s; later epochs 10 s), 8 more would end at 110 s against a
    # deadline of 45 s; (45 - 30) // 10 = 1 more fits: 3 epochs.
    rates, atol, schedule, refits, epochs = applied_learning_rates(45.0, jit_compile)
    assert epochs == 3
    assert schedule.total_steps == 3 * STEPS_PER_EPOCH
    (refitted, reason), = refits
    assert refitted == 3 and "10.0 s" in reason and "65 s past" in reason
    # Steps 0-3 ran on the 20-step cycle, steps 4-5 on the 6-step one, without the step
    # being traced again (the keeper only assigns the variable).
    check_cycle_cut(rates, atol, 20, 4, 6)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_epochs_faster_than_planned_are_added_up_to_what_fit_was_given(jit_compile):
    # 4 epochs planned, `fit` given 6. After epoch 2 (at 30 s; 10 s an epoch) the 2 left
    # end at 50 s, 50 s before a deadline of 100 s (more than an epoch and 3 % of the
    # 70 s left): (100 - 30) // 10 = 7 more would fit, 6 run.
    rates, atol, schedule, refits, epochs = applied_learning_rates(
        100.0, jit_compile, epochs=4, fit_epochs=most_epochs(4)
    )
    assert most_epochs(4) == 6 and epochs == 6
    assert schedule.total_steps == 6 * STEPS_PER_EPOCH
    (refitted, reason), = refits
    assert refitted == 6 and "4 epochs would end 50 s before the budget; 6 end" in reason
    # Steps 0-3 ran on the 8-step cycle, steps 4-11 on the 12-step one, to its end.
    check_cycle_cut(rates, atol, 8, 4, 12)


def test_fits_callbacks_are_told_the_planned_epochs_and_the_progress_bar_follows(capsys):
    schedule = OneCycleSchedule(1e-3, 100)
    schedule.hold_total_steps_in_variable()
    keeper = KeepToTimeBudget(schedule, 10, 10, 1000.0)
    progress = EpochProgress()
    callbacks = keras.callbacks.CallbackList(
        [keeper, progress], model=keras.Sequential(), epochs=15, steps=10, verbose=2
    )
    callbacks.on_train_begin()
    callbacks.on_epoch_begin(0)
    assert (keeper.most, keeper.epochs, callbacks.params["epochs"]) == (15, 10, 10)
    assert "Epoch 1/10" in capsys.readouterr().out
    keeper.params["epochs"] = 12  # As a re-fit sets it.
    callbacks.on_epoch_begin(1)
    assert "Epoch 2/12" in capsys.readouterr().out


def test_the_schedule_is_refitted_again_when_the_epochs_slow_down():
    keeper, _ = keeper_through([(0, 20), (20, 30), (30, 40), (40, 60), (60, 80)], 20, 150.0)
    # Epoch 1 (20 s) compiles: left out. After epoch 2 (at 30 s, 10 s an epoch) 18 more
    # end at 210 s, past 150 + 10: (150 - 30) // 10 = 12 more, 14 epochs. Epoch 3 ends
    # at 40 s: 11 more at 10 s end at 150, in time. Epoch 4 takes 20 s, the median stays
    # 10 s: 10 more end at 160 s, within an epoch. Epoch 5 takes 20 s too, the median is
    # 15 s: 9 more end at 215 s, past 150 + 15: (150 - 80) // 15 = 4 more, 9 epochs.
    assert keeper.refits == 2 and keeper.epochs == 9
    assert keeper.schedule.total_steps == 90
    assert float(keras.ops.convert_to_numpy(keeper.schedule.traced_total_steps())) == 90.0


def keeper_through(epoch_times, planned_epochs, deadline):
    """A keeper after the epochs of `epoch_times`, each begun and ended at its `(begin,
    end)` times."""

    class Model:
        stop_training = False

    schedule = OneCycleSchedule(1e-3, planned_epochs * 10)
    schedule.hold_total_steps_in_variable()
    now = [0.0]
    refits = []
    keeper = KeepToTimeBudget(
        schedule, planned_epochs, 10, deadline, clock=lambda: now[0],
        on_refit=lambda epochs, reason: refits.append(reason),
    )
    keeper.set_model(Model())
    keeper.set_params({"epochs": planned_epochs})
    keeper.on_train_begin()
    for epoch, (begin, end) in enumerate(epoch_times):
        now[0] = begin
        keeper.on_epoch_begin(epoch)
        now[0] = end
        keeper.on_epoch_end(epoch)
    return keeper, refits


def test_the_time_between_epochs_counts():
    # Other callbacks take 2 s after each epoch's end: epochs begin 2 s after the last
    # ended. From end to end an epoch takes 10 s, 8 s as this keeper sees it alone. After
    # epoch 2 (at 30 s) 18 more end at 210 s, past 180 + 10: (180 - 30) // 10 = 15 more.
    # At 8 s they would end at 174 s, in time.
    keeper, [reason] = keeper_through([(0, 20), (22, 30)], 20, deadline=180.0)
    assert keeper.epochs == 17 and "epochs took 10.0 s" in reason


def test_the_pace_is_that_of_the_last_epochs():
    # After the compiling epoch (20 s), 11 epochs of 10 s, then 6 of 20 s. The median of
    # the last 10 turns to 15 s with the fifth slow epoch (at 230 s: 35 epochs), to 20 s
    # with the sixth (at 250 s, 18 done: (500 - 250) // 20 = 12 more, 30 epochs). The
    # median of all 17 is still 10 s: the 22 epochs left would end at 470 s, in time.
    ends = [20 + 10 * epoch for epoch in range(12)] + [150 + 20 * epoch for epoch in range(6)]
    keeper, refits = keeper_through(list(zip([0] + ends[:-1], ends)), 40, deadline=500.0)
    assert keeper.epochs == 30 and refits == [
        "epochs took 15.0 s: 40 epochs would end 75 s past the budget; 35 end within it",
        "epochs took 20.0 s: 35 epochs would end 90 s past the budget; 30 end within it",
    ]


def test_one_slow_epoch_is_outvoted_and_epochs_come_back_as_they_fit():
    # Epoch 2 takes 14 s, the next ones 10 s. After epoch 2 (at 34 s) 18 more at 14 s end
    # at 286 s: (210 - 34) // 14 = 12 more, 14 epochs. After epoch 3 (44 s; median 12 s)
    # 166 // 12 = 13 more fit: 16 epochs. After epoch 4 (54 s; median 10 s) 156 // 10 = 15
    # more: 19 epochs, ending at 204 s. Never more than the 20 planned: with a deadline
    # of 400 s, none of this cuts or adds.
    epoch_times = [(0, 20), (20, 34), (34, 44), (44, 54)]
    keeper, refits = keeper_through(epoch_times, 20, deadline=210.0)
    assert (keeper.refits, keeper.epochs) == (3, 19)
    assert keeper.schedule.total_steps == 190
    assert refits[1] == (
        "epochs took 12.0 s: 14 epochs would end 34 s before the budget; 16 end within it"
    )
    assert keeper_through(epoch_times, 20, deadline=400.0)[0].refits == 0


def test_ends_within_a_share_of_the_time_left_are_left_alone():
    # Epoch 2 takes 10.15 s: the 98 epochs left end at 1024.85 s, 24.85 s past 1000: more
    # than an epoch, less than 3 % of the 969.85 s left (29.1 s). At 10.2 s: 29.8 s past.
    assert keeper_through([(0, 20), (20, 30.15)], 100, deadline=1000.0)[0].refits == 0
    keeper, _ = keeper_through([(0, 20), (20, 30.2)], 100, deadline=1000.0)
    assert (keeper.refits, keeper.epochs) == (1, 2 + 95)


def test_a_schedule_traced_with_its_total_as_a_number_is_refused():
    with pytest.raises(ValueError, match="hold_total_steps_in_variable"):
        KeepToTimeBudget(OneCycleSchedule(1e-3, 200), 20, 10, deadline=150.0)


def test_epochs_that_fit_keep_the_schedule():
    # 8 more epochs of 10 s end at 110 s, within a deadline of 100 s plus one epoch.
    rates, atol, schedule, refits, epochs = applied_learning_rates(100.0, jit_compile=False)
    assert (epochs, schedule.total_steps, refits) == (EPOCHS, EPOCHS * STEPS_PER_EPOCH, [])
    np.testing.assert_allclose(rates, expected_rates(20, range(20)), rtol=1e-5, atol=atol)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_a_late_last_epoch_stops_at_the_step_that_ends_in_time(jit_compile):
    # One epoch of 40 steps, 5 s each after a first of 15 s: step b ends at 15 + 5b.
    # After step 10 (65 s; 10 steps timed) the 29 left would end at 210 s against a
    # deadline of 120 s: 90 s, 18 steps late. It stops after step 10 + 29 - 18 = 21,
    # at 120 s, and the cycle is 22 steps.
    rates, atol, schedule, refits, epochs = applied_learning_rates(120.0, jit_compile, 1, 40)
    assert (epochs, len(rates), schedule.total_steps) == (1, 22, 22)
    (refitted, reason), = refits
    assert refitted == 1
    assert reason == (
        "steps took 5.000 s: the last epoch would end 90 s past the budget; it stops after "
        "22 of its 40 steps"
    )
    check_cycle_cut(rates, atol, 40, 11, 22)  # Cut after step 10.


def test_the_last_epoch_leaves_room_for_its_validation_and_lateness_within_five_steps():
    class Model:
        stop_training = False

    def run(deadline, validation_seconds):
        schedule = OneCycleSchedule(1e-3, 100)
        schedule.hold_total_steps_in_variable()
        now = [0.0]
        keeper = KeepToTimeBudget(
            schedule, 1, 100, deadline, validation_seconds, clock=lambda: now[0]
        )
        keeper.set_model(Model())
        keeper.set_params({"epochs": 1})
        keeper.on_train_begin()
        keeper.on_epoch_begin(0)
        for batch in range(11):  # 1 s a step after a first of 5 s.
            now[0] = 5.0 + batch
            keeper.on_train_batch_end(batch)
        return keeper

    # After step 10 (15 s): 89 steps and 10 s of validation end at 114 s.
    assert run(110.0, 10.0).last_step is None  # 4 s late: within 5 steps.
    # 54 s late: 35 of the 89 steps left, ending at 50 s, validated by 60 s.
    cut = run(60.0, 10.0)
    assert (cut.last_step, cut.schedule.total_steps) == (45, 46)
    assert run(60.0, 0.0).last_step == 55  # Without validation, 10 steps more.


def test_validation_is_timed_as_it_runs():
    schedule = OneCycleSchedule(1e-3, 100)
    schedule.hold_total_steps_in_variable()
    times = iter([3.0, 10.0])
    keeper = KeepToTimeBudget(schedule, 10, 10, 100.0, 30.0, clock=times.__next__)
    keeper.on_test_begin()
    keeper.on_test_end()
    assert keeper.validation_seconds == 7.0


def test_a_refit_is_written_to_the_runs_config(tmp_path):
    recipe = {"epochs": {"value": 10, "reason": "budget 600 s", "compile_seconds": 5.0}}
    experiment = ExperimentConfig.from_preset("quickstart", epochs=10, recipe=recipe)
    path = str(tmp_path / "config.json")
    schedule = OneCycleSchedule(1e-3, 20)
    schedule.hold_total_steps_in_variable()
    keeper = keeper_for_run(experiment, ("scratch",), 2, 100.0, 5.0, schedule, path)
    keeper.on_refit(4, "epochs took 10.0 s")
    stored = json.load(open(path))
    assert stored["epochs"] == 4
    assert stored["recipe"]["epochs"]["value"] == 4
    assert stored["recipe"]["epochs"]["reason"] == (
        "budget 600 s; re-fitted in training: epochs took 10.0 s"
    )
