"""The run's optimizer, as `ExperimentConfig.optimizer` names it."""

import keras

from defect_aux_net.experiments import ExperimentConfig
from defect_aux_net.training.one_cycle import OneCycleAdam, OneCycleSchedule


def make_optimizer(experiment: ExperimentConfig, schedule: OneCycleSchedule):
    """Adam on the one-cycle `schedule`, or plain SGD at `experiment.learning_rate`.

    Args:
      experiment: its `optimizer` says which (`experiments.OPTIMIZERS`).
      schedule: the run's one-cycle schedule (`training_run.one_cycle_schedule`),
        read by "one_cycle_adam" only.
    """
    if experiment.optimizer == "sgd":
        # The segmentation + decision network's paper: no momentum, no decay.
        return keras.optimizers.SGD(experiment.learning_rate)
    return OneCycleAdam(schedule)
