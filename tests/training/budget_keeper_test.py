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
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mae", jit_compile=jit_compile)
    refits = []
    keeper = KeepToTimeBudget(
        schedule, STEPS_PER_EPOCH, deadline, compile_seconds=5.0,
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
    # deadline of 55 s; (55 - 30 - 5 s of compilation) // 10 = 2 more fit: 4 epochs.
    rates, atol, schedule, refits, epochs = applied_learning_rates(55.0, jit_compile)
    assert epochs == 4
    assert schedule.total_steps == 4 * STEPS_PER_EPOCH
    (refitted, reason), = refits
    assert refitted == 4 and "10.0 s" in reason and "55 s past" in reason
    # Steps 0-3 ran on the 20-step cycle, steps 4-7 on the 8-step one, down to its end.
    expected = expected_rates(20, range(4)) + expected_rates(8, range(4, 8))
    np.testing.assert_allclose(rates, expected, rtol=1e-5, atol=atol)
    assert rates[-1] == pytest.approx(1e-2 / 25 / 1e4, abs=atol)


def test_the_epoch_that_compiles_again_does_not_count():
    class Model:
        stop_training = False

    keeper = KeepToTimeBudget(
        OneCycleSchedule(1e-3, 200), 10, deadline=150.0, compile_seconds=5.0,
        clock=iter([0, 20, 20, 30, 30, 45, 45, 55, 55, 65]).__next__,
    )
    keeper.set_model(Model())
    keeper.model.make_train_function = lambda force: None
    keeper.set_params({"epochs": 20})
    keeper.on_train_begin()
    for epoch in range(5):
        keeper.on_epoch_begin(epoch)
        keeper.on_epoch_end(epoch)
    # After epoch 2 (at 30 s, 10 s an epoch): 18 more end at 210 s, past 150 + 10;
    # (150 - 30 - 5) // 10 = 11 more: 13 epochs. Epoch 3 compiles again (15 s): left
    # out, the 10 more epochs of 10 s end at 145 s, in time. Counted, they would take
    # 12.5 s each and end at 170 s, past 162.5: a second, needless re-fit.
    assert keeper.refits == 1 and keeper.epochs == 13
    assert keeper.schedule.total_steps == 130


def test_epochs_that_fit_keep_the_schedule():
    # 8 more epochs of 10 s end at 110 s, within a deadline of 100 s plus one epoch.
    rates, atol, schedule, refits, epochs = applied_learning_rates(100.0, jit_compile=False)
    assert (epochs, schedule.total_steps, refits) == (EPOCHS, EPOCHS * STEPS_PER_EPOCH, [])
    np.testing.assert_allclose(rates, expected_rates(20, range(20)), rtol=1e-5, atol=atol)


def test_a_refit_is_written_to_the_runs_config(tmp_path):
    recipe = {"epochs": {"value": 10, "reason": "budget 600 s", "compile_seconds": 5.0}}
    experiment = ExperimentConfig.from_preset("quickstart", epochs=10, recipe=recipe)
    path = str(tmp_path / "config.json")
    keeper = keeper_for_run(experiment, ("scratch",), 2, 100.0, OneCycleSchedule(1e-3, 20), path)
    assert keeper.compile_seconds == 5.0
    keeper.on_refit(4, "epochs took 10.0 s")
    stored = json.load(open(path))
    assert stored["epochs"] == 4
    assert stored["recipe"]["epochs"]["value"] == 4
    assert stored["recipe"]["epochs"]["reason"] == (
        "budget 600 s; re-fitted in training: epochs took 10.0 s"
    )
