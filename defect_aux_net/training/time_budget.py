"""A time budget instead of an epoch count: epochs fitted to the step time measured here.

The one-cycle schedule needs its total steps before `fit` starts, so the step is
measured first: a short warm-up of the real compiled training step (same model, data,
strategy and XLA setting) on a throw-away copy of the model. Its first step holds the
tracing and compilation, which the run pays again; the later ones give the step time.
The epochs are what the budget leaves after the time already spent, the run's own
compilation, and an estimate of validation, the batch-norm pass (timed in the warm-up),
thresholds, export and test evaluation.

The warm-up cannot see everything an epoch costs: its input batches were prepared
while the first step compiled, and it writes no checkpoint. On 2 cores KolektorSDD's
epochs took 20 s against the 12.9 s estimated (its input pipeline takes about 0.27 s of
CPU per batch; the backup and the best model's checkpoint about 1 s each), and a 30-minute
budget took 46. So `budget_keeper.KeepToTimeBudget` watches the real epochs and, when they would end
past the deadline, re-fits the schedule to the epochs that fit.
"""

import dataclasses
import math
import re
import time

import keras
import numpy as np
from absl import logging

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.data import datasets
from defect_aux_net.data.pipeline import distributed_dataset
from defect_aux_net.models.model_builders import build_model
from defect_aux_net.training import auto_recipe
from defect_aux_net.training.auto_recipe import reuse_stored
from defect_aux_net.training.batch_norm_statistics import (
    batch_count,
    recompute_batch_norm_statistics,
    training_image_batches,
)
from defect_aux_net.training.one_cycle import MIN_TOTAL_STEPS, OneCycleSchedule
from defect_aux_net.training.optimizers import make_optimizer
from defect_aux_net.training.strategies import supports_xla
from defect_aux_net.training.training_run import (
    TrainingData,
    batch_norm_input_options,
    training_input_options,
)

# Timed steps after the first (compiling) one; their median is the step time.
WARMUP_STEPS = 5
# Batches of the batch-norm pass timed in the warm-up: the first holds its trace, the
# median of the other four is robust to one slow batch.
BATCH_NORM_TIMED_BATCHES = 5
# A forward pass takes about a third of a training step (the backward pass about two
# forward passes), per image: what validation, thresholds and test evaluation cost.
FORWARD_SHARE = 1 / 3
# Graphs traced after training starts besides the training step: validation, the
# reloaded best model's predictions (thresholds, then test), and the export's serving
# graph. Without gradients each is taken as half the training step's compilation.
LATER_TRACES = 4
TRACE_SHARE = 0.5

_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """Seconds of a duration such as `30m`, `1h`, `90s` or `1h30m`.

    Raises:
      ConfigError: naming `ExperimentConfig.time_budget`, which the seconds are for,
        when `text` is not such a duration or is zero.
    """
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text.strip())
    field = "ExperimentConfig.time_budget"
    if not parts or "".join(value + unit for value, unit in parts) != text.strip():
        raise ConfigError(
            field,
            f"{field}={text!r} is not a duration: give a number with a unit, e.g. 30m, "
            "1h, 90s or 1h30m.",
        )
    seconds = sum(float(value) * _UNITS[unit] for value, unit in parts)
    if seconds <= 0:
        raise ConfigError(field, f"{field}={text!r} must be longer than 0 seconds.")
    return seconds


@dataclasses.dataclass(frozen=True)
class StepTiming:
    """What the warm-up measured, in seconds.

    Attributes:
      compile_seconds: the first step's time beyond a step (tracing, XLA compilation,
        filling the input pipeline).
      step_seconds: the median of the later steps.
      setup_seconds: building the model and the input pipeline, before the first step.
      batch_norm_seconds: the batch-norm pass after training
        (`batch_norm_statistics`), all of it: its input pipeline, its trace, and
        its batches at the time of those timed.
    """

    compile_seconds: float
    step_seconds: float
    setup_seconds: float = 0.0
    batch_norm_seconds: float = 0.0


class _StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.durations, self._start = [], None

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.durations.append(time.perf_counter() - self._start)


def measure_step_time(data: TrainingData, strategy, jit_compile, steps: int = WARMUP_STEPS):
    """The `StepTiming` of `data`'s training step: a fresh model trained `steps + 1` steps."""
    started = time.perf_counter()
    experiment = data.experiment
    if jit_compile is True and not supports_xla(strategy):
        jit_compile = False  # As run_training does.
    train_data = distributed_dataset(
        strategy,
        data.builder,
        experiment.train_split_slice,
        experiment.model,
        training_input_options(experiment),
    )
    keras.utils.set_random_seed(experiment.seed)
    with strategy.scope():
        model = build_model(experiment.model)
        schedule = OneCycleSchedule(experiment.learning_rate, max(steps + 1, MIN_TOTAL_STEPS))
        model.compile(optimizer=make_optimizer(experiment, schedule), jit_compile=jit_compile)
        model.optimizer.build(model.trainable_variables)
    timer = _StepTimer()
    model.fit(train_data, epochs=1, steps_per_epoch=steps + 1, callbacks=[timer], verbose=0)
    step = float(np.median(timer.durations[1:]))
    setup = time.perf_counter() - started - sum(timer.durations)
    batch_norm = _time_batch_norm_pass(data, strategy) if experiment.batch_norm_images else 0.0
    return StepTiming(max(timer.durations[0] - step, 0.0), step, setup, batch_norm)


def _time_batch_norm_pass(data: TrainingData, strategy) -> float:
    """Seconds the batch-norm pass after training will take, from a pass over
    `BATCH_NORM_TIMED_BATCHES` batches: its first batch holds the trace, the others
    give the time per batch.

    On a model of its own, built outside `strategy` as the pass's model is loaded. The
    pass's cost is the model's, not a fixed share of its step: in training mode the
    two-stage detectors sample proposals in the forward pass, which took them 0.68 and
    0.81 of a training step per batch against 0.31 to 0.36 for the one-stage networks
    (`benchmarks/README.md`).
    """
    experiment = data.experiment
    model = build_model(experiment.model)
    options = batch_norm_input_options(experiment, strategy)
    stamps = [time.perf_counter()]

    def timed(image_batches):
        for images in image_batches:
            stamps.append(time.perf_counter())
            yield images

    image_batches = training_image_batches(
        data.builder, experiment.train_split_slice, experiment.model, options,
        BATCH_NORM_TIMED_BATCHES * options.batch_size,
    )
    if not recompute_batch_norm_statistics(model, timed(image_batches)):
        return 0.0  # No batch norm: the pass reads nothing.
    stamps.append(time.perf_counter())
    # From each batch's arrival to the next's: its forward pass and the next's input.
    durations = np.diff(stamps[1:])
    per_batch = float(np.median(durations[1:])) if len(durations) > 1 else durations[0]
    batches = batch_count(experiment.batch_norm_images, options.batch_size)
    logging.info(
        "Time budget: batch-norm pass timed: %.1f s to the first batch, %.1f s for it "
        "(tracing), then %.2f s per batch; %d batches", stamps[1] - stamps[0],
        durations[0], per_batch, batches,
    )
    return float(stamps[1] - stamps[0] + durations[0] + (batches - 1) * per_batch)


def epochs_for_budget(
    budget: float,
    elapsed: float,
    timing: StepTiming,
    pass_steps: int,
    batch_size: int,
    validation_examples: int,
    test_examples: int,
) -> tuple:
    """`(epochs, passes_per_epoch, reason)`: the training that ends within `budget`.

    Estimate, in seconds: the run builds its model and input pipeline again
    (`setup_seconds`), compiles its step again (`compile_seconds`) and `LATER_TRACES`
    inference graphs (`TRACE_SHARE` of that each); a pass is `pass_steps` steps, and
    each epoch ends with a forward pass (`FORWARD_SHARE` of a step, per image) over the
    validation split; after training, the batch-norm pass (`batch_norm_seconds`),
    then thresholds and test evaluation make one more forward pass over the validation
    and test splits.

    The epochs are the whole passes (each with its validation) that fit, at least one;
    the time left over is spread over their steps, so an epoch is a little more than a
    pass, or less than one when a pass does not fit. Whole passes alone left up to a
    pass unused: one of two affordable passes of Faster R-CNN on NEU-DET at 12 minutes
    (`benchmarks/README.md`). At least `MIN_TOTAL_STEPS` steps in all.
    """
    forward = _forward_seconds(timing, batch_size)
    after, later_traces = _after_epochs(timing, batch_size, validation_examples, test_examples)
    # The training step and validation are traced before the epochs' time is measured.
    traces = timing.setup_seconds + timing.compile_seconds * (1 + TRACE_SHARE) + later_traces
    validation = validation_examples * forward
    one_pass = pass_steps * timing.step_seconds + validation
    left = budget - elapsed - traces - after
    epochs = max(int(left // one_pass), 1)
    steps = int((left - epochs * validation) // (epochs * timing.step_seconds))
    fewest = math.ceil(MIN_TOTAL_STEPS / epochs)
    passes = max(steps, fewest) / pass_steps
    reason = (
        f"budget {budget:.0f} s: {elapsed:.0f} s spent before training, {traces:.0f} s of "
        f"set-up and compilation, {after:.0f} s of the batch-norm pass, thresholds and test "
        f"evaluation, then {one_pass:.1f} s per pass ({pass_steps} steps of "
        f"{timing.step_seconds:.3f} s measured, validation of {validation_examples} images): "
        f"{epochs} epoch(s) of {max(steps, fewest)} steps, {passes:.2f} passes each"
    )
    if steps < fewest:
        reason += f"; the budget is too short: {fewest * epochs} steps, the fewest possible"
        logging.warning("The time budget, %.0f s, is too short for this run: %s", budget, reason)
    return epochs, passes, reason


def fit_epochs_to_budget(
    data: TrainingData, strategy, jit_compile, started: float, stored: dict | None = None
) -> TrainingData:
    """`data` with `epochs` and `passes_per_epoch` fitted to `experiment.time_budget`
    (seconds since `started`).

    With the automatic recipe, the measured step time also decides two of its choices:
    an input too large for `recipes.MIN_EPOCHS` epochs is made smaller (and the step
    measured again), and with `lr_range_test` the learning rate comes from a range test
    when the budget has room for one (`auto_recipe.range_test_learning_rate`). Both cost
    time the epochs are then fitted to. The passes then decide the augmentation
    (`auto_recipe.augment_for_epochs`); the step was timed with it on, which cost the
    step no measurable time on NEU-DET (`benchmarks/README.md`).

    Args:
      data: the run's data; its experiment has a `time_budget`.
      strategy: the strategy the run trains under.
      jit_compile: as given to `run_training`.
      started: `time.monotonic()` when the run started (the budget counts from there).
      stored: the model_dir's config.json: a rerun of the same run keeps its epochs
        and passes (and its measured learning rate).
    """
    experiment = data.experiment
    fields = ("epochs", "passes_per_epoch")
    if "learning_rate" in (experiment.recipe or {}):
        fields += ("learning_rate",)
    if auto_recipe.recipe_chose(experiment, "augment"):
        fields += ("augment",)
    reused = reuse_stored(stored, experiment, data.class_names, fields)
    if reused is not None:
        logging.info(
            "Time budget: the run's stored %d epochs of %.2f passes (resuming).",
            reused.epochs, reused.passes_per_epoch,
        )
        return dataclasses.replace(data, experiment=reused)
    timing = _warm_up(data, strategy, jit_compile)
    epochs, passes, _ = _budget_epochs(data, timing, started)
    smaller = auto_recipe.rescale_for_epochs(data, epochs * passes)
    if smaller is not None:
        data = smaller
        timing = _warm_up(data, strategy, jit_compile)
    data = auto_recipe.range_test_learning_rate(
        data, jit_compile, timing, experiment.time_budget
    )
    epochs, passes, reason = _budget_epochs(data, timing, started)
    logging.info("Time budget: %d epochs of %.2f passes (%s)", epochs, passes, reason)
    choice = {
        "value": epochs,
        "reason": reason,
        "step_seconds": round(timing.step_seconds, 4),
        "compile_seconds": round(timing.compile_seconds, 1),
        "setup_seconds": round(timing.setup_seconds, 1),
        "batch_norm_seconds": round(timing.batch_norm_seconds, 1),
    }
    experiment = data.experiment
    length = {"value": passes, "reason": f"the time budget's: {epochs} epoch(s), see epochs"}
    experiment = dataclasses.replace(
        experiment,
        epochs=epochs,
        passes_per_epoch=passes,
        recipe=(experiment.recipe or {}) | {"epochs": choice, "passes_per_epoch": length},
    )
    data = auto_recipe.augment_for_epochs(dataclasses.replace(data, experiment=experiment))
    experiment = data.experiment
    validation, test = _split_sizes(data)
    deadline = training_deadline(
        experiment.time_budget, started, timing, experiment.batch_size, validation, test
    )
    forward = _forward_seconds(timing, experiment.batch_size)
    return dataclasses.replace(
        data,
        experiment=experiment,
        deadline=deadline,
        validation_seconds=validation * forward + timing.compile_seconds * TRACE_SHARE,
    )


def training_deadline(
    budget: float,
    started: float,
    timing: StepTiming,
    batch_size: int,
    validation_examples: int,
    test_examples: int,
) -> float:
    """When the epochs should end: `started + budget` less what follows them, estimated
    as `epochs_for_budget` does."""
    return started + budget - sum(
        _after_epochs(timing, batch_size, validation_examples, test_examples)
    )


def _after_epochs(timing: StepTiming, batch_size, validation_examples, test_examples):
    """`(evaluation, traces)`: seconds of what follows the epochs, the batch-norm pass,
    thresholds and test evaluation, and the graphs traced then (`LATER_TRACES` but
    validation's)."""
    forward = _forward_seconds(timing, batch_size)
    return (
        timing.batch_norm_seconds + (validation_examples + test_examples) * forward,
        timing.compile_seconds * (LATER_TRACES - 1) * TRACE_SHARE,
    )


def _forward_seconds(timing: StepTiming, batch_size: int) -> float:
    """Seconds of one image's forward pass (`FORWARD_SHARE` of its share of a step)."""
    return timing.step_seconds / batch_size * FORWARD_SHARE


def _warm_up(data: TrainingData, strategy, jit_compile) -> StepTiming:
    started = time.monotonic()
    timing = measure_step_time(data, strategy, jit_compile)
    logging.info(
        "Time budget: warm-up of %d steps in %.1f s: step %.3f s, compilation %.1f s, "
        "set-up %.1f s", WARMUP_STEPS + 1, time.monotonic() - started,
        timing.step_seconds, timing.compile_seconds, timing.setup_seconds,
    )
    return timing


def _split_sizes(data: TrainingData) -> tuple:
    """`(validation, test)` examples of `data`'s run (0 without a test split)."""
    experiment, builder = data.experiment, data.builder
    test_split = experiment.test_split
    return (
        datasets.summarize_split(builder, experiment.validation_split).num_examples,
        datasets.summarize_split(builder, test_split).num_examples if test_split else 0,
    )


def _budget_epochs(data: TrainingData, timing: StepTiming, started: float) -> tuple:
    experiment = data.experiment
    return epochs_for_budget(
        experiment.time_budget,
        time.monotonic() - started,
        timing,
        data.train_steps,
        experiment.batch_size,
        *_split_sizes(data),
    )
