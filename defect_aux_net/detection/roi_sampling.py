"""Box-head training targets: RoIs matched to ground truth, sampled at a fixed count.

Faster R-CNN (Model Garden's `ROISampler`): the proposals and the ground-truth boxes
are the candidates; a candidate whose best IoU with a ground-truth box is at least
`foreground_iou` is foreground (target: that box's class and its deltas), one in
`[background_iou_low, background_iou_high)` is background; 512 per image are sampled
with at most 25 % foreground (`sampling.py`). Cascade R-CNN's later stages re-assign
the previous stage's refined boxes at IoU 0.6 and 0.7 without re-sampling
(`cascade_stage_targets`).

Classes: the box head scores `K + 1` classes, 0 being background and `k + 1` the
dataset's class `k` (the pipeline's classes are 0-based, -1 marking padding). Its box
branch predicts one set of deltas per dataset class, `[B, R, K, 4]`; the loss takes
the target class's set (`target_class_deltas`).

An image without ground truth (a defect-free surface) gives only background samples:
its candidates' best IoU counts as 0.

`tf.*` like the other two-stage pieces (`sampling.py`): the sample's seed is a tensor.
"""

import tensorflow as tf
from keras.utils import bounding_boxes

from defect_aux_net.detection.box_coding import BOX_HEAD_WEIGHTS, encode_boxes
from defect_aux_net.detection.sampling import balanced_sample_indices

# (foreground IoU, box delta weights) of the three Cascade R-CNN stages.
CASCADE_STAGES = (
    (0.5, (10.0, 10.0, 5.0, 5.0)),
    (0.6, (20.0, 20.0, 10.0, 10.0)),
    (0.7, (30.0, 30.0, 15.0, 15.0)),
)


def assign_roi_targets(
    rois,
    roi_valid,
    gt_boxes,
    gt_classes,
    foreground_iou: float = 0.5,
    background_iou_high: float = 0.5,
    background_iou_low: float = 0.0,
    box_weights=BOX_HEAD_WEIGHTS,
):
    """Class and box targets of every RoI, without sampling.

    Args:
      rois: float `[B, R, 4]` yxyx pixels.
      roi_valid: bool `[B, R]`, False on padding RoIs (never foreground or background).
      gt_boxes: float `[B, M, 4]` padded ground truth.
      gt_classes: int `[B, M]`, -1 in padding rows.
      foreground_iou: IoU from which a RoI is foreground.
      background_iou_high, background_iou_low: background IoU range `[low, high)`.
      box_weights: delta weights (`box_coding`).

    Returns:
      dict: `foreground`, `background` bool `[B, R]`; `class_targets` int32 `[B, R]`
      (0 background, `k + 1` foreground of class `k`); `box_targets` float32
      `[B, R, 4]` weighted deltas (zero off the foreground).
    """
    if not 0.0 <= background_iou_low < background_iou_high <= foreground_iou <= 1.0:
        raise ValueError(
            "RoI thresholds need 0 <= background_iou_low < background_iou_high <= "
            f"foreground_iou <= 1, got {background_iou_low}, {background_iou_high}, "
            f"{foreground_iou}."
        )
    rois = tf.cast(rois, tf.float32)
    gt_boxes = tf.cast(gt_boxes, tf.float32)
    gt_classes = tf.cast(gt_classes, tf.int32)
    iou = bounding_boxes.compute_iou(rois, gt_boxes, bounding_box_format="yxyx")
    iou = tf.where((gt_classes >= 0)[:, None, :], iou, 0.0)
    best_iou = tf.reduce_max(iou, axis=2)
    best = tf.argmax(iou, axis=2, output_type=tf.int32)
    roi_valid = tf.cast(roi_valid, tf.bool)
    foreground = roi_valid & (best_iou >= foreground_iou)
    background = roi_valid & (best_iou < background_iou_high) & (best_iou >= background_iou_low)
    matched_boxes = tf.gather(gt_boxes, best, batch_dims=1)
    class_targets = tf.where(foreground, tf.gather(gt_classes, best, batch_dims=1) + 1, 0)
    box_targets = tf.where(
        foreground[..., None], encode_boxes(matched_boxes, rois, box_weights), 0.0
    )
    return {
        "foreground": foreground,
        "background": background,
        "class_targets": class_targets,
        "box_targets": box_targets,
    }


def sample_rois(
    proposals,
    num_proposals,
    gt_boxes,
    gt_classes,
    seed,
    num_samples: int = 512,
    foreground_fraction: float = 0.25,
    foreground_iou: float = 0.5,
    background_iou_high: float = 0.5,
    background_iou_low: float = 0.0,
    box_weights=BOX_HEAD_WEIGHTS,
):
    """Samples the box head's training RoIs from the proposals and the ground truth.

    Args:
      proposals: float `[B, N, 4]` (`proposals.generate_proposals`).
      num_proposals: int `[B]` real proposals per image (the rest is padding).
      gt_boxes, gt_classes: padded ground truth (`assign_roi_targets`).
      seed: int `[2]` seed of the sample; change it every step.
      num_samples: RoIs per image.
      foreground_fraction: largest share of foreground RoIs.
      foreground_iou, background_iou_high, background_iou_low, box_weights: see
        `assign_roi_targets`.

    Returns:
      dict: `rois` float32 `[B, S, 4]` (zero in empty slots), `class_targets` int32
      `[B, S]`, `box_targets` float32 `[B, S, 4]`, `box_weights` float32 `[B, S]` (1 on
      foreground), `class_weights` float32 `[B, S]` (1 on every filled slot), with
      `S = num_samples`, foreground first.
    """
    proposals = tf.cast(proposals, tf.float32)
    gt_boxes = tf.cast(gt_boxes, tf.float32)
    num_candidates = int(proposals.shape[1])
    proposal_valid = tf.range(num_candidates)[None, :] < tf.cast(num_proposals, tf.int32)[:, None]
    # The ground truth joins the candidates so that early in training, when the
    # proposals are poor, the head still sees foreground.
    candidates = tf.concat([proposals, gt_boxes], axis=1)
    valid = tf.concat([proposal_valid, tf.cast(gt_classes, tf.int32) >= 0], axis=1)
    targets = assign_roi_targets(
        candidates, valid, gt_boxes, gt_classes, foreground_iou, background_iou_high,
        background_iou_low, box_weights,
    )
    indices, is_foreground, is_valid = balanced_sample_indices(
        targets["foreground"], targets["background"], num_samples, foreground_fraction, seed
    )
    is_foreground = tf.cast(is_foreground, tf.float32)
    is_valid_float = tf.cast(is_valid, tf.float32)
    return {
        "rois": tf.gather(candidates, indices, batch_dims=1) * is_valid_float[..., None],
        "class_targets": tf.gather(targets["class_targets"], indices, batch_dims=1)
        * tf.cast(is_valid, tf.int32),
        "box_targets": tf.gather(targets["box_targets"], indices, batch_dims=1)
        * is_foreground[..., None],
        "box_weights": is_foreground,
        "class_weights": is_valid_float,
    }


def cascade_stage_targets(rois, roi_valid, gt_boxes, gt_classes, stage: int):
    """Targets of Cascade R-CNN stage `stage` (0, 1, 2) for the previous stage's boxes.

    The stage's IoU is both the foreground and the background threshold (no ignored
    band) and its delta weights are those of `CASCADE_STAGES`; the RoIs are not
    re-sampled (Model Garden's `skip_subsampling` for the later stages).
    """
    if not 0 <= stage < len(CASCADE_STAGES):
        raise ValueError(f"Cascade stage must be 0 to {len(CASCADE_STAGES) - 1}, got {stage}.")
    iou, weights = CASCADE_STAGES[stage]
    return assign_roi_targets(
        rois, roi_valid, gt_boxes, gt_classes, foreground_iou=iou,
        background_iou_high=iou, box_weights=weights,
    )


def target_class_deltas(box_deltas, class_targets):
    """The deltas of each RoI's target class: `[B, R, K, 4]` -> `[B, R, 4]`.

    Background RoIs (class 0) get class 0's deltas; their box weight is 0.
    """
    return tf.gather(box_deltas, tf.maximum(class_targets - 1, 0), axis=2, batch_dims=2)
