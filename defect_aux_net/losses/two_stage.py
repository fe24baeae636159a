"""Faster R-CNN's losses: the RPN's and the box head's, on sampled anchors and RoIs.

RPN: binary cross-entropy of the objectness logits over the sampled anchors, and
smooth-L1 of the deltas over the sampled positives, both divided by the number of
sampled anchors (torchvision's normalisation). Box head: softmax cross-entropy over
the `K + 1` classes of the sampled RoIs, and smooth-L1 of the target class's deltas
over the foreground RoIs, both divided by the number of sampled RoIs. Each image's
terms are multiplied by its annotation flag (`has_boxes`), so images whose boxes are
unknown add nothing.
"""

from keras import ops


def smooth_l1(errors, delta: float):
    """Elementwise smooth-L1 with transition `delta`: `0.5 x^2 / delta` below it, `|x| - delta / 2` above."""
    errors = ops.abs(errors)
    return ops.where(errors < delta, 0.5 * errors**2 / delta, errors - 0.5 * delta)


def _normalised_sum(values, weights):
    """`sum(values * weights) / max(sum(weights), 1)`."""
    return ops.sum(values * weights) / ops.maximum(ops.sum(weights), 1.0)


def rpn_losses(objectness_logits, box_deltas, targets, image_weights, huber_delta: float):
    """`(objectness, box)` losses of the RPN.

    Args:
      objectness_logits: float `[B, A]`.
      box_deltas: float `[B, A, 4]` unweighted deltas.
      targets: `rpn_targets.assign_rpn_targets`' dict.
      image_weights: float `[B]` per-image flags.
      huber_delta: smooth-L1 transition.
    """
    logits = ops.cast(objectness_logits, "float32")
    image_weights = ops.cast(image_weights, "float32")[:, None]
    sampled = targets["objectness_weights"] * image_weights
    cross_entropy = ops.binary_crossentropy(
        targets["objectness_targets"], logits, from_logits=True
    )
    box_errors = ops.sum(
        smooth_l1(ops.cast(box_deltas, "float32") - targets["box_targets"], huber_delta), axis=-1
    )
    # The box term's denominator is the sampled anchors, not the positives.
    box = ops.sum(box_errors * targets["box_weights"] * image_weights) / ops.maximum(
        ops.sum(sampled), 1.0
    )
    return _normalised_sum(cross_entropy, sampled), box


def box_head_losses(class_logits, target_deltas, sample, image_weights, huber_delta: float):
    """`(classification, box)` losses of the box head.

    Args:
      class_logits: float `[B, S, K + 1]`, background first.
      target_deltas: float `[B, S, 4]`: each RoI's deltas of its target class
        (`roi_sampling.target_class_deltas`).
      sample: `roi_sampling.sample_rois`' dict.
      image_weights: float `[B]` per-image flags.
      huber_delta: smooth-L1 transition.
    """
    image_weights = ops.cast(image_weights, "float32")[:, None]
    sampled = sample["class_weights"] * image_weights
    cross_entropy = ops.sparse_categorical_crossentropy(
        sample["class_targets"], ops.cast(class_logits, "float32"), from_logits=True
    )
    box_errors = ops.sum(
        smooth_l1(ops.cast(target_deltas, "float32") - sample["box_targets"], huber_delta),
        axis=-1,
    )
    box = ops.sum(box_errors * sample["box_weights"] * image_weights) / ops.maximum(
        ops.sum(sampled), 1.0
    )
    return _normalised_sum(cross_entropy, sampled), box
