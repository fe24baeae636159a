"""Outputs with boxes a model decoded itself (two-stage detectors) through `decode_outputs`."""

import numpy as np

from defect_aux_net.config import DefectAuxNetConfig
from defect_aux_net.inference.postprocessing import decode_outputs

CONFIG = DefectAuxNetConfig(num_classes=2, input_shape=(64, 80, 3), tasks=("detection",))


def test_class_specific_boxes_are_selected_per_class_without_anchors():
    # [B=1, N=3 RoIs, K=2 classes, 4]: one box per class for every RoI.
    boxes = np.array(
        [[
            [[0, 0, 10, 10], [20, 20, 30, 30]],
            [[1, 0, 11, 10], [40, 40, 50, 50]],
            [[30, 30, 40, 40], [0, 0, 10, 10]],
        ]],
        np.float32,
    )
    scores = np.array([[[0.9, 0.02], [0.8, 0.6], [0.01, 0.3]]], np.float32)
    results = decode_outputs(
        {"detection_boxes": boxes, "detection_scores": scores}, CONFIG, anchors=None,
        max_detections=4,
    )
    # By hand: class 0 keeps RoI 0 (0.9); RoI 1's class-0 box overlaps it at IoU
    # 90 / 110 = 0.82 > 0.5 and goes; RoI 2's 0.01 is under the 0.05 threshold. Class 1
    # keeps RoI 1 (0.6) and RoI 2 (0.3): the same box as class 0's, but another class.
    # RoI 0's class-1 score 0.02 is under the threshold.
    assert int(results["num_detections"][0]) == 3
    np.testing.assert_allclose(results["scores"][0], [0.9, 0.6, 0.3, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(results["classes"][0, :3], [0, 1, 1])
    expected = np.array([[0, 0, 10, 10], [40, 40, 50, 50], [0, 0, 10, 10]]) / [64, 80, 64, 80]
    np.testing.assert_allclose(results["boxes"][0, :3], expected, rtol=1e-6)
    assert bool(results["is_defective"][0])
    np.testing.assert_allclose(results["image_score"], [0.9], rtol=1e-6)
