import json

import keras
import numpy as np
import pytest

from defect_aux_net.experiments import ExperimentConfig
from defect_aux_net.training.budget_keeper import KeepToTimeBudget, keeper_for_run
from defect_aux_net.training.one_cycle import OneCycleSchedule, one_cycle_value

STEPS_PER_EPOCH = 2
EPOCHS = 10


class EpochClock:
    """The epoch starts and ends a callback sees: the first epoch 20 s (compilation),
    the others 10 s each."""

    def __init__(self):
        self.times = iter([0.0, 20.0] + [t for end in range(30, 200, 10) for t in (end - 10, end)])

    def __call__(self):
        return next(self.times)


def applied_learning_rates(deadline, jit_compile):
    """Trains w -> w - lr * 1 per step (MAE far above its target: gradient 1) under
    a keeper, and reads each step's learning rate off the weight's changes."""
    schedule = OneCycleSchedule(1e-2, EPOCHS * STEPS_PER_EPOCH)
    schedule.hold_total_steps_in_variable()
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mae", jit_compile=jit_compile)
    refits = []
    keeper = KeepToTimeBudget(
        schedule, STEPS_PER_EPOCH, deadline,
        on_refit=lambda epochs, reason: refits.append((epochs, reason)), clock=EpochClock(),
    )
    weights = [0.0]
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: weights.append(
            float(model.layers[0].get_weights()[0][0, 0])
        )
    )
    x, y = np.ones((4, 1), np.float32), np.full((4, 1), -1e3, np.float32)
    history = model.fit(x, y, batch_size=2, epochs=EPOCHS, callbacks=[keeper, record], verbose=0)
    # Each rate is a difference of two float32 weights: off by up to two of the largest
    # weight's units in the last place.
    atol = 2 * float(np.spacing(np.float32(max(np.abs(weights)))))
    return -np.diff(weights), atol, schedule, refits, len(history.history["loss"])


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
    # Steps 0-3 ran on the 20-step cycle, steps 4-5 on the 6-step one, down to its end,
    # without the step being traced again (the keeper only assigns the variable).
    expected = expected_rates(20, range(4)) + expected_rates(6, range(4, 6))
    np.testing.assert_allclose(rates, expected, rtol=1e-5, atol=atol)
    assert rates[-1] == pytest.approx(1e-2 / 25 / 1e4, abs=atol)


def test_the_schedule_is_refitted_again_when_the_epochs_slow_down():
    class Model:
        stop_training = False

    schedule = OneCycleSchedule(1e-3, 200)
    schedule.hold_total_steps_in_variable()
    keeper = KeepToTimeBudget(
        schedule, 10, deadline=150.0,
        clock=iter([0, 20, 20, 30, 30, 40, 40, 60, 60, 80]).__next__,
    )
    keeper.set_model(Model())
    keeper.set_params({"epochs": 20})
    keeper.on_train_begin()
    for epoch in range(5):
        keeper.on_epoch_begin(epoch)
        keeper.on_epoch_end(epoch)
    # Epoch 1 (20 s) compiles: left out. After epoch 2 (at 30 s, 10 s an epoch) 18 more
    # end at 210 s, past 150 + 10: (150 - 30) // 10 = 12 more, 14 epochs. Epoch 3 ends
    # at 40 s: 11 more at 10 s end at 150, in time. Epoch 4 takes 20 s: the mean, 13.3 s,
    # ends 10 more at 193 s, past 163: (150 - 60) // 13.3 = 6 more, 10 epochs. Epoch 5
    # (20 s, mean 15 s): 5 more end at 155, in time.
    assert keeper.refits == 2 and keeper.epochs == 10
    assert schedule.total_steps == 100
    assert float(keras.ops.convert_to_numpy(schedule.traced_total_steps())) == 100.0


def test_a_schedule_traced_with_its_total_as_a_number_is_refused():
    with pytest.raises(ValueError, match="hold_total_steps_in_variable"):
        KeepToTimeBudget(OneCycleSchedule(1e-3, 200), 10, deadline=150.0)


def test_epochs_that_fit_keep_the_schedule():
    # 8 more epochs of 10 s end at 110 s, within a deadline of 100 s plus one epoch.
    rates, atol, schedule, refits, epochs = applied_learning_rates(100.0, jit_compile=False)
    assert (epochs, schedule.total_steps, refits) == (EPOCHS, EPOCHS * STEPS_PER_EPOCH, [])
    np.testing.assert_allclose(rates, expected_rates(20, range(20)), rtol=1e-5, atol=atol)


def test_a_refit_is_written_to_the_runs_config(tmp_path):
    recipe = {"epochs": {"value": 10, "reason": "budget 600 s", "compile_seconds": 5.0}}
    experiment = ExperimentConfig.from_preset("quickstart", epochs=10, recipe=recipe)
    path = str(tmp_path / "config.json")
    schedule = OneCycleSchedule(1e-3, 20)
    schedule.hold_total_steps_in_variable()
    keeper = keeper_for_run(experiment, ("scratch",), 2, 100.0, schedule, path)
    keeper.on_refit(4, "epochs took 10.0 s")
    stored = json.load(open(path))
    assert stored["epochs"] == 4
    assert stored["recipe"]["epochs"]["value"] == 4
    assert stored["recipe"]["epochs"]["reason"] == (
        "budget 600 s; re-fitted in training: epochs took 10.0 s"
    )
