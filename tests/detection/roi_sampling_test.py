import numpy as np
import pytest
import tensorflow as tf

from defect_aux_net.detection.roi_sampling import (
    assign_roi_targets,
    cascade_stage_targets,
    sample_rois,
    target_class_deltas,
)

SEED = tf.constant([5, 6])
GT_BOXES = np.array([[[0, 0, 10, 10], [0, 0, 0, 0]]], np.float32)
GT_CLASSES = np.array([[2, -1]])


def shifted(d):
    # The ground-truth box moved right by d: IoU (10 - d) / (10 + d), dx = -d / 10.
    return [0, d, 10, 10 + d]


def test_assignment_thresholds_classes_and_weighted_deltas():
    rois = np.array([[shifted(1), shifted(5), [50, 50, 60, 60], shifted(0)]], np.float32)
    valid = np.array([[True, True, True, False]])
    targets = assign_roi_targets(rois, valid, GT_BOXES, GT_CLASSES)
    # IoU 0.82 -> foreground of class 2 (target 3); 0.33 and 0 -> background;
    # the padding RoI is neither, whatever its overlap.
    np.testing.assert_array_equal(targets["foreground"][0], [1, 0, 0, 0])
    np.testing.assert_array_equal(targets["background"][0], [0, 1, 1, 0])
    np.testing.assert_array_equal(targets["class_targets"][0], [3, 0, 0, 0])
    # dx = -0.1 times the weight 10.
    np.testing.assert_allclose(targets["box_targets"][0, 0], [0, -1.0, 0, 0], atol=1e-5)
    np.testing.assert_array_equal(targets["box_targets"][0, 1:], 0)


def test_background_low_threshold_excludes_far_rois():
    rois = np.array([[shifted(5), [50, 50, 60, 60]]], np.float32)
    targets = assign_roi_targets(
        rois, np.ones((1, 2), bool), GT_BOXES, GT_CLASSES, background_iou_low=0.1
    )
    np.testing.assert_array_equal(targets["background"][0], [1, 0])


def test_sample_fractions_and_order():
    # 20 foreground proposals (IoU 0.82) and 100 background ones.
    proposals = np.array([[shifted(1)] * 20 + [[40, 40, 50, 50]] * 100], np.float32)
    sample = sample_rois(
        proposals, np.array([120]), GT_BOXES, GT_CLASSES, SEED, num_samples=16,
        foreground_fraction=0.25,
    )
    # 16 * 0.25 = 4 foreground, first; 12 background.
    np.testing.assert_array_equal(sample["box_weights"][0], [1] * 4 + [0] * 12)
    np.testing.assert_array_equal(sample["class_weights"][0], 1)
    np.testing.assert_array_equal(sample["class_targets"][0], [3] * 4 + [0] * 12)
    # Foreground: the shifted proposals (dx target -1) or the ground truth itself (0).
    foreground_rois = sample["rois"].numpy()[0, :4]
    from_proposals = np.all(foreground_rois == shifted(1), axis=1)
    assert np.all(from_proposals | np.all(foreground_rois == GT_BOXES[0, 0], axis=1))
    np.testing.assert_allclose(
        sample["box_targets"][0, :4, 1], np.where(from_proposals, -1.0, 0.0), atol=1e-5
    )
    np.testing.assert_array_equal(sample["rois"][0, 4:], [[40, 40, 50, 50]] * 12)


def test_ground_truth_joins_the_candidates_and_padding_proposals_do_not():
    # Two proposals, of which only the first is real: the ground-truth box itself is
    # the only foreground candidate (zero deltas).
    proposals = np.array([[[40, 40, 50, 50], shifted(1)]], np.float32)
    sample = sample_rois(proposals, np.array([1]), GT_BOXES, GT_CLASSES, SEED, num_samples=4)
    np.testing.assert_array_equal(sample["class_weights"][0], [1, 1, 0, 0])
    np.testing.assert_array_equal(sample["class_targets"][0], [3, 0, 0, 0])
    np.testing.assert_array_equal(sample["rois"][0, :2], [[0, 0, 10, 10], [40, 40, 50, 50]])
    np.testing.assert_allclose(sample["box_targets"][0], 0, atol=1e-5)
    np.testing.assert_array_equal(sample["rois"][0, 2:], 0)


def test_image_without_ground_truth_samples_background():
    proposals = np.array([[[0, 0, 10, 10], [5, 5, 20, 20]]], np.float32)
    sample = sample_rois(
        proposals, np.array([2]), np.zeros((1, 2, 4), np.float32), -np.ones((1, 2)), SEED,
        num_samples=3,
    )
    np.testing.assert_array_equal(sample["class_weights"][0], [1, 1, 0])
    np.testing.assert_array_equal(sample["class_targets"][0], 0)
    np.testing.assert_array_equal(sample["box_weights"][0], 0)


def test_cascade_stages_raise_the_threshold_and_the_weights():
    # IoU 7/13 = 0.54, 8/12 = 0.67, 9/11 = 0.82.
    rois = np.array([[shifted(3), shifted(2), shifted(1)]], np.float32)
    valid = np.ones((1, 3), bool)
    expected_foreground = [[1, 1, 1], [0, 1, 1], [0, 0, 1]]
    for stage, weight in enumerate([10, 20, 30]):
        targets = cascade_stage_targets(rois, valid, GT_BOXES, GT_CLASSES, stage)
        np.testing.assert_array_equal(targets["foreground"][0], expected_foreground[stage])
        np.testing.assert_array_equal(
            targets["background"][0], 1 - np.array(expected_foreground[stage])
        )
        foreground = np.array(expected_foreground[stage], bool)
        shifts = np.array([3, 2, 1])[foreground]
        np.testing.assert_allclose(
            targets["box_targets"][0].numpy()[foreground, 1], -shifts / 10 * weight, rtol=1e-5
        )
    with pytest.raises(ValueError, match="stage must be 0 to 2"):
        cascade_stage_targets(rois, valid, GT_BOXES, GT_CLASSES, 3)


def test_target_class_deltas_pick_the_class_column():
    deltas = np.arange(2 * 3 * 4, dtype=np.float32).reshape(1, 2, 3, 4)
    picked = target_class_deltas(deltas, np.array([[3, 0]]))
    # RoI 0: class 2 (target 3); RoI 1: background, class 0's column.
    np.testing.assert_array_equal(picked[0], [deltas[0, 0, 2], deltas[0, 1, 0]])


def test_bad_thresholds():
    with pytest.raises(ValueError, match="RoI thresholds"):
        assign_roi_targets(
            np.zeros((1, 1, 4)), np.ones((1, 1), bool), GT_BOXES, GT_CLASSES,
            foreground_iou=0.4, background_iou_high=0.5,
        )
