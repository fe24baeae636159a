import numpy as np
import tensorflow as tf

from defect_aux_net.detection.rpn_targets import assign_rpn_targets

ANCHORS = np.array(
    [
        [0, 0, 10, 10],  # IoU 1 with box 0: positive
        [0, 1, 10, 11],  # IoU 90/110 = 0.82 >= 0.7: positive
        [0, 5, 10, 15],  # IoU 50/150 = 0.33, between 0.3 and 0.7: ignored
        [30, 30, 40, 40],  # no overlap: negative
        [20, 20, 40, 40],  # IoU 25/400 with box 1, its best anchor: positive
    ],
    np.float32,
)
# Image 0: two boxes and a padding row; image 1: padding only (defect-free).
BOXES = np.array(
    [[[0, 0, 10, 10], [20, 20, 25, 25], [0, 0, 0, 0]], [[0, 0, 0, 0]] * 3], np.float32
)
CLASSES = np.array([[3, 1, -1], [-1, -1, -1]])
SEED = tf.constant([1, 2])


def test_matching_with_the_best_anchor_rule():
    targets = assign_rpn_targets(BOXES, CLASSES, ANCHORS, SEED)
    np.testing.assert_array_equal(targets["objectness_targets"][0], [1, 1, 0, 0, 1])
    # 256 slots take every positive and negative; the ignored anchor gets no weight.
    np.testing.assert_array_equal(targets["objectness_weights"][0], [1, 1, 0, 1, 1])
    np.testing.assert_array_equal(targets["box_weights"][0], [1, 1, 0, 0, 1])
    box_targets = targets["box_targets"].numpy()[0]
    np.testing.assert_allclose(box_targets[0], 0, atol=1e-6)
    # Anchor 1 (centre x 6, width 10) to box 0 (centre x 5): dx = -0.1.
    np.testing.assert_allclose(box_targets[1], [0, -0.1, 0, 0], atol=1e-6)
    # Anchor 4 (centre 30, side 20) to box 1 (centre 22.5, side 5).
    np.testing.assert_allclose(
        box_targets[4], [-0.375, -0.375, np.log(0.25), np.log(0.25)], rtol=1e-5
    )
    np.testing.assert_array_equal(box_targets[[2, 3]], 0)


def test_image_without_boxes_has_only_negatives():
    targets = assign_rpn_targets(BOXES, CLASSES, ANCHORS, SEED)
    np.testing.assert_array_equal(targets["objectness_targets"][1], 0)
    np.testing.assert_array_equal(targets["objectness_weights"][1], 1)
    np.testing.assert_array_equal(targets["box_weights"][1], 0)


def test_sample_caps_positives_at_the_fraction():
    # Two anchors per image: one of the three positives and one negative.
    targets = assign_rpn_targets(
        BOXES[:1], CLASSES[:1], ANCHORS, SEED, num_samples=2, positive_fraction=0.5
    )
    weights = targets["objectness_weights"].numpy()[0]
    assert weights.sum() == 2
    assert weights[3] == 1  # the only negative
    assert targets["box_weights"].numpy()[0].sum() == 1
    assert targets["box_weights"].numpy()[0, [0, 1, 4]].sum() == 1
