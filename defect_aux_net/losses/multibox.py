"""SSD's MultiBox loss (Liu et al. 2016, eq. 1-3) with hard negative mining, static shapes."""

from keras import ops

from defect_aux_net.detection.box_matching import BACKGROUND


def hard_negative_mask(class_losses, positives, negatives, negative_ratio: float,
                       min_negatives: int = 0):
    """The negatives each image keeps: its `negative_ratio * num_positives` hardest.

    Negatives are ranked by their loss, highest first, with a sort over every default
    box of the image (a rank per box, not a top-k of a number of boxes that changes
    with the image), so the shapes stay static and the step compiles with XLA. A rank
    below `max(negative_ratio * num_positives, min_negatives)` is kept; equal losses
    are ranked in any order.

    Args:
      class_losses: float `[B, A]` classification loss of every default box.
      positives: bool `[B, A]`.
      negatives: bool `[B, A]` (background boxes).
      negative_ratio: negatives kept per positive (SSD: 3).
      min_negatives: negatives kept in an image with fewer positives than that needs.

    Returns:
      bool `[B, A]`, true at the kept negatives.
    """
    class_losses = ops.stop_gradient(ops.cast(class_losses, "float32"))
    num_positives = ops.sum(ops.cast(positives, "float32"), axis=1, keepdims=True)
    num_kept = ops.maximum(negative_ratio * num_positives, float(min_negatives))
    negative_losses = ops.where(negatives, class_losses, float("-inf"))
    # order[i] is the box of rank i; ranks[j], the rank of box j (the inverse permutation).
    order = ops.argsort(-negative_losses, axis=-1)
    ranks = ops.argsort(order, axis=-1)
    return negatives & (ops.cast(ranks, "float32") < num_kept)


def multibox_loss(
    box_targets,
    class_targets,
    box_regression,
    class_logits,
    example_weights,
    box_variances=(0.1, 0.1, 0.2, 0.2),
    negative_ratio: float = 3.0,
    min_negatives: int = 0,
    box_loss_weight: float = 1.0,
):
    """`(L_conf + alpha L_loc) / N` over the batch, N its positive default boxes (at least 1).

    L_conf is the softmax cross-entropy (background and K classes) of the positives
    and the hard negatives (`hard_negative_mask`); L_loc is the smooth L1 loss summed
    over the four deltas of the positives, on SSD's scale: the library's encoding
    divided by `box_variances`.

    Args:
      box_targets: float `[B, A, 4]` encoded deltas (`encode_detection_targets`).
      class_targets: int `[B, A]` class index, `BACKGROUND` or `IGNORE` (not trained).
      box_regression: float `[B, A, 4]` predicted deltas, the same encoding.
      class_logits: float `[B, A, K + 1]` softmax logits, background first.
      example_weights: float `[B]`, 0 for examples without box annotations.
      box_variances: SSD's variances.
      negative_ratio, min_negatives: of `hard_negative_mask`.
      box_loss_weight: SSD's alpha.

    Returns:
      Scalar float32 loss.
    """
    class_targets = ops.cast(class_targets, "int32")
    annotated = ops.cast(example_weights, "float32")[:, None] > 0
    positives = (class_targets >= 0) & annotated
    negatives = (class_targets == BACKGROUND) & annotated
    log_probabilities = ops.log_softmax(ops.cast(class_logits, "float32"), axis=-1)
    # Softmax index: background 0, class k at k + 1.
    target_index = ops.where(positives, class_targets + 1, 0)
    cross_entropy = -ops.take_along_axis(log_probabilities, target_index[..., None], axis=-1)[
        ..., 0
    ]
    kept = positives | hard_negative_mask(
        cross_entropy, positives, negatives, negative_ratio, min_negatives
    )
    class_loss = ops.sum(ops.where(kept, cross_entropy, 0.0))

    variances = ops.convert_to_tensor(box_variances, "float32")
    error = ops.abs(
        (ops.cast(box_regression, "float32") - ops.cast(box_targets, "float32")) / variances
    )
    smooth_l1 = ops.sum(ops.where(error < 1.0, 0.5 * error**2, error - 0.5), axis=-1)
    box_loss = ops.sum(ops.where(positives, smooth_l1, 0.0))

    num_positives = ops.sum(ops.cast(positives, "float32"))
    return (class_loss + box_loss_weight * box_loss) / ops.maximum(num_positives, 1.0)
