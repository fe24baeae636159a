"""What a training run does after its last epoch: the batch-norm pass, the decision rules,
the export and the test metrics of the best model, then the mark that the run is complete.

Every step rewrites whole files from the best model alone, so a run killed in the middle
of them does them all again when its command runs again (`training_run.run_training`).
"""

import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from defect_aux_net.evaluation.model_evaluation import (
    choose_decision_rules,
    evaluate_model,
    write_evaluation,
)
from defect_aux_net.export.saved_model import export_saved_model
from defect_aux_net.training.batch_norm_statistics import recompute_and_save
from defect_aux_net.training.run_files import (
    model_dir_paths,
    next_export_dir,
    write_completion,
)
from defect_aux_net.training.thresholds_file import write_thresholds


def complete_run(
    best: keras.Model,
    data,
    model_dir: str,
    batch_norm_options,
    export: bool = True,
    test_split: str | None = None,
) -> np.ndarray:
    """Finishes the run in `model_dir` whose best model is `best`.

    In order: the batch-norm statistics recomputed on `experiment.batch_norm_images`
    training images (saved into best.keras; thresholds, metrics and export all read
    them), the per-class thresholds and the image rule chosen on the validation split
    (thresholds.json), a new SavedModel version (if `export`), the metrics of
    `test_split` (if given), complete.json, and the training backup deleted.

    Args:
      best: the best model, loaded from `<model_dir>/best.keras`.
      data: the run's `training_run.TrainingData`.
      model_dir: the run's folder.
      batch_norm_options: the `InputOptions` the batch-norm pass reads the training
        split with (`training_run.batch_norm_input_options`).
      export: whether to export the best model as a SavedModel.
      test_split: split evaluated into `metrics_<split>.json`, or None.

    Returns:
      The per-class thresholds.
    """
    paths = model_dir_paths(model_dir)
    experiment, builder, class_names = data.experiment, data.builder, data.class_names
    if experiment.batch_norm_images:
        # Run again after a kill, it writes the same: training-mode statistics ignore
        # the old ones.
        images = recompute_and_save(
            best, paths["best"], builder, experiment.train_split_slice,
            batch_norm_options, experiment.batch_norm_images,
        )
        if images:
            logging.info(
                "Batch-norm statistics of the best model recomputed on %d un-augmented "
                "images of %s, drawn as in training.", images, experiment.train_split_slice,
            )
        else:
            logging.info("The model has no batch norm: no statistics to recompute.")
    started = time.monotonic()
    rules = choose_decision_rules(
        best, builder, experiment.validation_split, min(experiment.batch_size, 32)
    )
    thresholds, image_rule = rules.thresholds, rules.image.rule
    logging.info(
        "Thresholds chosen in %.1f s. Per-image AP on %s by image score: %s. Image rule: %s",
        time.monotonic() - started,
        experiment.validation_split,
        ", ".join(f"{source} {ap:.4f}" for source, ap in rules.image.aps.items()),
        f"weights {image_rule.weights_by_source()}, threshold {image_rule.threshold:.4f}"
        if image_rule else f"none ({rules.image.reason}); the per-class thresholds decide",
    )
    write_thresholds(class_names, thresholds, paths["thresholds"], image_rule)
    outputs = {name: paths[name] for name in ("best", "thresholds", "history", "results", "logs")}
    if export:
        started = time.monotonic()
        # A new version each time: a rerun after a kill never rewrites one in use.
        outputs["export"] = export_saved_model(
            best, next_export_dir(paths["export"]), class_names, thresholds,
            image_rule=image_rule,
        )
        logging.info(
            "Exported the best model to %s in %.1f s", outputs["export"],
            time.monotonic() - started,
        )
    if test_split:
        started = time.monotonic()
        outputs["metrics"] = os.path.join(model_dir, f"metrics_{test_split}.json")
        write_evaluation(
            evaluate_model(
                best, builder, test_split, class_names, thresholds, image_rule=image_rule
            ),
            outputs["metrics"],
            thresholds_source=paths["thresholds"],
        )
        logging.info("Evaluated %s in %.1f s", test_split, time.monotonic() - started)
    write_completion(model_dir, outputs)
    # Deleted only now: the run is complete, nothing will resume from it.
    if tf.io.gfile.exists(paths["backup"]):
        tf.io.gfile.rmtree(paths["backup"])
    return thresholds
