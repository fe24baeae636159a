"""The warm-up of a time-budgeted run: what a step, loading the best model, the batch-norm
pass, a prediction pass and the export cost on this machine, measured on throw-away
models before the run starts.

Each is the model's own cost, not a fixed share of its training step: in training mode
the two-stage detectors sample proposals in the forward pass (the batch-norm pass took
them 0.68 and 0.81 of a training step per batch against 0.31 to 0.36 for the one-stage
networks), and their inference decodes boxes per class after NMS; a Cascade R-CNN run's
work after training took 324 s against 153 s estimated from a third of a step per image
(`benchmarks/README.md`). The export traces a serving graph per signature and writes
them: 15 s for a NEU-DET run against the 1.5 s of one prediction trace.
"""

import dataclasses
import os
import tempfile
import time

import keras
import numpy as np
from absl import logging

from defect_aux_net.data.pipeline import distributed_dataset
from defect_aux_net.evaluation.model_evaluation import predict_batches
from defect_aux_net.export.saved_model import export_saved_model
from defect_aux_net.models.model_builders import build_model
from defect_aux_net.training.batch_norm_statistics import (
    batch_count,
    recompute_batch_norm_statistics,
    training_image_batches,
)
from defect_aux_net.training.one_cycle import MIN_TOTAL_STEPS, OneCycleSchedule
from defect_aux_net.training.optimizers import make_optimizer
from defect_aux_net.training.run_files import load_model
from defect_aux_net.training.strategies import supports_xla
from defect_aux_net.training.training_run import (
    TrainingData,
    batch_norm_input_options,
    training_input_options,
)

# Timed steps after the first (compiling) one; their median is the step time.
WARMUP_STEPS = 5
# Batches timed of the batch-norm and prediction passes: the first holds the pass's
# trace, the median of the other four is robust to one slow batch.
TIMED_BATCHES = 5


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
      image_seconds: one image's prediction (forward pass, decoding, reading it back),
        as validation, thresholds and test evaluation make them.
      trace_seconds: tracing and first running a prediction graph: validation,
        thresholds and test evaluation each trace one for their full batches and one
        for their last, smaller batch.
      export_seconds: the SavedModel export after training; 0 for a run that does not
        export.
      load_seconds: loading the best model's `.keras` file after training (1.4 to 1.7 s
        for Defect-Aux-Net, weights and optimizer state).
    """

    compile_seconds: float
    step_seconds: float
    setup_seconds: float = 0.0
    batch_norm_seconds: float = 0.0
    image_seconds: float = 0.0
    trace_seconds: float = 0.0
    export_seconds: float = 0.0
    load_seconds: float = 0.0


class _StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.durations, self._start = [], None

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.durations.append(time.perf_counter() - self._start)


def measure_step_time(
    data: TrainingData, strategy, jit_compile, steps: int = WARMUP_STEPS, export: bool = False
):
    """The `StepTiming` of `data`'s run: a fresh model trained `steps + 1` steps and
    loaded from a `.keras` file, then the batch-norm pass (where the run makes one) and a
    prediction pass, over `TIMED_BATCHES` batches each, then (with `export`) the export
    of that model."""
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
    # Loaded outside `strategy`, as the run's best model is for both passes.
    model, load = _time_load(model)
    batch_norm = 0.0
    if experiment.batch_norm_images:
        batch_norm = _time_batch_norm_pass(data, strategy, model)
    image, trace = _time_prediction_pass(data, model)
    export_seconds = _time_export(data, model) if export else 0.0
    return StepTiming(
        max(timer.durations[0] - step, 0.0), step, setup, batch_norm, image, trace,
        export_seconds, load,
    )


def _time_load(model) -> tuple:
    """`(loaded model, seconds)`: `model` saved whole as the best model is, then loaded
    as the run loads it after training (timed)."""
    with tempfile.TemporaryDirectory(
        prefix="warm_up_load_", ignore_cleanup_errors=True
    ) as folder:
        path = os.path.join(folder, "best.keras")
        model.save(path)
        started = time.perf_counter()
        loaded = load_model(path)
        seconds = time.perf_counter() - started
    logging.info("Time budget: loading the best model timed: %.1f s", seconds)
    return loaded, seconds


def _timed_batches(batches, stamps: list):
    """`batches`, appending to `stamps` the time each arrives."""
    for batch in batches:
        stamps.append(time.perf_counter())
        yield batch


def _time_batch_norm_pass(data: TrainingData, strategy, model) -> float:
    """Seconds the batch-norm pass after training will take, from a pass over
    `TIMED_BATCHES` batches."""
    experiment = data.experiment
    options = batch_norm_input_options(experiment, strategy)
    stamps = [time.perf_counter()]
    image_batches = training_image_batches(
        data.builder, experiment.train_split_slice, experiment.model, options,
        TIMED_BATCHES * options.batch_size,
    )
    if not recompute_batch_norm_statistics(model, _timed_batches(image_batches, stamps)).batches:
        return 0.0  # No batch norm: the pass reads nothing.
    stamps.append(time.perf_counter())
    # Each batch is read when it arrives: from one arrival to the next is its forward pass
    # and the next one's input. The first holds the trace.
    durations = np.diff(stamps[1:])
    per_batch = float(np.median(durations[1:])) if len(durations) > 1 else durations[0]
    batches = batch_count(experiment.batch_norm_images, options.batch_size)
    logging.info(
        "Time budget: batch-norm pass timed: %.1f s to the first batch, %.1f s for it "
        "(tracing), then %.2f s per batch; %d batches", stamps[1] - stamps[0],
        durations[0], per_batch, batches,
    )
    return float(stamps[1] - stamps[0] + durations[0] + (batches - 1) * per_batch)


def _time_prediction_pass(data: TrainingData, model) -> tuple:
    """`(image_seconds, trace_seconds)` of `predict_batches` over the validation split,
    in the batches the thresholds are chosen in."""
    experiment = data.experiment
    batch_size = min(experiment.batch_size, 32)
    stamps = [time.perf_counter()]
    batches = predict_batches(model, data.builder, experiment.validation_split, batch_size)
    for _ in zip(range(TIMED_BATCHES), _timed_batches(batches, stamps)):
        pass
    # A batch arrives predicted: from one arrival to the next is a batch's input and
    # prediction; the first arrival also holds the input pipeline's start and the trace.
    # A split of one batch cannot tell them apart: it all counts as a batch, none as trace.
    first = stamps[1] - stamps[0]
    per_batch = float(np.median(np.diff(stamps[1:]))) if len(stamps) > 2 else first
    logging.info(
        "Time budget: prediction pass timed: %.1f s to the first batch (tracing), then "
        "%.2f s per batch of %d", first, per_batch, batch_size,
    )
    return per_batch / batch_size, max(first - per_batch, 0.0)


def _time_export(data: TrainingData, model) -> float:
    """Seconds of `model`'s SavedModel export, into a temporary folder then deleted."""
    with tempfile.TemporaryDirectory(
        prefix="warm_up_export_", ignore_cleanup_errors=True
    ) as folder:
        started = time.perf_counter()
        export_saved_model(model, os.path.join(folder, "1"), data.class_names)
        seconds = time.perf_counter() - started
    logging.info("Time budget: export timed: %.1f s", seconds)
    return seconds
