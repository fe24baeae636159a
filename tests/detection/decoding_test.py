import numpy as np

from defect_aux_net.detection.box_matching import encode_detection_targets
from defect_aux_net.detection.decoding import decode_detections

ANCHORS = np.array(
    [[0, 0, 10, 10], [0, 1, 10, 11], [20, 20, 40, 40], [50, 50, 60, 60]], np.float32
)


def logit(p):
    return np.log(p / (1 - p))


def test_decoding_recovers_encoded_boxes_and_suppresses_overlaps():
    boxes = np.array([[0, 0, 10, 10], [22, 18, 38, 44]], np.float32)
    box_targets, _ = encode_detection_targets(boxes, np.array([0, 1]), ANCHORS)
    scores = np.full((1, 4, 2), 0.001, np.float32)
    scores[0, 0, 0] = 0.9  # box 0, class 0
    scores[0, 1, 0] = 0.8  # overlaps anchor 0 (IoU 0.82): suppressed
    scores[0, 2, 1] = 0.7  # box 1, class 1
    result = decode_detections(
        np.array(box_targets)[None], logit(scores), ANCHORS, image_size=(64, 64),
        max_detections=5,
    )
    assert int(result["num_detections"][0]) == 2
    np.testing.assert_allclose(result["boxes"][0, :2], boxes, atol=1e-3)
    np.testing.assert_allclose(result["scores"][0, :2], [0.9, 0.7], rtol=1e-5)
    np.testing.assert_array_equal(result["classes"][0, :2], [0, 1])
    # Padding past num_detections.
    np.testing.assert_array_equal(result["scores"][0, 2:], 0)


def test_boxes_are_clipped_to_the_image():
    deltas = np.zeros((1, 4, 4), np.float32)
    scores = np.full((1, 4, 1), logit(0.001), np.float32)
    scores[0, 3, 0] = logit(0.9)
    result = decode_detections(deltas, scores, ANCHORS, image_size=(55, 58), max_detections=3)
    np.testing.assert_allclose(result["boxes"][0, 0], [50, 50, 55, 58])
