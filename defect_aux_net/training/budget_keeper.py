"""Keeping a run to its time budget while it trains: the epochs as they really take.

`time_budget` fits the epochs to a warm-up's step time before training; the epochs
then cost more than it saw (input batches it found prepared, checkpoints it did not
write, validation). `KeepToTimeBudget` measures them, and the last epoch's steps, and
fits the schedule to them.
"""

import dataclasses
import math
import time

import keras
import numpy as np
from absl import logging

from defect_aux_net.training.one_cycle import MIN_TOTAL_STEPS, OneCycleSchedule
from defect_aux_net.training.run_files import write_config


# `fit` is given this many times the planned epochs, the most a keeper can lengthen
# them to: the warm-up's step time can be above the epochs' (SegDecNet on a KolektorSDD
# fold: 68 s an epoch planned, 56 s taken, so 25 epochs ended 4.5 minutes early).
GROWTH = 1.5


def most_epochs(epochs: int) -> int:
    """The epochs to give `fit` for `epochs` planned under a `KeepToTimeBudget`."""
    return math.ceil(epochs * GROWTH)


class EpochProgress(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, its epoch count read at each epoch's start: a keeper changes
    it (Keras' reads `fit`'s at the start only)."""

    def set_params(self, params):
        super().set_params(params)
        self.params = params  # Keras' keeps only what it reads now.

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs = self.params["epochs"]
        super().on_epoch_begin(epoch, logs)


class KeepToTimeBudget(keras.callbacks.Callback):
    """Fits the one-cycle schedule to the epochs that end by the deadline at their real pace.

    After each epoch from the second on, the median wall time of the last `PACE_EPOCHS`
    epochs, each from the end of the one before (so the first, which compiles the step,
    has none), projects the end of the scheduled epochs. When that is further from
    `deadline` than an epoch and than `PACE_TOLERANCE` of the time left, the epochs
    become those that end by it (never more than `fit` was given: `most_epochs` of the
    planned `epochs`, so that epochs faster than the warm-up's estimate add epochs),
    the schedule's `total_steps` follows (so the rate still anneals to its end) and
    training stops there. The last epoch's steps are watched too, as no later epoch is
    left to drop (a run of one or two epochs has no other check): when the steps left at
    this epoch's pace (its first step, which may compile, left out), then its
    validation, would end more than `LATE_STEPS` steps past `deadline`, the epoch stops
    at the step that ends in time and the schedule's total follows. A time budget fills
    its epochs to the end (`time_budget.epochs_for_budget`), so any step slower than the
    warm-up's would otherwise make the run late. The schedule must hold its total in a
    variable (`OneCycleSchedule.hold_total_steps_in_variable`): the compiled step then
    follows without being traced again, which cost a minute per re-fit on KolektorSDD.
    It may re-fit after any epoch or step, as the pace settles.

    Args:
      schedule: the run's `OneCycleSchedule` (changed in place).
      epochs: the planned epochs, which `fit`'s callbacks are told at its start (its
        params); re-fits reach at most the epochs `fit` is given (`keeper_for_run`'s
        runs give it `most_epochs(epochs)`).
      steps_per_epoch: training steps per epoch.
      deadline: `clock()` value by which the epochs should end.
      validation_seconds: estimated seconds of the first validation (its graph's trace
        included); later ones are measured.
      on_refit: called with `(epochs, reason)` after each re-fit (e.g. to record it).
      clock: seconds, monotonic.
    """

    # Lateness within this many steps is left alone: the estimate is no finer.
    LATE_STEPS = 5
    # Steps of the last epoch timed before its pace is trusted.
    TIMED_STEPS = 10
    # Epochs whose median projects the end. The last ones: epochs slow down as a run goes
    # on (KolektorSDD, 30 minutes: 9.6 s in the first twenty, 10.4 s in the last), and
    # the pace of them all lags behind. Their median: one slow epoch (there, the second
    # took 13.6 s, the next ones 10 s) does not set the pace.
    PACE_EPOCHS = 10
    # Ends this share of the time left from the deadline are left alone: the pace of the
    # last epochs varies by a few percent from epoch to epoch (KolektorSDD: 9.3-9.6 s),
    # and re-fitting to each would move the learning rate to and fro.
    PACE_TOLERANCE = 0.03

    def __init__(
        self,
        schedule: OneCycleSchedule,
        epochs: int,
        steps_per_epoch: int,
        deadline: float,
        validation_seconds: float = 0.0,
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
        self.validation_seconds = validation_seconds
        self.on_refit = on_refit
        self.clock = clock
        self.epochs = epochs
        self.most = None  # The epochs `fit` was given: the most it can run.
        self.refits = 0
        self.last_step = None  # The last epoch's last step, once cut short.
        self._durations = []
        self._ended = None  # The clock at the last epoch's end.
        self._epoch = None
        self._paced_from = None  # (clock, batch) at this epoch's first step's end.
        self._validation_began = None

    def on_train_begin(self, logs=None):
        self.most = self.params["epochs"]
        self.epochs = min(self.epochs, self.most)
        # `fit`'s callbacks share one params dict: those that read the run's length from
        # it as they go (SegDecNet's loss balance, `EpochProgress`) follow the plan.
        self.params["epochs"] = self.epochs

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._paced_from = None

    def on_train_batch_end(self, batch, logs=None):
        if self.last_step is not None and batch >= self.last_step:
            self.model.stop_training = True
            return
        if self._epoch != self.epochs - 1:
            return
        now = self.clock()
        if self._paced_from is None:
            self._paced_from = (now, batch)
            return
        began, first = self._paced_from
        if batch - first < self.TIMED_STEPS:
            return
        step_seconds = (now - began) / (batch - first)
        last = self.steps_per_epoch - 1 if self.last_step is None else self.last_step
        left = last - batch
        late = now + left * step_seconds + self.validation_seconds - self.deadline
        if late > self.LATE_STEPS * step_seconds:
            self._cut(batch, left, step_seconds, late)

    def _cut(self, batch: int, left: int, step_seconds: float, late: float):
        more = max(left - math.ceil(late / step_seconds), 0)
        total = self._epoch * self.steps_per_epoch + batch + 1 + more
        if total < MIN_TOTAL_STEPS:
            return  # A cycle needs them; the run ends late rather than without one.
        self.last_step = batch + more
        self.schedule.total_steps = total
        reason = (
            f"steps took {step_seconds:.3f} s: the last epoch would end {late:.0f} s past "
            f"the budget; it stops after {self.last_step + 1} of its "
            f"{self.steps_per_epoch} steps"
        )
        logging.warning("Time budget: %s.", reason)
        self.refits += 1
        if self.on_refit is not None:
            self.on_refit(self.epochs, reason)
        if more == 0:
            self.model.stop_training = True

    def on_test_begin(self, logs=None):
        self._validation_began = self.clock()

    def on_test_end(self, logs=None):
        self.validation_seconds = self.clock() - self._validation_began

    def on_epoch_end(self, epoch, logs=None):
        now = self.clock()
        # From the last epoch's end, not this one's begin: the callbacks after this one at
        # an epoch's end and before it at the next one's begin (best model, curves, image
        # panel) take time too, about a second an epoch on KolektorSDD.
        if self._ended is not None:
            self._durations.append(now - self._ended)
        self._ended = now
        done = epoch + 1
        if done < self.epochs and self._durations:
            self._refit(done, now)
        if done >= self.epochs:
            self.model.stop_training = True

    def _refit(self, done: int, now: float):
        epoch_seconds = float(np.median(self._durations[-self.PACE_EPOCHS :]))
        left = self.deadline - now
        late = (self.epochs - done) * epoch_seconds - left
        tolerance = max(epoch_seconds, self.PACE_TOLERANCE * left)
        if abs(late) <= tolerance or (late < 0 and self.epochs == self.most):
            return
        epochs = min(done + max(int(left // epoch_seconds), 0), self.most)
        if epochs > done and epochs * self.steps_per_epoch < MIN_TOTAL_STEPS:
            epochs = done
        reason = (
            f"epochs took {epoch_seconds:.1f} s: {self.epochs} epochs would end "
            f"{abs(late):.0f} s {'past' if late > 0 else 'before'} the budget; {epochs} end "
            "within it"
        )
        logging.warning("Time budget: %s.", reason)
        self.refits += 1
        self.epochs = epochs
        self.params["epochs"] = epochs
        if epochs > done:
            self.schedule.total_steps = epochs * self.steps_per_epoch
        if self.on_refit is not None:
            self.on_refit(epochs, reason)


def keeper_for_run(
    experiment,
    class_names,
    steps_per_epoch: int,
    deadline: float,
    validation_seconds: float,
    schedule,
    config_path: str,
) -> KeepToTimeBudget:
    """A run's `KeepToTimeBudget`, for a `fit` given `most_epochs(experiment.epochs)`; a
    re-fit is written to its config.json, so that a rerun (resuming after a kill, or
    finding the run complete) has the epochs it trained.

    Args:
      experiment: the run's `ExperimentConfig`, its epochs chosen by the time budget
        (`recipe["epochs"]`).
      class_names: the dataset's, as config.json holds them.
      steps_per_epoch, deadline, validation_seconds, schedule: as `KeepToTimeBudget`
        takes them.
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
        schedule, experiment.epochs, steps_per_epoch, deadline, validation_seconds,
        on_refit=record,
    )
