"""The callbacks of a training run: backups, the NaN guard, the averaged weights, the best
model, early stopping, the time budget's keeper, and the chief's curves, logs and image
panel."""

import os

import keras
import tensorflow as tf

from defect_aux_net.data.pipeline import InputOptions, make_dataset
from defect_aux_net.experiments import ExperimentConfig
from defect_aux_net.models.model_builders import validation_loss_compares
from defect_aux_net.training.backup import BackupAndRestoreFromChief
from defect_aux_net.training.budget_keeper import EpochProgress, keeper_for_run
from defect_aux_net.training.callbacks import (
    ModelCheckpointWrittenWhole,
    PredictionImages,
    StopOnNaN,
    TrainingCurves,
)
from defect_aux_net.training.run_files import best_validation_loss, model_dir_paths
from defect_aux_net.training.strategies import is_chief, worker_index_and_count
from defect_aux_net.training.weight_average import ValidateOnAveragedWeights


def run_callbacks(
    data, model_dir: str, schedule, backup_steps: int, keep_to_deadline: bool = False
) -> list:
    """The callbacks `training_run.run_training` fits with.

    Args:
      data: the run's `training_run.TrainingData`.
      model_dir: the run's folder.
      schedule: the run's `OneCycleSchedule` (the keeper re-fits it).
      backup_steps: training steps at least between two backups.
      keep_to_deadline: whether to keep the epochs to `data.deadline`
        (`budget_keeper.KeepToTimeBudget`).
    """
    paths = model_dir_paths(model_dir)
    experiment, class_names = data.experiment, data.class_names
    chief = is_chief()
    # Every worker of a multi-worker run saves (the saves are collective); only the
    # chief's copies are kept, the others write where they do no harm.
    worker_paths = paths if chief else model_dir_paths(
        os.path.join(model_dir, "workers", str(worker_index_and_count()[0]))
    )
    callbacks = [
        # Every worker resumes from the chief's backup, the one StopOnNaN keeps. The
        # chief's stays until the run is complete; the others' are never read again.
        BackupAndRestoreFromChief(
            worker_paths["backup"], paths["backup"], backup_steps, delete_checkpoint=not chief
        ),
        StopOnNaN(paths["backup"]),
    ]
    if experiment.ema_momentum is not None:
        # After the backup, before everything that should see the averaged model.
        callbacks.append(ValidateOnAveragedWeights())
    callbacks += [
        best_model_checkpoint(
            worker_paths["best"], paths["history"], validation_loss_compares(experiment.model)
        ),
    ]
    callbacks += early_stopping(experiment)
    if keep_to_deadline:
        callbacks += [
            keeper_for_run(
                experiment, class_names, data.train_steps, data.deadline, data.validation_seconds,
                schedule, paths["config"],
            ),
            EpochProgress(),
        ]
    if chief:
        callbacks += [
            # Before CSVLogger: it adds the learning rate to the logs CSVLogger writes.
            TrainingCurves(paths["history"], paths["results"]),
            keras.callbacks.CSVLogger(paths["history"], append=True),
            keras.callbacks.TensorBoard(paths["logs"]),
            PredictionImages(paths["logs"], *validation_examples(data.builder, experiment)),
        ]
    return callbacks


def best_model_checkpoint(
    path: str, history_path: str, losses_compare: bool = True
) -> ModelCheckpointWrittenWhole:
    """Keeps the epoch of the lowest validation loss (below any in `history_path`, the
    run's earlier epochs) in `path`; the last epoch where the validation losses do not
    compare across epochs (`losses_compare` False: `model_builders.validation_loss_compares`)."""
    if not losses_compare:
        return ModelCheckpointWrittenWhole(path, monitor="val_loss", save_best_only=False)
    return ModelCheckpointWrittenWhole(
        path,
        monitor="val_loss",
        save_best_only=True,
        initial_value_threshold=best_validation_loss(history_path),
    )


def early_stopping(experiment: ExperimentConfig) -> list:
    """The early-stopping callback of `experiment`, if it has a patience.

    It restores nothing: best.keras holds the best epoch's model already.
    """
    if experiment.early_stopping_patience is None:
        return []
    return [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=experiment.early_stopping_patience
        )
    ]


def validation_examples(builder, experiment: ExperimentConfig, count: int = 4) -> tuple:
    """A few validation images and their ground truth for the TensorBoard image panel."""
    dataset = make_dataset(
        builder,
        experiment.validation_split,
        experiment.model,
        InputOptions(count, training=False, ground_truth=True),
    )
    images, ground_truth = next(iter(dataset))
    # The pipeline's boxes are in pixels; the image panel draws normalised ones.
    height, width = images.shape[1:3]
    boxes = ground_truth["boxes"] / tf.constant([height, width, height, width], tf.float32)
    return images, ground_truth["masks"], boxes, ground_truth["box_classes"]
