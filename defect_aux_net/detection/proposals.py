"""Region proposals from the RPN's outputs, padded to a fixed count for XLA.

Per pyramid level: decode the deltas on the level's anchors, clip to the image, push
boxes with a side below `min_size` to the bottom of the ranking, keep the
`pre_nms_top_k` best, suppress overlaps at IoU `nms_iou` with
`tf.image.non_max_suppression_padded` (static output size; it compiles under XLA,
unlike `combined_non_max_suppression`), then keep the `num_proposals` best over all
levels (Model Garden's `MultilevelROIGenerator`). Images with fewer survivors get zero
boxes after their real ones; `num_proposals` per image says how many are real.

`tf.*` like `decoding.py`: NMS has no Keras op.
"""

import tensorflow as tf

from defect_aux_net.detection.box_coding import clip_boxes, decode_boxes

# Score of dropped candidates and padding: below every sigmoid score.
_DROPPED = -1.0


def _top_k_padded(scores, boxes, k: int):
    """The `k` best `(scores, boxes)` per image, padded with dropped entries if fewer."""
    available = scores.shape[1]
    scores, indices = tf.math.top_k(scores, k=min(k, available))
    boxes = tf.gather(boxes, indices, batch_dims=1)
    if available < k:
        scores = tf.pad(scores, [[0, 0], [0, k - available]], constant_values=_DROPPED)
        boxes = tf.pad(boxes, [[0, 0], [0, k - available], [0, 0]])
    return scores, boxes


def _level_candidates(logits, deltas, anchors, image_size, pre_nms_top_k, min_size):
    """The level's best `pre_nms_top_k` decoded, clipped boxes and their scores."""
    scores = tf.sigmoid(tf.cast(logits, tf.float32))
    boxes = clip_boxes(decode_boxes(deltas, anchors), image_size)
    heights = boxes[..., 2] - boxes[..., 0]
    widths = boxes[..., 3] - boxes[..., 1]
    scores = tf.where((heights < min_size) | (widths < min_size), _DROPPED, scores)
    return _top_k_padded(scores, boxes, pre_nms_top_k)


def generate_proposals(
    logits,
    deltas,
    anchors,
    image_size: tuple,
    pre_nms_top_k: int = 2000,
    num_proposals: int = 1000,
    nms_iou: float = 0.7,
    min_size: float = 0.0,
):
    """Turns per-level RPN outputs into a fixed number of proposals per image.

    Args:
      logits: per level, float `[B, A_l]` objectness logits.
      deltas: per level, float `[B, A_l, 4]` unweighted deltas (`box_coding`).
      anchors: per level, float `[A_l, 4]` anchors, yxyx pixels.
      image_size: `(height, width)` of the model input; boxes are clipped to it.
      pre_nms_top_k: best candidates per level entering NMS.
      num_proposals: proposals kept per image.
      nms_iou: NMS overlap threshold.
      min_size: boxes with a side below this (pixels, after clipping) are dropped.

    Returns:
      dict with `boxes` float32 `[B, num_proposals, 4]` (yxyx pixels, best first, zero
      after the real ones; no gradient flows into them, as in Model Garden), `scores`
      `[B, num_proposals]` (sigmoid, zero on padding) and `num_proposals` int32 `[B]`.
    """
    if not len(logits) == len(deltas) == len(anchors):
        raise ValueError(
            f"logits, deltas and anchors need one entry per level, got {len(logits)}, "
            f"{len(deltas)} and {len(anchors)}."
        )
    # No level has more candidates than its anchors: a smaller common count saves NMS work.
    top_k = min(pre_nms_top_k, max(int(level_anchors.shape[0]) for level_anchors in anchors))
    candidates = [
        _level_candidates(level_logits, level_deltas, level_anchors, image_size, top_k,
                          min_size)
        for level_logits, level_deltas, level_anchors in zip(logits, deltas, anchors)
    ]
    # NMS stays within a level; the levels are stacked on the batch axis (each padded
    # to `top_k`) so that one NMS loop serves them all: one loop per level made XLA
    # compilation several times slower.
    num_levels = len(candidates)
    scores = tf.concat([level_scores[:, None] for level_scores, _ in candidates], axis=1)
    boxes = tf.concat([level_boxes[:, None] for _, level_boxes in candidates], axis=1)
    scores = tf.reshape(scores, [-1, top_k])
    boxes = tf.reshape(boxes, [-1, top_k, 4])
    max_output = min(num_proposals, top_k)
    selected, num_valid = tf.image.non_max_suppression_padded(
        boxes, scores, max_output_size=max_output, iou_threshold=nms_iou,
        score_threshold=0.0, pad_to_max_output_size=True,
    )
    valid = tf.range(max_output)[None, :] < num_valid[:, None]
    scores = tf.where(valid, tf.gather(scores, selected, batch_dims=1), _DROPPED)
    boxes = tf.gather(boxes, selected, batch_dims=1)
    scores, boxes = _top_k_padded(
        tf.reshape(scores, [-1, num_levels * max_output]),
        tf.reshape(boxes, [-1, num_levels * max_output, 4]),
        num_proposals,
    )
    valid = scores > _DROPPED
    return {
        "boxes": tf.stop_gradient(tf.where(valid[..., None], boxes, 0.0)),
        "scores": tf.stop_gradient(tf.where(valid, scores, 0.0)),
        "num_proposals": tf.reduce_sum(tf.cast(valid, tf.int32), axis=1),
    }
