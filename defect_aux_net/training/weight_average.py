"""Validation, the best model and the other epoch-end callbacks on the optimizer's
exponential moving average of the weights, training on the weights themselves.

With `ExperimentConfig.ema_momentum` the optimizer keeps, in the training step,
`average = momentum * average + (1 - momentum) * weights` (Keras' `use_ema`; Polyak
averaging, as Ultralytics' and timm's model EMA). Keras' own `SwapEMAWeights` swaps the
two by adding and subtracting them, which changes the weights by float32 rounding at every
swap, and decides which epoch is the last from `params["epochs"]`, which a time budget's
keeper moves and cuts short; hence this callback.

The automatic recipe turns the average on, over about a tenth of the run's planned steps
(`average_for_steps`).
"""

import dataclasses

import keras
from absl import logging

from defect_aux_net.recipes import GIVEN, given_fields

# The average spans this fraction of the run's planned steps: with the one-cycle policy
# the learning rate is then below a twentieth of its peak, so the average smooths the
# noise of the last steps without reaching back to weights that are still moving fast
# (Ultralytics' model EMA spans some 2,000-10,000 steps of runs ten to a hundred times
# longer than a CPU budget's). Measured (benchmarks/README.md), 30-minute runs of the
# automatic recipe without and with it: KolektorSDD fused per-image AP 0.956 -> 0.973 and
# 0.981, Dice 0.626 -> 0.636 in both; NEU-DET mAP@0.5 0.638 -> 0.655, 0.647 and 0.632
# (within single-run spread), top-1 0.991 -> 0.988-0.994.
RUN_FRACTION = 0.1
# An average over fewer steps than this is hardly one.
MIN_STEPS = 10


def momentum_for_steps(steps: int) -> tuple:
    """`(ema_momentum, reason)` of an average over about `RUN_FRACTION` of `steps`."""
    horizon = max(MIN_STEPS, RUN_FRACTION * steps)
    momentum = round(1 - 1 / horizon, 5)
    return momentum, (
        f"validation, the best model and the export use the moving average of the weights "
        f"over about the last {horizon:.0f} of the run's {steps} planned steps (a tenth)"
    )


def average_for_steps(data, keep=()):
    """`data` (a `training_run.TrainingData`) with `ema_momentum` chosen for its planned
    steps, epochs times steps per epoch; kept where the user gave it (in `keep`, or
    recorded as given by an earlier call)."""
    experiment = data.experiment
    if "ema_momentum" in keep or "ema_momentum" in given_fields(experiment):
        choice = {"value": experiment.ema_momentum, "reason": GIVEN}
    else:
        momentum, reason = momentum_for_steps(data.train_steps * experiment.epochs)
        experiment = dataclasses.replace(experiment, ema_momentum=momentum)
        choice = {"value": momentum, "reason": reason}
        logging.info("Recipe: ema_momentum = %s (%s)", momentum, reason)
    recipe = (experiment.recipe or {}) | {"ema_momentum": choice}
    return dataclasses.replace(data, experiment=dataclasses.replace(experiment, recipe=recipe))


class ValidateOnAveragedWeights(keras.callbacks.Callback):
    """Puts the averaged weights into the model for validation and for the callbacks
    after this one at each epoch's end, and the training weights back for the next epoch.

    List it after the backup (which must save the training weights and the optimizer's
    averages as they are) and before the best-model checkpoint, the curves and the image
    panel (which should see the averaged model). The training weights are held in host
    memory meanwhile. At the end of `fit`, Keras itself puts the averages into the model
    (`Optimizer.finalize_variable_values`): the model `fit` leaves is the averaged one.
    """

    def __init__(self):
        super().__init__()
        self._training_weights = None

    def _use_averages(self):
        if self._training_weights is None:
            weights = self.model.trainable_variables
            self._training_weights = [keras.ops.convert_to_numpy(w) for w in weights]
            self.model.optimizer.finalize_variable_values(weights)

    def _use_training_weights(self):
        if self._training_weights is not None:
            for weight, value in zip(self.model.trainable_variables, self._training_weights):
                weight.assign(value)
            self._training_weights = None

    def on_train_begin(self, logs=None):
        if not getattr(self.model.optimizer, "use_ema", False):
            raise ValueError(
                "ValidateOnAveragedWeights needs an optimizer with use_ema=True "
                "(ExperimentConfig.ema_momentum)."
            )

    def on_test_begin(self, logs=None):
        self._use_averages()

    def on_test_end(self, logs=None):
        # The backup saves at the epoch's end, before this callback's turn: the
        # training weights, as a resumed run must continue from them.
        self._use_training_weights()

    def on_epoch_end(self, epoch, logs=None):
        self._use_averages()

    def on_epoch_begin(self, epoch, logs=None):
        self._use_training_weights()

    def on_train_end(self, logs=None):
        # `finalize_variable_values` has put the averages in already.
        self._training_weights = None
