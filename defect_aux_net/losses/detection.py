"""Detection loss: focal classification loss plus Huber box loss over anchors."""

import keras
from keras import ops

from defect_aux_net.detection.box_matching import IGNORE


def detection_loss(
    box_targets,
    class_targets,
    box_regression,
    box_classification,
    example_weights,
    focal_alpha: float = 0.25,
    focal_gamma: float = 4.0,
    box_loss_weight: float = 50.0,
    huber_delta: float = 0.1,
):
    """RetinaNet loss, normalised by the number of positive anchors.

    `focal + box_loss_weight * box`, where `focal` (paper eq. 5) is summed over
    all classes of non-ignored anchors and `box` is the Huber loss of positive
    anchors averaged over the four coordinates. Both are divided by
    `num_positives + 1`, so images without defects train the background without
    dividing by zero.

    Args:
      box_targets: float `[B, A, 4]` encoded deltas (`encode_detection_targets`).
      class_targets: int `[B, A]` class index, `BACKGROUND` or `IGNORE`.
      box_regression: float `[B, A, 4]` predicted deltas.
      box_classification: float `[B, A, K]` class logits.
      example_weights: float `[B]`, 0 for examples without box annotations.
      focal_alpha, focal_gamma: focal loss parameters.
      box_loss_weight: weight of the box loss.
      huber_delta: Huber loss delta.

    Returns:
      Scalar float32 loss.
    """
    box_classification = ops.cast(box_classification, "float32")
    box_regression = ops.cast(box_regression, "float32")
    class_targets = ops.cast(class_targets, "int32")
    example_weights = ops.cast(example_weights, "float32")[:, None]
    num_classes = ops.shape(box_classification)[-1]

    positive = ops.cast(class_targets >= 0, "float32") * example_weights
    not_ignored = ops.cast(class_targets != IGNORE, "float32") * example_weights
    one_hot = ops.one_hot(ops.maximum(class_targets, 0), num_classes) * (
        ops.cast(class_targets >= 0, "float32")[..., None]
    )
    # A trailing axis of size 1 keeps Keras' focal loss element-wise (it averages
    # over its last axis).
    focal = keras.losses.binary_focal_crossentropy(
        one_hot[..., None],
        box_classification[..., None],
        apply_class_balancing=True,
        alpha=focal_alpha,
        gamma=focal_gamma,
        from_logits=True,
    )
    focal_sum = ops.sum(ops.sum(focal, axis=-1) * not_ignored)
    huber = keras.losses.huber(box_targets, box_regression, delta=huber_delta)
    box_sum = ops.sum(huber * positive)
    normalizer = ops.sum(positive) + 1.0
    return (focal_sum + box_loss_weight * box_sum) / normalizer
