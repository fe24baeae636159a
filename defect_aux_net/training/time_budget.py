"""A time budget instead of an epoch count: epochs fitted to the step time measured here.

The one-cycle schedule needs its total steps before `fit` starts, so the step is
measured first (`warm_up`): a short warm-up of the real compiled training step (same
model, data, strategy and XLA setting) on a throw-away copy of the model. Its first step
holds the tracing and compilation, which the run pays again; the later ones give the step
time. The batch-norm pass and a prediction pass are timed the same way. The epochs are what
the budget leaves after the time already spent, the run's own compilation, validation,
the batch-norm pass, thresholds, export and test evaluation.

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

from absl import logging

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.data import datasets
from defect_aux_net.recipes import recipe_chose
from defect_aux_net.training import auto_recipe
from defect_aux_net.training.auto_recipe import reuse_stored
from defect_aux_net.training.one_cycle import MIN_TOTAL_STEPS
from defect_aux_net.training.training_run import TrainingData
from defect_aux_net.training.warm_up import WARMUP_STEPS, StepTiming, measure_step_time
from defect_aux_net.training.weight_average import average_for_steps

# Graphs a prediction pass traces: one for its full batches and one for its last, smaller
# batch. Validation, thresholds and test evaluation make such a pass.
PASS_TRACES = 2

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


def epochs_for_budget(
    budget: float,
    elapsed: float,
    timing: StepTiming,
    pass_steps: int,
    validation_examples: int,
    test_examples: int,
) -> tuple:
    """`(epochs, passes_per_epoch, reason)`: the training that ends within `budget`.

    Estimate, in seconds, from the warm-up's `timing`: the run builds its model and input
    pipeline again (`setup_seconds`) and compiles its step again (`compile_seconds`); a
    pass is `pass_steps` steps, and each epoch ends with a prediction pass over the
    validation split (`image_seconds` an image); after training, the best model's load
    (`load_seconds`), the batch-norm pass (`batch_norm_seconds`), then thresholds and
    test evaluation make one more prediction pass over the validation and test splits,
    and the run exports (`export_seconds`).
    Each prediction pass traces `PASS_TRACES` graphs (`trace_seconds` each).

    The epochs are the whole passes (each with its validation) that fit, at least one;
    the time left over is spread over their steps, so an epoch is a little more than a
    pass, or less than one when a pass does not fit. Whole passes alone left up to a
    pass unused: one of two affordable passes of Faster R-CNN on NEU-DET at 12 minutes
    (`benchmarks/README.md`). At least `MIN_TOTAL_STEPS` steps in all.
    """
    after, later_traces = _after_epochs(timing, validation_examples, test_examples)
    # The training step and validation are traced before the epochs' time is measured.
    traces = (
        timing.setup_seconds + timing.compile_seconds + PASS_TRACES * timing.trace_seconds
        + later_traces
    )
    validation = validation_examples * timing.image_seconds
    one_pass = pass_steps * timing.step_seconds + validation
    left = budget - elapsed - traces - after
    epochs = max(int(left // one_pass), 1)
    steps = int((left - epochs * validation) // (epochs * timing.step_seconds))
    fewest = math.ceil(MIN_TOTAL_STEPS / epochs)
    passes = max(steps, fewest) / pass_steps
    reason = (
        f"budget {budget:.0f} s: {elapsed:.0f} s spent before training, {traces:.0f} s of "
        f"set-up and compilation, {after:.0f} s of the best model's load, the batch-norm "
        f"pass, thresholds, test evaluation and export, then {one_pass:.1f} s per pass "
        f"({pass_steps} steps of {timing.step_seconds:.3f} s measured, validation of "
        f"{validation_examples} images): "
        f"{epochs} epoch(s) of {max(steps, fewest)} steps, {passes:.2f} passes each"
    )
    if steps < fewest:
        reason += f"; the budget is too short: {fewest * epochs} steps, the fewest possible"
        logging.warning("The time budget, %.0f s, is too short for this run: %s", budget, reason)
    return epochs, passes, reason


def fit_epochs_to_budget(
    data: TrainingData,
    strategy,
    jit_compile,
    started: float,
    stored: dict | None = None,
    export: bool = False,
) -> TrainingData:
    """`data` with `epochs` and `passes_per_epoch` fitted to `experiment.time_budget`
    (seconds since `started`).

    With the automatic recipe, the measured step time also decides two of its choices:
    an input too large for `recipes.MIN_EPOCHS` epochs is made smaller (and the step
    measured again), and with `lr_range_test` the learning rate comes from a range test
    when the budget has room for one (`auto_recipe.range_test_learning_rate`). Both cost
    time the epochs are then fitted to. The passes then decide the augmentation
    (`auto_recipe.augment_for_epochs`); the step was timed with it on, which cost the
    step no measurable time on NEU-DET (`benchmarks/README.md`). The planned steps then
    decide the span of the averaged weights (`weight_average.average_for_steps`).

    Args:
      data: the run's data; its experiment has a `time_budget`.
      strategy: the strategy the run trains under.
      jit_compile: as given to `run_training`.
      started: `time.monotonic()` when the run started (the budget counts from there).
      stored: the model_dir's config.json: a rerun of the same run keeps its epochs
        and passes (and its measured learning rate).
      export: whether the run exports a SavedModel after training (timed in the
        warm-up).
    """
    experiment = data.experiment
    fields = ("epochs", "passes_per_epoch")
    if "learning_rate" in (experiment.recipe or {}):
        fields += ("learning_rate",)
    for field in ("augment", "ema_momentum"):
        if recipe_chose(experiment, field):
            fields += (field,)
    reused = reuse_stored(stored, experiment, data.class_names, fields)
    if reused is not None:
        logging.info(
            "Time budget: the run's stored %d epochs of %.2f passes (resuming).",
            reused.epochs, reused.passes_per_epoch,
        )
        return dataclasses.replace(data, experiment=reused)
    timing = _warm_up(data, strategy, jit_compile, export)
    epochs, passes, _ = _budget_epochs(data, timing, started)
    smaller = auto_recipe.rescale_for_epochs(data, epochs * passes)
    if smaller is not None:
        data = smaller
        timing = _warm_up(data, strategy, jit_compile, export)
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
        "image_seconds": round(timing.image_seconds, 4),
        "trace_seconds": round(timing.trace_seconds, 1),
        "export_seconds": round(timing.export_seconds, 1),
        "load_seconds": round(timing.load_seconds, 1),
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
    if recipe_chose(data.experiment, "ema_momentum"):
        data = average_for_steps(data)
    experiment = data.experiment
    validation, test = _split_sizes(data)
    deadline = training_deadline(experiment.time_budget, started, timing, validation, test)
    return dataclasses.replace(
        data,
        experiment=experiment,
        deadline=deadline,
        validation_seconds=validation * timing.image_seconds + PASS_TRACES * timing.trace_seconds,
    )


def training_deadline(
    budget: float,
    started: float,
    timing: StepTiming,
    validation_examples: int,
    test_examples: int,
) -> float:
    """When the epochs should end: `started + budget` less what follows them, estimated
    as `epochs_for_budget` does."""
    return started + budget - sum(_after_epochs(timing, validation_examples, test_examples))


def _after_epochs(timing: StepTiming, validation_examples, test_examples):
    """`(evaluation, traces)`: seconds of what follows the epochs, the best model's load,
    the batch-norm pass, thresholds, test evaluation and export, and the graphs thresholds
    and test trace."""
    passes = 2 if test_examples else 1
    return (
        timing.load_seconds + timing.batch_norm_seconds
        + (validation_examples + test_examples) * timing.image_seconds + timing.export_seconds,
        passes * PASS_TRACES * timing.trace_seconds,
    )


def _warm_up(data: TrainingData, strategy, jit_compile, export: bool) -> StepTiming:
    started = time.monotonic()
    timing = measure_step_time(data, strategy, jit_compile, export=export)
    logging.info(
        "Time budget: warm-up of %d steps in %.1f s: step %.3f s, compilation %.1f s, "
        "set-up %.1f s; prediction %.3f s an image, its trace %.1f s",
        WARMUP_STEPS + 1, time.monotonic() - started, timing.step_seconds,
        timing.compile_seconds, timing.setup_seconds, timing.image_seconds,
        timing.trace_seconds,
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
        *_split_sizes(data),
    )
