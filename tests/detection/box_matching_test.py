import numpy as np

from defect_aux_net.detection.box_matching import BACKGROUND, IGNORE, encode_detection_targets

ANCHORS = np.array(
    [
        [0, 0, 10, 10],  # IoU 1 with box 0 -> positive class 2
        [0, 5, 10, 15],  # IoU 50/150 = 0.33 with box 0 -> background (< 0.4)
        [0, 2, 10, 12],  # IoU 80/120 = 0.67 with box 0 -> positive
        [0, 3, 10, 13],  # IoU 70/130 = 0.54... -> positive
        [0, 4, 10, 14],  # IoU 60/140 = 0.43 -> ignored (0.4 <= IoU < 0.5)
        [50, 50, 60, 60],  # nothing nearby -> background
        [20, 20, 40, 40],  # IoU 25/400 with the small box 1 -> its best anchor: forced positive
    ],
    np.float32,
)
BOXES = np.array([[0, 0, 10, 10], [20, 20, 25, 25], [0, 0, 0, 0]], np.float32)
CLASSES = np.array([2, 0, -1])  # the third row is padding


def test_matching_thresholds_and_forced_matches():
    box_targets, class_targets = encode_detection_targets(BOXES, CLASSES, ANCHORS)
    np.testing.assert_array_equal(
        np.array(class_targets), [2, BACKGROUND, 2, 2, IGNORE, BACKGROUND, 0]
    )
    box_targets = np.array(box_targets)
    np.testing.assert_allclose(box_targets[0], [0, 0, 0, 0], atol=1e-6)
    # Anchor 2 (centre x 7, width 10) to box 0 (centre x 5, width 10): dx = -0.2.
    np.testing.assert_allclose(box_targets[2], [0, -0.2, 0, 0], atol=1e-6)
    # Anchor 6 (centre 30, side 20) to box 1 (centre 22.5, side 5).
    np.testing.assert_allclose(
        box_targets[6], [-0.375, -0.375, np.log(0.25), np.log(0.25)], rtol=1e-5
    )
    # Non-positives carry no box target.
    np.testing.assert_array_equal(box_targets[[1, 4, 5]], 0)


def test_without_low_quality_matches_small_box_gets_no_anchor():
    _, class_targets = encode_detection_targets(
        BOXES, CLASSES, ANCHORS, allow_low_quality_matches=False
    )
    assert np.array(class_targets)[6] == BACKGROUND


def test_all_padding_gives_all_background():
    box_targets, class_targets = encode_detection_targets(
        np.zeros((4, 4), np.float32), -np.ones(4), ANCHORS
    )
    np.testing.assert_array_equal(np.array(class_targets), BACKGROUND)
    np.testing.assert_array_equal(np.array(box_targets), 0)


def test_encoding_runs_inside_tf_data():
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensors((BOXES, CLASSES)).map(
        lambda boxes, classes: encode_detection_targets(boxes, classes, ANCHORS)
    )
    _, class_targets = next(iter(dataset))
    np.testing.assert_array_equal(class_targets.numpy(), [2, BACKGROUND, 2, 2, IGNORE, BACKGROUND, 0])
