import dataclasses

import keras
import numpy as np

from defect_aux_net.experiments import PRESETS
from defect_aux_net.training.one_cycle import OneCycleAdam, OneCycleSchedule
from defect_aux_net.training.optimizers import make_optimizer


def test_the_experiment_chooses_one_cycle_adam_or_plain_sgd():
    schedule = OneCycleSchedule(1e-3, 100)
    assert isinstance(make_optimizer(PRESETS["quickstart"], schedule), OneCycleAdam)
    sgd = make_optimizer(dataclasses.replace(PRESETS["segdec_kolektor"], learning_rate=0.5), schedule)
    assert type(sgd) is keras.optimizers.SGD
    # Plain SGD: w <- w - lr * g, the same at every step (no schedule, no momentum).
    weight = keras.Variable(np.array([1.0, 2.0], np.float32))
    for _ in range(2):
        sgd.apply([np.array([1.0, -2.0], np.float32)], [weight])
    np.testing.assert_allclose(np.array(weight), [0.0, 4.0])
