"""Detection outputs to final boxes: delta decoding (`decode_detections`), then one
selection (`select_detections`: top-k, score threshold, per-class NMS, padding)."""

import tensorflow as tf
from keras.utils import bounding_boxes


def decode_detections(
    box_regression,
    box_classification,
    anchors,
    image_size: tuple,
    max_detections: int = 100,
    score_threshold: float = 0.05,
    iou_threshold: float = 0.5,
    pre_nms_top_k: int = 1000,
):
    """Turns per-anchor outputs into at most `max_detections` boxes per image.

    NMS uses `tf.image.combined_non_max_suppression` (Keras core has no NMS op),
    so this runs in `tf.data`, eager code and exported serving graphs; it is not
    meant for the XLA-compiled training step. Output shapes are static: results
    are padded to `max_detections` and `num_detections` says how many are real.

    Args:
      box_regression: float `[B, A, 4]` predicted deltas.
      box_classification: float `[B, A, K]` class logits.
      anchors: float `[A, 4]` anchors (`generate_anchors`), `ymin, xmin, ymax, xmax`.
      image_size: `(height, width)` of the model input; boxes are clipped to it.
      max_detections: boxes kept per image.
      score_threshold: minimum sigmoid score.
      iou_threshold: NMS overlap threshold, per class.
      pre_nms_top_k: anchors with the highest scores that enter NMS.

    Returns:
      dict with `boxes` float32 `[B, max_detections, 4]` (`ymin, xmin, ymax, xmax`
      pixels), `scores` `[B, max_detections]`, `classes` int32 `[B, max_detections]`
      and `num_detections` int32 `[B]`.
    """
    box_regression = tf.cast(box_regression, tf.float32)
    scores = tf.sigmoid(tf.cast(box_classification, tf.float32))
    boxes = bounding_boxes.decode_deltas_to_boxes(
        tf.cast(anchors, tf.float32),
        box_regression,
        anchor_format="yxyx",
        box_format="yxyx",
    )
    height, width = image_size
    boxes = tf.clip_by_value(boxes, 0.0, [height, width, height, width])
    return select_detections(
        boxes,
        scores,
        max_detections=max_detections,
        score_threshold=score_threshold,
        iou_threshold=iou_threshold,
        pre_nms_top_k=pre_nms_top_k,
    )


def select_detections(
    boxes,
    class_scores,
    max_detections: int = 100,
    score_threshold: float = 0.05,
    iou_threshold: float = 0.5,
    pre_nms_top_k: int = 1000,
):
    """Keeps the best boxes of decoded candidates: top-k, per-class NMS, padding.

    The one selection of every detector: `decode_detections` feeds it the boxes it
    decoded on anchors; a two-stage detector feeds it the boxes its box head decoded.

    Args:
      boxes: float `[B, N, 4]` candidate boxes shared by every class, or
        `[B, N, K, 4]` one box per class (class-specific regression), `ymin, xmin,
        ymax, xmax` pixels, already clipped to the image.
      class_scores: float `[B, N, K]` per-class probabilities (no background).
      max_detections: boxes kept per image.
      score_threshold: minimum score.
      iou_threshold: NMS overlap threshold, per class.
      pre_nms_top_k: candidates with the highest scores that enter NMS.

    Returns:
      dict as `decode_detections`.
    """
    boxes = tf.cast(boxes, tf.float32)
    scores = tf.cast(class_scores, tf.float32)
    num_candidates = scores.shape[1]
    if num_candidates is None:  # Traced graphs (exports) may lose the static count.
        num_candidates = tf.shape(scores)[1]
    top_k = tf.minimum(pre_nms_top_k, num_candidates)
    _, top_indices = tf.math.top_k(tf.reduce_max(scores, axis=-1), k=top_k)
    boxes = tf.gather(boxes, top_indices, batch_dims=1)
    scores = tf.gather(scores, top_indices, batch_dims=1)
    if boxes.shape.rank == 3:  # One box for every class.
        boxes = boxes[:, :, None, :]

    nmsed = tf.image.combined_non_max_suppression(
        boxes,
        scores,
        max_output_size_per_class=max_detections,
        max_total_size=max_detections,
        iou_threshold=iou_threshold,
        score_threshold=score_threshold,
        clip_boxes=False,
    )
    return {
        "boxes": nmsed.nmsed_boxes,
        "scores": nmsed.nmsed_scores,
        "classes": tf.cast(nmsed.nmsed_classes, tf.int32),
        "num_detections": nmsed.valid_detections,
    }
