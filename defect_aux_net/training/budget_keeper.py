"""Keeping a run to its time budget while it trains: the epochs as they really take.

`time_budget` fits the epochs to a warm-up's step time before training; the epochs
then cost more than it saw (input batches it found prepared, checkpoints it did not
write, validation). `KeepToTimeBudget` measures them and shortens the schedule when
needed.
"""

import dataclasses
import time

import keras
import numpy as np
from absl import logging

from defect_aux_net.training.one_cycle import MIN_TOTAL_STEPS, OneCycleSchedule
from defect_aux_net.training.run_files import write_config


class KeepToTimeBudget(keras.callbacks.Callback):
    """Shortens the one-cycle schedule when the real epochs would end past the deadline.

    After each epoch from the second on, the mean wall time of the epochs so far (the
    first, which compiles the step, left out) projects the end of the planned epochs.
    When that is more than one epoch past `deadline`, the epochs become those that end
    by it, the schedule's `total_steps` follows (so the rate still anneals to its end)
    and training stops there. The schedule must hold its total in a variable
    (`OneCycleSchedule.hold_total_steps_in_variable`): the compiled step then follows
    without being traced again, which cost a minute per re-fit on KolektorSDD. It may
    re-fit after any epoch, as the epoch time settles; a run never gets longer.

    Args:
      schedule: the run's `OneCycleSchedule` (changed in place).
      steps_per_epoch: training steps per epoch.
      deadline: `clock()` value by which the epochs should end.
      on_refit: called with `(epochs, reason)` after each re-fit (e.g. to record it).
      clock: seconds, monotonic.
    """

    def __init__(
        self,
        schedule: OneCycleSchedule,
        steps_per_epoch: int,
        deadline: float,
        on_refit=None,
        clock=time.monotonic,
    ):
        super().__init__()
        if isinstance(schedule.traced_total_steps(), int):
            raise ValueError(
                "KeepToTimeBudget needs a schedule whose step reads its total from a "
                "variable: call schedule.hold_total_steps_in_variable() before compiling."
            )
        self.schedule = schedule
        self.steps_per_epoch = steps_per_epoch
        self.deadline = deadline
        self.on_refit = on_refit
        self.clock = clock
        self.epochs = None
        self.refits = 0
        self._durations = []
        self._began = None

    def on_train_begin(self, logs=None):
        self.epochs = self.params["epochs"]

    def on_epoch_begin(self, epoch, logs=None):
        self._began = self.clock()

    def on_epoch_end(self, epoch, logs=None):
        now = self.clock()
        self._durations.append(now - self._began)
        done = epoch + 1
        if done < self.epochs and len(self._durations) >= 2:
            self._refit(done, now)
        if done >= self.epochs:
            self.model.stop_training = True

    def _refit(self, done: int, now: float):
        epoch_seconds = float(np.mean(self._durations[1:]))  # The first compiles the step.
        if now + (self.epochs - done) * epoch_seconds <= self.deadline + epoch_seconds:
            return
        more = max(int((self.deadline - now) // epoch_seconds), 0)
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

    return KeepToTimeBudget(schedule, steps_per_epoch, deadline, on_refit=record)
