import numpy as np
import pytest
import tensorflow as tf

from defect_aux_net import DefectAuxNetConfig
from defect_aux_net.inference.postprocessing import decode_outputs, is_defective, valid_detections


def config(tasks, input_shape=(32, 64, 3)):
    return DefectAuxNetConfig.from_preset(
        "small", input_shape=input_shape, num_classes=2, tasks=tasks
    )


def test_classification_decides_with_each_classs_threshold():
    # Image 0: 0.4 < 0.5 and 0.7 < 0.8. Image 1: 0.6 >= 0.5. Image 2: exactly 0.8.
    results = {"probabilities": np.array([[0.4, 0.7], [0.6, 0.5], [0.1, 0.8]], np.float32)}
    np.testing.assert_array_equal(is_defective(results, [0.5, 0.8]), [False, True, True])
    # The classifier decides alone: masks do not override it.
    results["masks"] = np.ones((3, 2, 2, 2), np.float32)
    np.testing.assert_array_equal(is_defective(results, [0.5, 0.8]), [False, True, True])


def test_without_classification_a_mask_pixel_at_one_half_is_a_defect():
    masks = np.zeros((2, 2, 2, 1), np.float32)
    masks[0, 1, 0, 0] = 0.5
    masks[1] = 0.49
    np.testing.assert_array_equal(is_defective({"masks": masks}, [0.9]), [True, False])


def test_without_classification_only_real_detections_at_their_class_threshold_count():
    results = {
        "scores": np.array([[0.9, 0.8], [0.7, 0.0]], np.float32),
        "classes": np.array([[0, 1], [1, 0]], np.int32),
        # Image 0's rows are padding, however high their scores.
        "num_detections": np.array([0, 1], np.int32),
    }
    np.testing.assert_array_equal(is_defective(results, [0.5, 0.6]), [False, True])
    np.testing.assert_array_equal(is_defective(results, [0.5, 0.75]), [False, False])
    np.testing.assert_array_equal(
        valid_detections(results, 0.75), [[False, False], [False, False]]
    )
    np.testing.assert_array_equal(valid_detections(results), [[False, False], [True, False]])
    # Masks or detections: either suffices.
    masks = np.zeros((2, 1, 1, 2), np.float32)
    masks[0] = 0.6
    np.testing.assert_array_equal(
        is_defective(results | {"masks": masks}, [0.5, 0.75]), [True, False]
    )


def test_decoding_a_hand_made_detection():
    # Two anchors in a 32 x 64 input; zero deltas decode to the anchors themselves.
    anchors = np.array([[0, 0, 16, 16], [16, 32, 32, 64]], np.float32)
    regression = np.zeros((1, 2, 4), np.float32)
    # Anchor 0 is class 0 at sigmoid(2) = 0.881; anchor 1 scores sigmoid(-5) = 0.0067 at
    # best, below the 0.05 score threshold.
    logits = np.array([[[2.0, -8.0], [-5.0, -6.0]]], np.float32)
    outputs = {"box_regression": regression, "box_classification": logits}
    results = decode_outputs(outputs, config(("detection",)), anchors, thresholds=[0.9, 0.5])

    assert int(results["num_detections"][0]) == 1
    np.testing.assert_allclose(results["boxes"][0, 0], [0, 0, 16 / 32, 16 / 64], atol=1e-6)
    np.testing.assert_allclose(results["scores"][0, 0], 1 / (1 + np.exp(-2.0)), rtol=1e-6)
    assert int(results["classes"][0, 0]) == 0
    # Padding rows are zero.
    assert not np.any(results["boxes"][0, 1:]) and not np.any(results["scores"][0, 1:])
    # 0.881 < 0.9, the threshold of class 0.
    np.testing.assert_array_equal(results["is_defective"], [False])

    pixels = decode_outputs(
        outputs, config(("detection",)), anchors, thresholds=[0.8, 0.5], normalize_boxes=False
    )
    np.testing.assert_allclose(pixels["boxes"][0, 0], [0, 0, 16, 16], atol=1e-4)
    np.testing.assert_array_equal(pixels["is_defective"], [True])


def test_results_hold_the_tasks_outputs_and_default_thresholds_are_one_half():
    outputs = {
        "classification": np.array([[0.5, 0.2], [0.49, 0.3]], np.float32),
        "segmentation": np.full((2, 32, 64, 2), 0.7, np.float32),
    }
    results = decode_outputs(outputs, config(("classification", "segmentation")))
    assert set(results) == {"probabilities", "masks", "is_defective"}
    np.testing.assert_array_equal(results["probabilities"], outputs["classification"])
    np.testing.assert_array_equal(results["masks"], outputs["segmentation"])
    np.testing.assert_array_equal(results["is_defective"], [True, False])


def test_a_non_finite_output_is_an_error_unless_unchecked():
    outputs = {"classification": np.array([[np.nan, 0.9]], np.float32)}
    with pytest.raises(tf.errors.InvalidArgumentError, match="`classification` output is NaN"):
        decode_outputs(outputs, config(("classification",)))
    results = decode_outputs(outputs, config(("classification",)), check_finite=False)
    np.testing.assert_array_equal(results["is_defective"], [True])


def test_detection_without_anchors_is_refused():
    outputs = {"box_regression": np.zeros((1, 2, 4)), "box_classification": np.zeros((1, 2, 2))}
    with pytest.raises(ValueError, match="anchors"):
        decode_outputs(outputs, config(("detection",)))
