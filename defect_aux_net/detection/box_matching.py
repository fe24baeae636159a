"""Detection targets: ground-truth boxes matched to anchors and encoded as deltas."""

from keras import ops
from keras.utils import bounding_boxes

# Class targets of anchors that match no box: background trains toward "no defect",
# ignored anchors (IoU between the two thresholds) get no classification loss.
BACKGROUND = -1
IGNORE = -2


def encode_detection_targets(
    boxes,
    classes,
    anchors,
    positive_iou: float = 0.5,
    negative_iou: float = 0.4,
    allow_low_quality_matches: bool = True,
):
    """Matches padded ground truth to anchors; usable inside `tf.data` and compiled code.

    An anchor is positive for the box it overlaps most when that IoU is at least
    `positive_iou`, background when its best IoU is below `negative_iou`, and
    ignored in between. With `allow_low_quality_matches`, each box also claims
    the anchor(s) it overlaps most even below `positive_iou`, so small or thin
    defects (scratches) always get a positive anchor.

    Args:
      boxes: float `[N, 4]` ground truth `ymin, xmin, ymax, xmax` in pixels of the
        model input; padding rows have `classes == -1`.
      classes: int `[N]` class index per box, -1 for padding.
      anchors: float `[A, 4]` anchors in the same pixel frame (`generate_anchors`).
      positive_iou: IoU from which an anchor is positive.
      negative_iou: IoU below which an anchor is background.
      allow_low_quality_matches: whether each box keeps its best anchor.

    Returns:
      `(box_targets, class_targets)`: float32 `[A, 4]` deltas
      `(dy/ha, dx/wa, log h/ha, log w/wa)` (zero for non-positives) and int32 `[A]`
      class index for positives, `BACKGROUND` or `IGNORE` otherwise.
    """
    boxes = ops.cast(boxes, "float32")
    anchors = ops.cast(anchors, "float32")
    classes = ops.cast(classes, "int32")
    valid = classes >= 0
    # [A, N]; padding boxes can never match.
    iou = bounding_boxes.compute_iou(anchors, boxes, bounding_box_format="yxyx")
    iou = ops.where(valid[None, :], iou, -1.0)
    best_box = ops.argmax(iou, axis=1)
    best_iou = ops.max(iou, axis=1)
    if allow_low_quality_matches:
        best_iou_per_box = ops.max(iou, axis=0)
        # Anchors that are the best match of some box (ties included), and which box.
        is_best_for_box = (iou == best_iou_per_box[None, :]) & (iou > 0.0)
        forced = ops.any(is_best_for_box, axis=1)
        forced_box = ops.argmax(ops.where(is_best_for_box, iou, -1.0), axis=1)
        best_box = ops.where(forced, forced_box, best_box)
        positive = (best_iou >= positive_iou) | forced
    else:
        positive = best_iou >= positive_iou
    matched_boxes = ops.take(boxes, best_box, axis=0)
    matched_classes = ops.take(classes, best_box, axis=0)
    class_targets = ops.where(
        positive,
        matched_classes,
        ops.where(best_iou < negative_iou, BACKGROUND, IGNORE),
    )
    box_targets = bounding_boxes.encode_box_to_deltas(
        anchors, matched_boxes, anchor_format="yxyx", box_format="yxyx"
    )
    box_targets = ops.where(positive[:, None], box_targets, 0.0)
    return ops.cast(box_targets, "float32"), ops.cast(class_targets, "int32")
