import dataclasses

import keras
import numpy as np

from defect_aux_net.experiments import PRESETS
from defect_aux_net.training.one_cycle import OneCycleAdam, OneCycleSchedule
from defect_aux_net.training.optimizers import make_optimizer
from tests.tolerances import FLOAT32_UNIT_ROUNDOFF, assert_close


def test_the_experiment_chooses_one_cycle_adam_or_plain_sgd():
    schedule = OneCycleSchedule(1e-3, 100)
    assert isinstance(make_optimizer(PRESETS["quickstart"], schedule), OneCycleAdam)
    experiment = dataclasses.replace(PRESETS["segdec_kolektor"], learning_rate=0.5)
    sgd = make_optimizer(experiment, schedule)
    assert type(sgd) is keras.optimizers.SGD
    # Plain SGD: w <- w - lr * g, the same at every step (no schedule, no momentum).
    weight = keras.Variable(np.array([1.0, 2.0], np.float32))
    for _ in range(2):
        sgd.apply([np.array([1.0, -2.0], np.float32)], [weight])
    np.testing.assert_allclose(np.array(weight), [0.0, 4.0])


def _one_step(optimizer) -> float:
    """A one-weight model w = 2 after one eager step with gradient 4 (MSE of w * 1 vs 0)."""
    weight = keras.Variable(np.array([2.0], np.float32))
    optimizer.apply([np.array([4.0], np.float32)], [weight])
    return float(np.array(weight)[0])


def test_weight_decay_shrinks_the_weight_by_learning_rate_times_decay_times_weight():
    # Powers of two: every product below is exact in float32.
    sgd = dataclasses.replace(PRESETS["segdec_kolektor"], learning_rate=0.125)
    decayed = dataclasses.replace(sgd, weight_decay=0.25)
    schedule = OneCycleSchedule(1e-3, 100)
    # w - lr * g = 2 - 0.125 * 4; with decay also - lr * wd * w = 0.125 * 0.25 * 2.
    assert _one_step(make_optimizer(sgd, schedule)) == 1.5
    assert _one_step(make_optimizer(decayed, schedule)) == 1.5 - 0.0625
    assert make_optimizer(sgd, schedule).weight_decay is None  # 0: no decay ops at all

    # Adam's step is the same with and without decay (it reads the gradient only); the
    # decay at the one-cycle schedule's first rate, 3.125 / 25 = 0.125, comes on top.
    adam = dataclasses.replace(PRESETS["quickstart"], weight_decay=0.25)
    schedule = OneCycleSchedule(3.125, 100)
    plain = _one_step(make_optimizer(PRESETS["quickstart"], schedule))
    with_decay = _one_step(make_optimizer(adam, schedule))
    # Two float32 roundings of values of about 2 in the subtraction.
    assert_close(plain - with_decay, 0.125 * 0.25 * 2, 2 * 2 * FLOAT32_UNIT_ROUNDOFF)
