"""Validation, the best model and the other epoch-end callbacks on the optimizer's
exponential moving average of the weights, training on the weights themselves.

With `ExperimentConfig.ema_momentum` the optimizer keeps, in the training step,
`average = momentum * average + (1 - momentum) * weights` (Keras' `use_ema`; Polyak
averaging, as Ultralytics' and timm's model EMA). Keras' own `SwapEMAWeights` swaps the
two by adding and subtracting them, which changes the weights by float32 rounding at every
swap, and decides which epoch is the last from `params["epochs"]`, which a time budget's
keeper moves and cuts short; hence this callback.
"""

import keras


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
