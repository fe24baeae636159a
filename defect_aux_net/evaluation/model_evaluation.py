"""Running a model over a split: predictions, decision rules and the papers' metrics."""

import dataclasses
import os
from typing import Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf

from defect_aux_net import atomic_writes
from defect_aux_net.data.pipeline import InputOptions, make_dataset
from defect_aux_net.evaluation.confusion_matrix import plot_confusion_matrix
from defect_aux_net.evaluation.evaluator import Evaluator
from defect_aux_net.evaluation.image_rule_choice import ImageRuleChoice, choose_image_rule
from defect_aux_net.evaluation.markdown_report import metrics_markdown
from defect_aux_net.evaluation.pr_plots import plot_pr_curves
from defect_aux_net.evaluation.precision_recall import best_f1_thresholds
from defect_aux_net.inference.postprocessing import (
    DEFAULT_THRESHOLD,
    ImageRule,
    decode_outputs,
    image_evidence,
)


def predict_batches(model, builder, split: str, batch_size: int) -> Iterator[tuple]:
    """Yields `(ground_truth, predictions)` numpy dicts per batch, as `Evaluator.update` takes.

    Predictions are `decode_outputs`' results, with boxes in pixels of the model input
    as the ground truth's.
    """
    config = model.config
    dataset = make_dataset(
        builder, split, config, InputOptions(batch_size, training=False, ground_truth=True)
    )
    anchors = model.anchors if "detection" in config.tasks else None

    def predict(images):
        # Not checked for NaN: metrics of a diverged model say so themselves.
        return decode_outputs(
            model(images, training=False), config, anchors, normalize_boxes=False,
            check_finite=False,
        )

    # One traced graph of the forward pass and the decoding (the last, smaller batch
    # traces once more): run eagerly, op by op, a pass over NEU-DET's 360 val images
    # took 1.7x to 2x as long, traces included (`benchmarks/README.md`). Not an export
    # run by its own runtime (`precision_comparison.ExportedModel`): numpy, untraceable.
    if isinstance(model, keras.Model):
        predict = tf.function(predict, reduce_retracing=True, autograph=False)
    for images, ground_truth in dataset:
        predictions = predict(images)
        yield (
            {name: value.numpy() for name, value in ground_truth.items()},
            {name: np.asarray(value) for name, value in predictions.items()},
        )


@dataclasses.dataclass(frozen=True)
class DecisionRules:
    """What decides `is_defective`, chosen on a validation split.

    Attributes:
      thresholds: float `[K]` per-class thresholds with the best F1 (0.5 each without a
        classifier).
      image: the `ImageRuleChoice` of the fused image score: its `rule` (None for the
        per-class rule) and the per-image AP of each score.
    """

    thresholds: np.ndarray
    image: ImageRuleChoice


def choose_decision_rules(model, builder, split: str, batch_size: int) -> DecisionRules:
    """The `DecisionRules` of `model` on `split`, from one pass over it."""
    labels, probabilities, evidence = [], [], []
    for ground_truth, predictions in predict_batches(model, builder, split, batch_size):
        labels.append(ground_truth["labels"])
        if "probabilities" in predictions:
            probabilities.append(predictions["probabilities"])
        evidence.append(image_evidence(predictions))
    labels = np.concatenate(labels)
    if probabilities:
        thresholds = best_f1_thresholds(labels, np.concatenate(probabilities))
    else:
        thresholds = np.full(model.config.num_classes, DEFAULT_THRESHOLD, np.float32)
    evidence = {
        source: np.concatenate([np.asarray(batch[source]) for batch in evidence])
        for source in evidence[0]
    }
    return DecisionRules(thresholds, choose_image_rule(labels.any(axis=1), evidence))


def evaluate_model(
    model,
    builder,
    split: str,
    class_names: Sequence[str],
    thresholds: Sequence[float] | None = None,
    batch_size: int = 16,
    image_rule: ImageRule | None = None,
) -> Evaluator:
    """Evaluates `model` on `split`; returns the filled `Evaluator` (`result()`, `pr_curves()`).

    `thresholds` and `image_rule` are the decision rules (`choose_decision_rules`).
    """
    evaluator = Evaluator(
        class_names, model.config.tasks, thresholds=thresholds, image_rule=image_rule
    )
    for ground_truth, predictions in predict_batches(model, builder, split, batch_size):
        evaluator.update(ground_truth, predictions)
    return evaluator


def write_evaluation(
    evaluator: Evaluator, output: str, thresholds_source: str | None = None
) -> dict:
    """Writes the metrics as JSON at `output`, a markdown table, PR curves and, when the
    model classifies, the image confusion matrix beside it.

    Each file is written whole (a kill leaves the previous one). The metrics include the
    classification thresholds and image rule used, and where they came from.

    Args:
      evaluator: a filled `Evaluator`.
      output: the JSON path (local or `gs://`).
      thresholds_source: the file the thresholds were read from; None when they are
        the default 0.5 each.

    Prints the table and the paths; returns the metrics dict.
    """
    result = evaluator.result() | {
        "thresholds": {
            "source": thresholds_source or f"default {DEFAULT_THRESHOLD} (no thresholds file)",
            "per_class": {
                name: {"threshold": value}
                for name, value in zip(evaluator.class_names, evaluator.thresholds)
            },
        }
    }
    if evaluator.image_rule is not None:
        result["thresholds"]["image_rule"] = evaluator.image_rule.weights_by_source() | {
            "threshold": evaluator.image_rule.threshold
        }
    stem = os.path.splitext(output)[0]
    atomic_writes.write_json(output, result)
    table = metrics_markdown(result)
    atomic_writes.write_text(f"{stem}.md", table)
    with atomic_writes.writing(f"{stem}_pr_curves.png") as partial:
        plot_pr_curves(evaluator.pr_curves(), partial)
    plots = f"PR curves: {stem}_pr_curves.png"
    if "classification" in result:
        with atomic_writes.writing(f"{stem}_confusion_matrix.png") as partial:
            plot_confusion_matrix(result["classification"]["confusion_matrix"], partial)
        plots += f"; confusion matrix: {stem}_confusion_matrix.png"
    print(table)
    print(f"Metrics: {output}, {stem}.md; {plots}")
    return result
