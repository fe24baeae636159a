"""One training run: data, model, one-cycle Adam, callbacks, best model and export.

`launch.train` parses flags into an `ExperimentConfig` and calls `run_training`;
the pieces are here so notebooks can do the same without absl.
"""

import dataclasses
import math
import sys
import time
import warnings

import keras
import tensorflow as tf
from absl import logging

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.data import datasets, splits
from defect_aux_net.data.pipeline import InputOptions, distributed_dataset
from defect_aux_net.experiments import ExperimentConfig
from defect_aux_net.models.model_builders import build_model
from defect_aux_net.training.budget_keeper import most_epochs
from defect_aux_net.training.init_checkpoint import (
    check_init_checkpoint,
    check_outside,
    initialize_from_checkpoint,
)
from defect_aux_net.training.one_cycle import OneCycleSchedule
from defect_aux_net.training.optimizers import make_optimizer
from defect_aux_net.training.run_callbacks import run_callbacks
from defect_aux_net.training.run_completion import complete_run
from defect_aux_net.training.run_files import (
    COMPLETE,
    clear_model_dir,
    load_model,
    model_dir_paths,
    model_dir_state,
    write_config,
)
from defect_aux_net.training.strategies import (
    is_chief,
    supports_xla,
    worker_index_and_count,
)
from defect_aux_net.training.thresholds_file import read_thresholds

# Batches of training steps run per TPU call: host round trips dominate otherwise.
TPU_STEPS_PER_EXECUTION = 32
# Training steps at least between two backups of the training state (weights and the
# optimizer's moments: 141 MB for Defect-Aux-Net). A kill loses at most these steps and
# an epoch; one backup per epoch of a small dataset wrote 18.6 GB in a 30-minute run.
BACKUP_STEPS = 50


def steps_per_pass(experiment: ExperimentConfig, summary: datasets.SplitSummary) -> int:
    """Training steps of one pass over the split (or of the sampled epoch)."""
    examples = summary.num_examples
    if experiment.negative_sampling:
        if summary.defective == 0:
            raise ConfigError(
                "ExperimentConfig.negative_sampling",
                "ExperimentConfig.negative_sampling=True needs defective images, and "
                f"{experiment.dataset} {experiment.train_split_slice} has none.",
            )
        # Every defective image, each followed by a sampled defect-free one.
        examples = 2 * summary.defective
    steps = examples // experiment.batch_size
    if steps == 0:
        raise ConfigError(
            "ExperimentConfig.batch_size",
            f"ExperimentConfig.batch_size={experiment.batch_size} is larger than the "
            f"{examples} training examples of {experiment.dataset} "
            f"{experiment.train_split_slice}.",
        )
    return steps


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """The dataset side of a run, checked before anything trains.

    Attributes:
      experiment: the experiment with the model's classes set to the dataset's.
      builder: the prepared TFDS builder.
      class_names: the dataset's class names.
      pass_steps: training steps of one pass over the training split (`train_steps`
        are per epoch).
      deadline: `time.monotonic()` by which the epochs should end, where a time budget
        measured them in this process (`time_budget.fit_epochs_to_budget`); None
        otherwise (no budget, or a resumed run's stored epochs).
      validation_seconds: with `deadline`, the budget's estimate of the first
        validation, its graph's trace included (`budget_keeper.KeepToTimeBudget`).
    """

    experiment: ExperimentConfig
    builder: object
    class_names: tuple
    pass_steps: int
    deadline: float | None = None
    validation_seconds: float = 0.0

    @property
    def train_steps(self) -> int:
        """Training steps per epoch: `experiment.passes_per_epoch` passes."""
        return max(1, round(self.pass_steps * self.experiment.passes_per_epoch))


def training_input_options(experiment: ExperimentConfig) -> InputOptions:
    """How `experiment` reads its training split."""
    return InputOptions(
        experiment.batch_size,
        training=True,
        seed=experiment.seed,
        augment=experiment.augment,
        augmentation=experiment.augmentation,
        augmentation_weights=experiment.augmentation_weights,
        segmentation_label_fraction=experiment.segmentation_label_fraction,
        # Sampled epochs enough for every planned step (epochs may be more or less than a
        # pass); epochs a time budget's keeper adds read the first ones again.
        negative_sampling_epochs=(
            math.ceil(experiment.epochs * experiment.passes_per_epoch)
            if experiment.negative_sampling else 0
        ),
        distance_weights=experiment.distance_weights,
        cache=experiment.cache,
    )


def batch_norm_input_options(experiment: ExperimentConfig, strategy) -> InputOptions:
    """How the batch-norm pass after training reads the training split: one replica's
    batches, since each replica's batch norms normalised by those."""
    return dataclasses.replace(
        training_input_options(experiment),
        batch_size=max(1, experiment.batch_size // strategy.num_replicas_in_sync),
    )


def prepare_training_data(experiment: ExperimentConfig, data_dir: str | None) -> TrainingData:
    """Loads (or builds) the dataset and checks it suits the experiment.

    The returned experiment is resolved: the dataset's classes, and the splits that
    will be read (a stratified holdout of train where the dataset has no validation
    split, no test split where it has no test split; `splits.resolve_*`).

    Raises:
      ConfigError: naming the field to change (`ExperimentConfig.dataset`,
        `train_split`, `validation_split`, `test_split`, `batch_size`, or
        `DefectAuxNetConfig.tasks`).
    """
    builder = datasets.load_builder(experiment.dataset, data_dir)
    class_names = datasets.class_names(builder)
    splits.check_split(builder, experiment.train_split_slice, "ExperimentConfig.train_split")
    test_split = splits.resolve_test_split(builder, experiment.test_split)
    validation_split = splits.resolve_validation_split(
        builder, experiment.validation_split, experiment.train_split
    )
    experiment = dataclasses.replace(
        experiment.for_classes(class_names),
        validation_split=validation_split,
        test_split=test_split,
    )
    if experiment.init_checkpoint:
        check_init_checkpoint(experiment.model, experiment.init_checkpoint)
    summary = datasets.summarize_split(builder, experiment.train_split_slice)
    datasets.check_tasks(
        experiment.model.tasks, summary, experiment.dataset, experiment.train_split
    )
    return TrainingData(experiment, builder, class_names, steps_per_pass(experiment, summary))


def one_cycle_schedule(data: TrainingData) -> OneCycleSchedule:
    """The run's learning-rate schedule: one cycle over all its epochs.

    Raises:
      ConfigError: naming `ExperimentConfig.epochs` and `batch_size` when the run is
        too short for one cycle.
    """
    experiment, train_steps = data.experiment, data.train_steps
    total_steps = train_steps * experiment.epochs
    try:
        return OneCycleSchedule(experiment.learning_rate, total_steps)
    except ValueError as error:
        raise ConfigError(
            "ExperimentConfig.epochs",
            f"ExperimentConfig.epochs={experiment.epochs} x {train_steps} steps per epoch "
            f"(ExperimentConfig.batch_size={experiment.batch_size}) = {total_steps} steps "
            f"are too few for the one-cycle schedule: {error}",
        ) from error


def fit(model: keras.Model, train_data, **kwargs):
    """`model.fit(train_data, **kwargs)` without the warning that the input "ran out of data;
    interrupting training".

    Keras gives it at the end of the first validation pass over a split whose size tf.data
    cannot tell (a holdout of train, drawn by a filter), then counts its batches and reads
    them all in every epoch. Our training data repeat, so there it means nothing and would
    only alarm.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Your input ran out of data", UserWarning)
        return model.fit(train_data, **kwargs)


def run_training(
    data: TrainingData,
    schedule: OneCycleSchedule,
    model_dir: str,
    strategy: tf.distribute.Strategy,
    export: bool = True,
    jit_compile="auto",
    verbose=None,
    test_split: str | None = None,
    overwrite: bool = False,
    backup_steps: int = BACKUP_STEPS,
):
    """Trains on `data`, keeps the best model on validation loss (the last epoch's where
    the model's losses do not compare across epochs), exports and evaluates it.

    Resumable: a backup in `<model_dir>/backup` (`backup.BackupAndRestoreFromChief`,
    written at the end of an epoch every `backup_steps` steps at least, and when
    training ends) makes a killed or preempted run continue from its last backup when
    the same command runs again; it is kept until the run is complete, so a run killed
    after training goes straight on to thresholds, export and test metrics. A complete run
    (`<model_dir>/complete.json`, written last) is not trained again: its best model and
    thresholds are returned. A model_dir holding a run of another configuration is
    refused, unless `overwrite` (see `run_files.model_dir_state`).

    Args:
      data: the dataset and experiment from `prepare_training_data`.
      schedule: the learning rate over the run, from `one_cycle_schedule(data)`.
      model_dir: where the config, checkpoints, logs and export go (may be `gs://`).
      strategy: the distribution strategy to train under.
      export: whether to export the best model as a SavedModel.
      jit_compile: passed to `Model.compile`; True falls back to False, with a
        warning, where `strategy` cannot run XLA (`strategies.supports_xla`).
      verbose: `Model.fit` verbosity; None: a progress bar on a terminal, else a line per epoch.
      test_split: split evaluated with the best model into `metrics_<split>.json`, or None.
      overwrite: delete whatever `model_dir` holds and start afresh.
      backup_steps: training steps at least between two backups (1: every epoch).

    Returns:
      `(best_model, thresholds)`: the model with the lowest validation loss and its
      per-class thresholds chosen on the validation split (the chief's; other
      workers of a multi-worker run get `(None, None)`).

    Raises:
      ConfigError: naming `model_dir` and the differing fields, when `model_dir` holds
        a run of another configuration and `overwrite` is False.
    """
    paths = model_dir_paths(model_dir)
    experiment, builder, class_names = data.experiment, data.builder, data.class_names
    model_config = experiment.model
    train_steps = data.train_steps
    chief = is_chief()
    if model_dir_state(model_dir, experiment, class_names, overwrite) == COMPLETE:
        logging.info("%s holds this run, complete: nothing to train.", model_dir)
        if not chief:
            return None, None
        return load_model(paths["best"]), read_thresholds(model_dir, class_names)
    if overwrite and experiment.init_checkpoint:
        check_outside(experiment.init_checkpoint, model_dir)
    if chief:
        if overwrite:
            clear_model_dir(model_dir)
        write_config(experiment, class_names, paths["config"])

    is_tpu = isinstance(strategy, tf.distribute.TPUStrategy)
    train_data = distributed_dataset(
        strategy,
        builder,
        experiment.train_split_slice,
        model_config,
        training_input_options(experiment),
    )
    validation_data = distributed_dataset(
        strategy,
        builder,
        experiment.validation_split,
        model_config,
        InputOptions(experiment.batch_size, training=False, drop_remainder=is_tpu, cache=True),
    )

    if jit_compile is True and not supports_xla(strategy):
        logging.warning(
            "jit_compile=True is ignored: XLA cannot run a step "
            "replicated over CPU devices; training without XLA."
        )
        jit_compile = False
    keras.utils.set_random_seed(experiment.seed)
    # One process only: workers that re-fitted their schedules apart would part ways.
    keep_to_deadline = data.deadline is not None and worker_index_and_count()[1] == 1
    with strategy.scope():
        if keep_to_deadline:  # KeepToTimeBudget changes it without a new trace.
            schedule.hold_total_steps_in_variable()
        model = build_model(model_config)
        model.compile(
            optimizer=make_optimizer(experiment, schedule),
            jit_compile=jit_compile,
            steps_per_execution=TPU_STEPS_PER_EXECUTION if is_tpu else 1,
        )
        # Built here, the optimizer's variables exist before `fit` traces the step;
        # otherwise tf.function traces it twice (measured: 55 s instead of 31 s).
        model.optimizer.build(model.trainable_variables)
    if experiment.init_checkpoint:
        # A resumed run's backup, restored when `fit` starts, replaces these weights.
        transfer = initialize_from_checkpoint(model, experiment.init_checkpoint)
        logging.info("%s", transfer.summary(experiment.init_checkpoint))

    callbacks = run_callbacks(
        data, model_dir, schedule, backup_steps, keep_to_deadline=keep_to_deadline
    )
    if verbose is None:  # A progress bar on a terminal, a line per epoch in log files.
        verbose = 1 if sys.stdout.isatty() else 2
    fit(
        model,
        train_data,
        # Room for the keeper to add epochs; it tells the callbacks the planned ones.
        epochs=most_epochs(experiment.epochs) if keep_to_deadline else experiment.epochs,
        steps_per_epoch=train_steps,
        validation_data=validation_data,
        callbacks=callbacks,
        verbose=verbose,
    )
    if not chief:
        return None, None

    started = time.monotonic()
    best = load_model(paths["best"])
    logging.info("Best model loaded from %s in %.1f s", paths["best"], time.monotonic() - started)
    thresholds = complete_run(
        best, data, model_dir, batch_norm_input_options(experiment, strategy), export, test_split
    )
    return best, thresholds

