"""Region proposal network targets: anchors matched at IoU 0.7 / 0.3 and 256 sampled per image.

The matching is the project's one anchor matcher (`box_matching.encode_detection_targets`)
run class-agnostic: an anchor is positive at IoU >= 0.7 with some ground-truth box or
when it is a box's best anchor (so every box has one), negative below 0.3, ignored in
between. The loss then sees only a balanced random sample (`sampling.py`): at most half
positives, 256 in all, as in Faster R-CNN and Model Garden's `RpnAnchorLabeler`.

`tf.*` like the other two-stage pieces: the sample is drawn with a seed tensor, and the
targets are built in the TensorFlow training step or in `tf.data`.
"""

import tensorflow as tf

from defect_aux_net.detection.box_matching import BACKGROUND, encode_detection_targets
from defect_aux_net.detection.sampling import balanced_sample_mask


def assign_rpn_targets(
    boxes,
    classes,
    anchors,
    seed,
    positive_iou: float = 0.7,
    negative_iou: float = 0.3,
    num_samples: int = 256,
    positive_fraction: float = 0.5,
):
    """Objectness and box targets of every anchor, with the weights of the sampled ones.

    Args:
      boxes: float `[B, M, 4]` padded ground truth, `ymin, xmin, ymax, xmax` pixels.
      classes: int `[B, M]` class per box, -1 in padding rows (the pipeline's marker).
      anchors: float `[A, 4]` anchors in the same frame (`anchors.generate_anchors`).
      seed: int `[2]` seed of the sample (`sampling.random_keys`); change it every step.
      positive_iou: IoU from which an anchor is positive.
      negative_iou: IoU below which an anchor is negative.
      num_samples: anchors in each image's loss.
      positive_fraction: largest share of positives among them.

    Returns:
      dict of float32 tensors: `objectness_targets` `[B, A]` (1 positive, 0 otherwise),
      `objectness_weights` `[B, A]` (1 on the sampled anchors), `box_targets`
      `[B, A, 4]` deltas `(dy/ha, dx/wa, log h/ha, log w/wa)` (zero off positives) and
      `box_weights` `[B, A]` (1 on the sampled positives).
    """
    classes = tf.cast(classes, tf.int32)
    # Objectness is class-agnostic: every real box is class 0, padding stays -1.
    agnostic = tf.where(classes >= 0, 0, -1)
    anchors = tf.cast(anchors, tf.float32)

    def match(example):
        image_boxes, image_classes = example
        return encode_detection_targets(
            image_boxes, image_classes, anchors, positive_iou, negative_iou,
            allow_low_quality_matches=True,
        )

    # One image at a time: the matcher is written for one image (as `tf.data` calls
    # it), and `tf.map_fn` keeps static shapes under XLA.
    box_targets, class_targets = tf.map_fn(
        match,
        (tf.cast(boxes, tf.float32), agnostic),
        fn_output_signature=(tf.float32, tf.int32),
    )
    positive = class_targets >= 0
    # Ignored anchors (between the thresholds) are neither.
    negative = tf.equal(class_targets, BACKGROUND)
    sampled_positive, sampled_negative = balanced_sample_mask(
        positive, negative, num_samples, positive_fraction, seed
    )
    sampled_positive = tf.cast(sampled_positive, tf.float32)
    return {
        "objectness_targets": tf.cast(positive, tf.float32),
        "objectness_weights": sampled_positive + tf.cast(sampled_negative, tf.float32),
        "box_targets": box_targets,
        "box_weights": sampled_positive,
    }
