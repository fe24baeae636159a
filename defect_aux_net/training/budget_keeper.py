"""Keeping a run to its time budget while it trains: the epochs as they really take.

`time_budget` fits the epochs to a warm-up's step time before training; the epochs
then cost more than it saw (input batches it found prepared, checkpoints it did not
write). `KeepToTimeBudget` measures them and shortens the schedule when needed.
"""

import dataclasses
import time

import keras
import numpy as np
from absl import logging

from defect_aux_net.training.one_cycle import MIN_TOTAL_STEPS, OneCycleSchedule
from defect_aux_net.training.run_files import write_config

# The schedule is re-fitted at most this many times: each re-fit traces and compiles
# the training step again.
MAX_REFITS = 2


class KeepToTimeBudget(keras.callbacks.Callback):
    """Shortens the one-cycle schedule when the real epochs would end past the deadline.

    After each epoch from the second on, the mean wall time of the epochs so far
    projects the end of the planned epochs (the epochs that compiled the step, the
    first and the one after a re-fit, are left out). When that is more than one epoch
    past `deadline`, the epochs become those that end by it (after one more
    compilation), the schedule's `total_steps` follows (so the rate still anneals to
    its end), the training step is traced again, and training stops there. A run never
    gets longer.

    Args:
      schedule: the run's `OneCycleSchedule` (changed in place).
      steps_per_epoch: training steps per epoch.
      deadline: `clock()` value by which the epochs should end.
      compile_seconds: what compiling the training step costs (the warm-up's).
      on_refit: called with `(epochs, reason)` after each re-fit (e.g. to record it).
      clock: seconds, monotonic.
    """

    def __init__(
        self,
        schedule: OneCycleSchedule,
        steps_per_epoch: int,
        deadline: float,
        compile_seconds: float,
        on_refit=None,
        clock=time.monotonic,
    ):
        super().__init__()
        self.schedule = schedule
        self.steps_per_epoch = steps_per_epoch
        self.deadline = deadline
        self.compile_seconds = compile_seconds
        self.on_refit = on_refit
        self.clock = clock
        self.epochs = None
        self.refits = 0
        self._durations = []
        self._began = None
        self._compiling = True

    def on_train_begin(self, logs=None):
        self.epochs = self.params["epochs"]

    def on_epoch_begin(self, epoch, logs=None):
        self._began = self.clock()

    def on_epoch_end(self, epoch, logs=None):
        now = self.clock()
        if not self._compiling:
            self._durations.append(now - self._began)
        self._compiling = False
        done = epoch + 1
        if done < self.epochs and self._durations and self.refits < MAX_REFITS:
            self._refit(done, now)
        if done >= self.epochs:
            self.model.stop_training = True

    def _refit(self, done: int, now: float):
        epoch_seconds = float(np.mean(self._durations))
        if now + (self.epochs - done) * epoch_seconds <= self.deadline + epoch_seconds:
            return
        more = max(int((self.deadline - now - self.compile_seconds) // epoch_seconds), 0)
        epochs = done + more
        if more > 0 and epochs * self.steps_per_epoch < MIN_TOTAL_STEPS:
            epochs, more = done, 0
        late = now + (self.epochs - done) * epoch_seconds - self.deadline
        reason = (
            f"epochs took {epoch_seconds:.1f} s, not the warm-up's estimate: "
            f"{self.epochs} epochs would end {late:.0f} s past the budget; {epochs} end "
            "within it"
        )
        logging.warning("Time budget: %s.", reason)
        self.refits += 1
        self.epochs = epochs
        if more > 0:
            self.schedule.total_steps = epochs * self.steps_per_epoch
            # The step reads the schedule's total when traced: trace it again.
            self.model.make_train_function(force=True)
            self._compiling = True
        if self.on_refit is not None:
            self.on_refit(epochs, reason)


def keeper_for_run(
    experiment, class_names, steps_per_epoch: int, deadline: float, schedule, config_path: str
) -> KeepToTimeBudget:
    """A run's `KeepToTimeBudget`; a re-fit is written to its config.json, so that a rerun
    (resuming after a kill, or finding the run complete) has the epochs it trained.

    Args:
      experiment: the run's `ExperimentConfig`, its epochs chosen by the time budget
        (`recipe["epochs"]`).
      class_names: the dataset's, as config.json holds them.
      steps_per_epoch, deadline, schedule: as `KeepToTimeBudget` takes them.
      config_path: the run's config.json.
    """

    def record(epochs, reason):
        choice = dict(experiment.recipe["epochs"])
        choice.update(value=epochs, reason=f"{choice['reason']}; re-fitted in training: {reason}")
        refitted = dataclasses.replace(
            experiment, epochs=epochs, recipe=experiment.recipe | {"epochs": choice}
        )
        write_config(refitted, class_names, config_path)

    return KeepToTimeBudget(
        schedule, steps_per_epoch, deadline, experiment.recipe["epochs"]["compile_seconds"],
        on_refit=record,
    )
