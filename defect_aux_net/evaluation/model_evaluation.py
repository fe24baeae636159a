"""Running a model over a split: predictions, per-class thresholds and the papers' metrics."""

import json
import os
from typing import Iterator, Sequence

import numpy as np
import tensorflow as tf

from defect_aux_net.data.pipeline import InputOptions, make_dataset
from defect_aux_net.detection.decoding import decode_detections
from defect_aux_net.evaluation.evaluator import Evaluator
from defect_aux_net.evaluation.markdown_report import metrics_markdown
from defect_aux_net.evaluation.pr_plots import plot_pr_curves
from defect_aux_net.evaluation.precision_recall import best_f1_thresholds


def predict_batches(model, builder, split: str, batch_size: int) -> Iterator[tuple]:
    """Yields `(ground_truth, predictions)` numpy dicts per batch, as `Evaluator.update` takes.

    Detections are decoded with NMS (pixel boxes of the model input).
    """
    config = model.config
    dataset = make_dataset(
        builder, split, config, InputOptions(batch_size, training=False, ground_truth=True)
    )
    anchors = tf.constant(model.anchors, tf.float32)
    for images, ground_truth in dataset:
        outputs = model(images, training=False)
        predictions = {
            name: outputs[name] for name in ("classification", "segmentation") if name in outputs
        }
        if "box_regression" in outputs:
            predictions |= decode_detections(
                outputs["box_regression"],
                outputs["box_classification"],
                anchors,
                config.input_shape[:2],
            )
        yield (
            {name: value.numpy() for name, value in ground_truth.items()},
            {name: np.asarray(value) for name, value in predictions.items()},
        )


def choose_thresholds(model, builder, split: str, batch_size: int) -> np.ndarray:
    """Per-class classification thresholds with the best F1 on `split` (0.5 without a classifier)."""
    if "classification" not in model.config.tasks:
        return np.full(model.config.num_classes, 0.5, np.float32)
    labels, probabilities = [], []
    for ground_truth, predictions in predict_batches(model, builder, split, batch_size):
        labels.append(ground_truth["labels"])
        probabilities.append(predictions["classification"])
    return best_f1_thresholds(np.concatenate(labels), np.concatenate(probabilities))


def evaluate_model(
    model,
    builder,
    split: str,
    class_names: Sequence[str],
    thresholds: Sequence[float] | None = None,
    batch_size: int = 16,
) -> Evaluator:
    """Evaluates `model` on `split`; returns the filled `Evaluator` (`result()`, `pr_curves()`)."""
    evaluator = Evaluator(class_names, model.config.tasks, thresholds=thresholds)
    for ground_truth, predictions in predict_batches(model, builder, split, batch_size):
        evaluator.update(ground_truth, predictions)
    return evaluator


def write_evaluation(evaluator: Evaluator, output: str) -> dict:
    """Writes the metrics as JSON at `output`, a markdown table and PR curves beside it.

    Prints the table and the paths; returns the metrics dict.
    """
    result = evaluator.result()
    stem = os.path.splitext(output)[0]
    tf.io.gfile.makedirs(os.path.dirname(output) or ".")
    with tf.io.gfile.GFile(output, "w") as file:
        json.dump(result, file, indent=2)
    table = metrics_markdown(result)
    with tf.io.gfile.GFile(f"{stem}.md", "w") as file:
        file.write(table)
    plot_pr_curves(evaluator.pr_curves(), f"{stem}_pr_curves.png")
    print(table)
    print(f"Metrics: {output}, {stem}.md; PR curves: {stem}_pr_curves.png")
    return result
