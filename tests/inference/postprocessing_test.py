import numpy as np
import pytest
import tensorflow as tf

from defect_aux_net import DefectAuxNetConfig
from defect_aux_net.inference.postprocessing import (
    ImageRule,
    decode_outputs,
    image_evidence,
    is_defective,
    valid_detections,
)


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
    assert set(results) == {"probabilities", "masks", "image_score", "is_defective"}
    np.testing.assert_array_equal(results["probabilities"], outputs["classification"])
    np.testing.assert_array_equal(results["masks"], outputs["segmentation"])
    np.testing.assert_array_equal(results["is_defective"], [True, False])
    # Without an image rule the image score is the highest class probability.
    np.testing.assert_array_equal(results["image_score"], np.float32([0.5, 0.49]))


def detection_results():
    """Two images: image 0 has one real detection (0.8) and a padded row (0.9); image 1
    none. Classification and masks beside them."""
    masks = np.zeros((2, 2, 2, 2), np.float32)
    masks[0, 1, 1, 1] = 0.3
    masks[1, 0, 0, 0] = 0.6
    return {
        "probabilities": np.array([[0.2, 0.4], [0.7, 0.1]], np.float32),
        "masks": masks,
        "scores": np.array([[0.8, 0.9], [0.95, 0.0]], np.float32),
        "classes": np.array([[1, 0], [0, 0]], np.int32),
        "num_detections": np.array([1, 0], np.int32),
    }


def test_image_evidence_is_each_heads_highest_value_and_padding_scores_zero():
    evidence = image_evidence(detection_results())
    assert list(evidence) == ["classification", "mask", "detection"]
    np.testing.assert_allclose(evidence["classification"], [0.4, 0.7])
    np.testing.assert_allclose(evidence["mask"], [0.3, 0.6])
    # Image 0's padded 0.9 and image 1's padded 0.95 are not detections.
    np.testing.assert_allclose(evidence["detection"], [0.8, 0.0])


def test_an_image_rule_decides_on_the_fused_score():
    results = detection_results()
    rule = ImageRule.from_weights({"classification": 0.5, "detection": 0.5}, 0.55)
    # Fused: 0.5 * 0.4 + 0.5 * 0.8 = 0.6 and 0.5 * 0.7 + 0 = 0.35.
    np.testing.assert_array_equal(is_defective(results, [0.9, 0.9], rule), [True, False])
    # The per-class rule says the opposite: image 1's 0.7 reaches 0.6, image 0's 0.4 not.
    np.testing.assert_array_equal(is_defective(results, [0.6, 0.6]), [False, True])
    rule = ImageRule.from_weights({"mask": 0.2, "detection": 0.8}, 0.7)
    # 0.2 * 0.3 + 0.8 * 0.8 = 0.70 (at the threshold) and 0.2 * 0.6 = 0.12.
    np.testing.assert_array_equal(is_defective(results, [0.0, 0.0], rule), [True, False])


def test_decode_outputs_applies_the_image_rule_and_returns_the_fused_score():
    outputs = {
        "classification": np.array([[0.2, 0.9], [0.6, 0.3]], np.float32),
        "segmentation": np.full((2, 32, 64, 2), 0.1, np.float32),
    }
    outputs["segmentation"][0, 5, 5, 0] = 0.3
    outputs["segmentation"][1, 0, 0, 1] = 0.95
    tasks = ("classification", "segmentation")
    rule = ImageRule.from_weights({"classification": 0.3, "mask": 0.7}, 0.6)
    results = decode_outputs(outputs, config(tasks), thresholds=[0.5, 0.5], image_rule=rule)
    # 0.3 * 0.9 + 0.7 * 0.3 = 0.48; 0.3 * 0.6 + 0.7 * 0.95 = 0.845.
    np.testing.assert_allclose(results["image_score"], [0.48, 0.845], rtol=1e-6)
    np.testing.assert_array_equal(results["is_defective"], [False, True])
    # At the per-class thresholds both images reach 0.5 in some class.
    plain = decode_outputs(outputs, config(tasks), thresholds=[0.5, 0.5])
    np.testing.assert_array_equal(plain["is_defective"], [True, True])


def test_bad_image_rules_are_named():
    with pytest.raises(ValueError, match="summing to 1"):
        ImageRule((0.5, 0.6, 0.0), 0.5)
    with pytest.raises(ValueError, match="summing to 1"):
        ImageRule((1.2, -0.2, 0.0), 0.5)
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\], got 1.5"):
        ImageRule((1.0, 0.0, 0.0), 1.5)
    with pytest.raises(ValueError, match="among"):
        ImageRule.from_weights({"counting": 1.0}, 0.5)
    rule = ImageRule.from_weights({"detection": 1.0}, 0.5)
    outputs = {"classification": np.array([[0.2, 0.9]], np.float32)}
    with pytest.raises(ValueError, match=r"weighs \['detection'\]"):
        decode_outputs(outputs, config(("classification",)), image_rule=rule)


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
