import numpy as np

from defect_aux_net.detection.box_matching import BACKGROUND, IGNORE
from defect_aux_net.losses.detection import detection_loss


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def focal(target, logit, alpha=0.25, gamma=4.0):
    p = sigmoid(logit)
    p_t = p if target else 1 - p
    alpha_t = alpha if target else 1 - alpha
    return -alpha_t * (1 - p_t) ** gamma * np.log(p_t)


def test_focal_and_box_loss_by_hand():
    # One image, 3 anchors, 2 classes: anchor 0 positive class 1, anchor 1 background,
    # anchor 2 ignored (contributes nothing).
    class_targets = np.array([[1, BACKGROUND, IGNORE]])
    logits = np.array([[[0.5, -1.0], [2.0, -3.0], [5.0, 5.0]]], np.float32)
    box_targets = np.array([[[0.1, -0.2, 0.0, 0.3], [0, 0, 0, 0], [0, 0, 0, 0]]], np.float32)
    box_pred = np.array([[[0.15, 0.0, 0.0, 0.3], [1, 1, 1, 1], [1, 1, 1, 1]]], np.float32)

    focal_sum = (
        focal(0, 0.5) + focal(1, -1.0)  # positive anchor: class 0 negative, class 1 positive
        + focal(0, 2.0) + focal(0, -3.0)  # background anchor
    )
    # Huber (delta 0.1) of the positive anchor: |0.05| -> 0.5 * 0.05^2; |0.2| -> 0.1 * (0.2 - 0.05).
    huber_mean = (0.5 * 0.05**2 + 0.1 * (0.2 - 0.05)) / 4
    expected = (focal_sum + 50.0 * huber_mean) / (1 + 1)

    loss = detection_loss(box_targets, class_targets, box_pred, logits, np.ones(1, np.float32))
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_examples_without_boxes_are_ignored():
    class_targets = np.array([[0, BACKGROUND], [0, 0]])
    logits = np.array([[[1.0], [-1.0]], [[-4.0], [-4.0]]], np.float32)
    boxes = np.zeros((2, 2, 4), np.float32)
    only_first = detection_loss(boxes, class_targets, boxes, logits, np.array([1.0, 0.0]))
    alone = detection_loss(boxes[:1], class_targets[:1], boxes[:1], logits[:1], np.ones(1))
    np.testing.assert_allclose(float(only_first), float(alone), rtol=1e-6)


def test_no_positives_is_finite():
    loss = detection_loss(
        np.zeros((1, 2, 4)), np.full((1, 2), BACKGROUND), np.zeros((1, 2, 4)),
        np.zeros((1, 2, 1), np.float32), np.ones(1),
    )
    # Two background anchors at p = 0.5: 2 * 0.75 * 0.5^4 * log 2, normaliser 1.
    np.testing.assert_allclose(float(loss), 2 * 0.75 * 0.5**4 * np.log(2), rtol=1e-5)
