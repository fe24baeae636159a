import dataclasses

import keras
import numpy as np
import pytest

from defect_aux_net.experiments import ExperimentConfig
from defect_aux_net.recipes import GIVEN
from defect_aux_net.training.training_run import TrainingData
from defect_aux_net.training.weight_average import (
    ValidateOnAveragedWeights,
    average_for_steps,
    momentum_for_steps,
)
from tests.tolerances import FLOAT32_UNIT_ROUNDOFF, assert_close

MOMENTUM = 0.75
STEPS, EPOCHS = 3, 2
X = np.array([[1.0, 2.0], [-1.0, 0.5], [0.5, -1.5]], np.float32)
Y = np.array([[1.0], [0.0], [2.0]], np.float32)
X_VAL = np.array([[2.0, -1.0], [0.0, 1.0]], np.float32)
Y_VAL = np.array([[1.0], [-1.0]], np.float32)


def _model(use_ema=True):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, use_ema=use_ema, ema_momentum=MOMENTUM),
        loss="mse",
    )
    return model


def _weights(model):
    return [np.array(weight) for weight in model.trainable_variables]


class _Record(keras.callbacks.Callback):
    """The weights each step trained to, and those the callbacks after the averaging see."""

    def __init__(self):
        super().__init__()
        self.steps, self.epoch_ends, self.epoch_begins = [], [], []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(_weights(self.model))

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_ends.append(_weights(self.model))

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_begins.append(_weights(self.model))


def _fit(model, callbacks):
    return model.fit(
        X, Y, batch_size=1, epochs=EPOCHS, shuffle=False, verbose=0,
        validation_data=(X_VAL, Y_VAL), callbacks=callbacks,
    )


def test_validation_and_epoch_ends_see_the_average_and_training_goes_on_from_the_weights():
    model, record = _model(), _Record()
    history = _fit(model, [ValidateOnAveragedWeights(), record])

    # Training is that of a run without averages, step for step: the weights the
    # average replaced are put back exactly.
    plain, plain_record = _model(use_ema=False), _Record()
    _fit(plain, [plain_record])
    for trained, plain_step in zip(record.steps, plain_record.steps):
        for weight, plain_weight in zip(trained, plain_step):
            np.testing.assert_array_equal(weight, plain_weight)
    # Each epoch starts from the last step's weights, not from the average.
    for weights, previous_step in zip(record.epoch_begins[1:], record.steps[STEPS - 1::STEPS]):
        for weight, step_weight in zip(weights, previous_step):
            np.testing.assert_array_equal(weight, step_weight)

    # The average by hand: the first step's weights, then m * average + (1 - m) * weights.
    averages, average = [], None
    for step in record.steps:
        average = step if average is None else [
            MOMENTUM * a + (1 - MOMENTUM) * w for a, w in zip(average, step)
        ]
        averages.append(average)
    # Each step adds at most a rounding of each term and of the sum, relative to the
    # weights' size (the largest is below 2).
    tolerance = 3 * len(record.steps) * 2 * FLOAT32_UNIT_ROUNDOFF
    for epoch in range(EPOCHS):
        expected = averages[(epoch + 1) * STEPS - 1]
        for weight, expected_weight in zip(record.epoch_ends[epoch], expected):
            assert_close(weight, expected_weight, tolerance)
        # The validation loss is the average's: mean squared error over two images.
        kernel, bias = record.epoch_ends[epoch]
        loss = np.mean((X_VAL @ kernel + bias - Y_VAL) ** 2)
        assert_close(history.history["val_loss"][epoch], loss, 20 * FLOAT32_UNIT_ROUNDOFF)
    # The model fit leaves holds the last average (Keras' finalize_variable_values).
    for weight, expected_weight in zip(_weights(model), averages[-1]):
        assert_close(weight, expected_weight, tolerance)
    # The average is not the last weights: the test would see a swap that did nothing.
    assert np.abs(averages[-1][0] - record.steps[-1][0]).max() > 1e-3


def test_an_optimizer_without_averages_is_refused():
    with pytest.raises(ValueError, match="use_ema=True"):
        _fit(_model(use_ema=False), [ValidateOnAveragedWeights()])


@pytest.mark.parametrize("steps, momentum", [(2000, 0.995), (400, 0.975), (30, 0.9)])
def test_the_average_spans_a_tenth_of_the_planned_steps_and_at_least_ten(steps, momentum):
    # m = 1 - 1 / horizon: 200, 40 and 10 steps.
    assert momentum_for_steps(steps)[0] == momentum
    assert f"the last {round(1 / (1 - momentum))} of the run's {steps}" in (
        momentum_for_steps(steps)[1]
    )


def test_the_recipe_chooses_the_momentum_from_epochs_and_steps_unless_given():
    experiment = ExperimentConfig.from_preset("auto", epochs=20, recipe={})
    data = TrainingData(experiment, None, ("a",), pass_steps=25)
    chosen = average_for_steps(data).experiment
    assert chosen.ema_momentum == chosen.recipe["ema_momentum"]["value"] == 0.98  # 500 steps
    # Chosen again (the budget's epochs), it follows them.
    fewer = average_for_steps(dataclasses.replace(data, experiment=dataclasses.replace(
        chosen, epochs=4))).experiment
    assert fewer.ema_momentum == 0.9  # 100 steps: a horizon of 10
    # Given as a flag, kept: then, and when chosen again.
    given = dataclasses.replace(data, experiment=dataclasses.replace(experiment, ema_momentum=0.5))
    kept = average_for_steps(given, keep=("ema_momentum",))
    assert kept.experiment.ema_momentum == 0.5
    assert kept.experiment.recipe["ema_momentum"] == {"value": 0.5, "reason": GIVEN}
    assert average_for_steps(kept) == kept
