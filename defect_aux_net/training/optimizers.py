"""The run's optimizer, as `ExperimentConfig.optimizer` names it."""

import keras

from defect_aux_net.experiments import ExperimentConfig
from defect_aux_net.training.one_cycle import OneCycleAdam, OneCycleSchedule


def make_optimizer(experiment: ExperimentConfig, schedule: OneCycleSchedule):
    """Adam on the one-cycle `schedule`, or plain SGD at `experiment.learning_rate`,
    both with `experiment.weight_decay`, and the moving average of the weights where
    `experiment.ema_momentum` is set (`weight_average`).

    Keras' weight decay is decoupled (AdamW-style): before each gradient step every
    trainable variable, biases and batch-norm scales included, shrinks by
    `w -= learning_rate * weight_decay * w`, outside the gradient and the optimizer's
    moments. The DeepLabV3+ paper's "weight decay = 1e-4" is PyTorch's SGD argument,
    which adds `weight_decay * w` to the gradient instead, i.e. an L2 term
    `weight_decay / 2 * |w|^2` in the loss. For plain SGD (no momentum, as here) the
    two are the same update, `w -= lr * (g + weight_decay * w)`; with momentum or Adam
    they differ (coupled decay would pass through the moments).

    Args:
      experiment: its `optimizer` says which (`experiments.OPTIMIZERS`).
      schedule: the run's one-cycle schedule (`training_run.one_cycle_schedule`),
        read by "one_cycle_adam" only.
    """
    # None, not 0: no decay ops in the step, and the optimizer config of earlier runs.
    weight_decay = experiment.weight_decay or None
    averaging = {}
    if experiment.ema_momentum is not None:
        averaging = {"use_ema": True, "ema_momentum": experiment.ema_momentum}
    if experiment.optimizer == "sgd":
        # The segmentation + decision network's paper: no momentum.
        return keras.optimizers.SGD(
            experiment.learning_rate, weight_decay=weight_decay, **averaging
        )
    return OneCycleAdam(schedule, weight_decay=weight_decay, **averaging)
