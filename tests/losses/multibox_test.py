import numpy as np

from defect_aux_net.detection.box_matching import BACKGROUND, IGNORE
from defect_aux_net.losses.multibox import hard_negative_mask, multibox_loss


def softplus(x):
    return np.log1p(np.exp(x))


def test_each_image_keeps_its_ratio_times_positives_hardest_negatives():
    b, i = BACKGROUND, IGNORE
    targets = np.array([
        [0, b, b, i, b, b],  # One positive: the 3 hardest of 4 negatives.
        [b, b, b, b, b, b],  # No positive: none, or min_negatives.
        [1, 0, b, b, b, b],  # Two positives: all 4 negatives (3 * 2 > 4).
    ])
    losses = np.array([
        [0.5, 0.9, 0.1, 5.0, 0.7, 0.3],  # The ignored box's 5.0 is no negative.
        [0.2, 0.6, 0.4, 0.1, 0.8, 0.3],
        [0.0, 0.0, 0.1, 0.2, 0.3, 0.4],
    ], np.float32)
    positives, negatives = targets >= 0, targets == BACKGROUND
    kept = np.asarray(hard_negative_mask(losses, positives, negatives, 3.0))
    np.testing.assert_array_equal(kept, [
        [False, True, False, False, True, True],
        [False] * 6,
        [False, False, True, True, True, True],
    ])
    # At least one negative per image: the second image keeps its hardest, 0.8.
    kept = np.asarray(hard_negative_mask(losses, positives, negatives, 1.0, min_negatives=1))
    np.testing.assert_array_equal(kept[1], [False, False, False, False, True, False])
    np.testing.assert_array_equal(kept[0], [False, True, False, False, False, False])


def test_the_multibox_loss_of_a_tiny_batch_by_hand():
    # One class; softmax logits (background, defect) of 4 default boxes.
    logits = np.array([[[0.0, 2.0], [0.0, 1.0], [0.0, -1.0], [0.0, 0.5]]], np.float32)
    targets = np.array([[0, BACKGROUND, BACKGROUND, BACKGROUND]])
    box_targets = np.zeros((1, 4, 4), np.float32)
    box_targets[0, 0] = [0.05, -0.02, 0.1, 0.3]
    box_predictions = np.zeros((1, 4, 4), np.float32)
    box_predictions[0, 0, 2] = 0.1
    box_predictions[0, 1] = 9.0  # A negative's box is never trained.
    loss = multibox_loss(
        box_targets, targets, box_predictions, logits, np.ones(1),
        negative_ratio=2.0, box_loss_weight=1.0,
    )
    # Positive: -log softmax = softplus(-2). Negatives: softplus(z): 1.3133 (z=1) and
    # 0.9741 (z=0.5) are the 2 hardest; 0.3133 (z=-1) is dropped.
    class_loss = softplus(-2.0) + softplus(1.0) + softplus(0.5)
    # Errors over the variances (0.1, 0.1, 0.2, 0.2): 0.5, 0.2, 0, 1.5; smooth L1
    # 0.125 + 0.02 + 0 + (1.5 - 0.5).
    box_loss = 0.125 + 0.02 + 0.0 + 1.0
    np.testing.assert_allclose(float(loss), (class_loss + box_loss) / 1, rtol=1e-6)
    # An image without box annotations adds nothing.
    unannotated = multibox_loss(box_targets, targets, box_predictions, logits, np.zeros(1))
    assert float(unannotated) == 0.0
