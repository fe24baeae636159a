"""The anchor part of the default recipe: anchor shapes, top level and positive IoU.

`recipes.choose_recipe` calls these with its recipe (an experiment being changed field
by field); they read the survey's boxes at the model input's size and match them with
the input pipeline's own `encode_detection_targets`, so the coverage they report is what
training will see.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from defect_aux_net.data.dataset_survey import DatasetSurvey
from defect_aux_net.detection.anchors import anchors_for_config
from defect_aux_net.detection.box_matching import encode_detection_targets

# Anchor width/height ratios to choose from, and the share of boxes that earns one.
ANCHOR_RATIOS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
RATIO_SHARE = 0.05
ANCHOR_SIZES = (1.0, 1.5, 2.0, 3.0, 4.0)
# Positive-anchor IoU: RetinaNet's 0.5 when it gives this share of boxes a positive
# anchor, else 0.4 (small and thin defects rarely overlap a grid anchor by half).
COVERAGE_TARGET = 0.9
POSITIVE_IOUS = (0.5, 0.4)
# Images whose boxes the coverage check matches (evenly spread over the split).
COVERAGE_IMAGES = 200


def _input_box_sides(recipe, survey: DatasetSurvey) -> np.ndarray:
    """`[M, 2]` (height, width) of every box in pixels of the model input."""
    height, width = recipe.value("model.input_shape")[:2]
    return (survey.boxes[:, 2:] - survey.boxes[:, :2]) * [height, width]


def top_level(recipe, survey: DatasetSurvey) -> int:
    """The coarsest level (5 to 7) whose largest anchor reaches the largest 5 % of the boxes."""
    largest = float(np.percentile(np.sqrt(_input_box_sides(recipe, survey).prod(axis=1)), 95))
    config = recipe.experiment.model
    octave = 2 ** ((config.anchor_scales_per_octave - 1) / config.anchor_scales_per_octave)
    for level in (5, 6, 7):
        if config.anchor_size * 2**level * octave >= largest:
            return level
    return 7


def anchor_coverage(survey: DatasetSurvey, model_config, positive_iou: float) -> float:
    """Share of the boxes that get a positive anchor at `positive_iou` (no forced matches).

    Matched by the pipeline's own `encode_detection_targets` on the anchors of
    `model_config`, with the box index as class: a box is covered when some anchor's
    best box is it and their IoU is at least `positive_iou`. Reads the boxes of up to
    `COVERAGE_IMAGES` images spread over the split.
    """
    images = np.unique(survey.box_images)
    images = images[np.linspace(0, len(images) - 1, min(len(images), COVERAGE_IMAGES)).astype(int)]
    most = max(int(np.sum(survey.box_images == image)) for image in images)
    height, width = model_config.input_shape[:2]
    padded = np.zeros((len(images), most, 4), np.float32)
    indices = np.full((len(images), most), -1, np.int32)
    for row, image in enumerate(images):
        boxes = survey.boxes[survey.box_images == image] * [height, width, height, width]
        padded[row, : len(boxes)] = boxes
        indices[row, : len(boxes)] = np.arange(len(boxes))
    anchors = tf.constant(anchors_for_config(model_config))

    def covered(boxes, box_indices):
        _, matched = encode_detection_targets(
            boxes, box_indices, anchors, positive_iou, positive_iou,
            allow_low_quality_matches=False,
        )
        hits = tf.reduce_any(matched[:, None] == tf.range(most)[None, :], axis=0)
        return tf.reduce_sum(tf.cast(hits & (box_indices >= 0), tf.int32))

    counts = tf.data.Dataset.from_tensor_slices((padded, indices)).map(
        covered, num_parallel_calls=tf.data.AUTOTUNE
    )
    return sum(int(count) for count in counts.as_numpy_iterator()) / int(np.sum(indices >= 0))


def _aspect_ratios(survey: DatasetSurvey, recipe) -> tuple:
    sides = _input_box_sides(recipe, survey)
    log_ratios = np.log2(np.maximum(sides[:, 1], 1e-3) / np.maximum(sides[:, 0], 1e-3))
    nearest = np.abs(log_ratios[:, None] - np.log2(ANCHOR_RATIOS)[None, :]).argmin(axis=1)
    shares = np.bincount(nearest, minlength=len(ANCHOR_RATIOS)) / len(nearest)
    return tuple(
        ratio for ratio, share in zip(ANCHOR_RATIOS, shares) if share >= RATIO_SHARE or ratio == 1
    )


def choose_anchor_shapes(recipe, survey: DatasetSurvey):
    ratios = _aspect_ratios(survey, recipe)
    recipe.choose(
        "model.anchor_aspect_ratios", ratios,
        f"width/height ratios nearest to at least {RATIO_SHARE:.0%} of the boxes, and 1",
    )
    config = recipe.experiment.model
    coverage = {}
    for size in ANCHOR_SIZES:
        candidate = dataclasses.replace(config, anchor_size=size)
        coverage[size] = anchor_coverage(survey, candidate, POSITIVE_IOUS[0])
    best = max(ANCHOR_SIZES, key=lambda size: (round(coverage[size], 2), -size))
    recipe.choose(
        "model.anchor_size", best,
        "the size (in strides) that gives the most boxes an anchor of IoU >= "
        f"{POSITIVE_IOUS[0]}: " + ", ".join(f"{s:g}: {c:.2f}" for s, c in coverage.items()),
    )


def choose_positive_iou(recipe, survey: DatasetSurvey):
    config = recipe.experiment.model
    at_iou = {iou: anchor_coverage(survey, config, iou) for iou in POSITIVE_IOUS}
    iou = next((iou for iou in POSITIVE_IOUS if at_iou[iou] >= COVERAGE_TARGET), POSITIVE_IOUS[-1])
    measured = ", ".join(f"{at_iou[i]:.0%} at IoU {i}" for i in POSITIVE_IOUS)
    recipe.choose(
        "model.positive_iou", iou,
        f"boxes with a positive anchor: {measured}; the highest IoU reaching "
        f"{COVERAGE_TARGET:.0%}, else {POSITIVE_IOUS[-1]} (each box also keeps its best "
        "anchor in training)",
    )
    recipe.choose(
        "model.negative_iou", round(recipe.value("model.positive_iou") - 0.1, 2),
        "0.1 below the positive IoU, as RetinaNet's 0.5/0.4",
    )
