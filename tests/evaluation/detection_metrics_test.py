import numpy as np
import pytest

from defect_aux_net.evaluation.detection_metrics import DetectionMetrics, yxyx_to_coco_xywh


def batch(true_boxes, true_classes, predicted, has_boxes=None):
    """One batch from per-image lists; predicted rows: ymin, xmin, ymax, xmax, score, class."""
    num_images = len(true_boxes)
    rows = max(1, max(len(boxes) for boxes in true_boxes))
    boxes = np.zeros((num_images, rows, 4))
    classes = np.full((num_images, rows), -1)
    for i, (image_boxes, image_classes) in enumerate(zip(true_boxes, true_classes)):
        boxes[i, : len(image_boxes)] = np.reshape(image_boxes, (-1, 4))
        classes[i, : len(image_classes)] = image_classes
    max_detections = 3  # extra rows are padding with a high score that must be ignored
    detected = np.zeros((num_images, max_detections, 6))
    detected[:, :, 4] = 0.99
    for i, image_predictions in enumerate(predicted):
        detected[i, : len(image_predictions)] = np.reshape(image_predictions, (-1, 6))
    ground_truth = {
        "boxes": boxes,
        "box_classes": classes,
        "has_boxes": np.ones(num_images, bool) if has_boxes is None else np.array(has_boxes),
    }
    predictions = {
        "boxes": detected[..., :4],
        "scores": detected[..., 4],
        "classes": detected[..., 5].astype(int),
        "num_detections": np.array([len(p) for p in predicted]),
    }
    return ground_truth, predictions


def evaluate(*batches, class_names=("scratch",)):
    metrics = DetectionMetrics(list(class_names))
    for ground_truth, predictions in batches:
        metrics.update(ground_truth, predictions)
    return metrics.result()


def test_yxyx_to_coco_xywh():
    np.testing.assert_allclose(yxyx_to_coco_xywh([[10, 20, 50, 80]]), [[20, 10, 60, 40]])


def test_perfect_detection():
    result = evaluate(batch([[[10, 20, 50, 60]]], [[0]], [[[10, 20, 50, 60, 0.9, 0]]]))
    assert result["map"] == pytest.approx(1.0)
    assert result["map50"] == pytest.approx(1.0)
    assert result["ar"] == pytest.approx(1.0)
    assert result["per_class"]["scratch"] == pytest.approx({"ap": 1.0, "ap50": 1.0})


def test_shifted_box_passes_low_iou_thresholds_only():
    # Shifted by 20 px: intersection 80 x 100, union 12000 -> IoU 2/3, which passes
    # the IoU thresholds 0.50, 0.55, 0.60, 0.65: 4 of 10.
    result = evaluate(batch([[[0, 0, 100, 100]]], [[0]], [[[0, 20, 100, 120, 0.9, 0]]]))
    assert result["map50"] == pytest.approx(1.0)
    assert result["map"] == pytest.approx(0.4)
    assert result["ar"] == pytest.approx(0.4)


def test_false_positive_on_a_defect_free_image_lowers_precision():
    true_boxes, true_classes = [[[10, 10, 40, 40]], []], [[0], []]
    predicted = [[[10, 10, 40, 40, 0.8, 0]], [[5, 5, 30, 30, 0.9, 0]]]
    # The false positive ranks first: precision 1/2 at recall 1, so AP 0.5.
    counted = evaluate(batch(true_boxes, true_classes, predicted))
    assert counted["map"] == pytest.approx(0.5)
    # The same image without box annotation does not enter.
    skipped = evaluate(batch(true_boxes, true_classes, predicted, has_boxes=[True, False]))
    assert skipped["map"] == pytest.approx(1.0)


def test_classes_are_matched_and_classes_without_boxes_get_minus_one():
    ground_truth, predictions = batch(
        [[[10, 10, 40, 40], [50, 50, 90, 90]]], [[0, 1]],
        [[[10, 10, 40, 40, 0.7, 1], [50, 50, 90, 90, 0.8, 1]]],
    )
    result = evaluate((ground_truth, predictions), class_names=("scratch", "pit", "crack"))
    # scratch is found only as pit: AP 0, and a pit false positive ranked below the
    # true pit, so pit AP 1. crack has no ground truth.
    assert result["per_class"]["scratch"]["ap"] == pytest.approx(0.0)
    assert result["per_class"]["pit"]["ap50"] == pytest.approx(1.0)
    assert result["per_class"]["crack"] == {"ap": -1.0, "ap50": -1.0}
    assert result["map"] == pytest.approx(0.5)  # mean over classes with ground truth


def test_no_detections_and_no_ground_truth():
    missed = evaluate(batch([[[10, 10, 40, 40]]], [[0]], [[]]))
    assert missed["map"] == 0.0
    empty = evaluate(batch([[]], [[]], [[[5, 5, 30, 30, 0.9, 0]]]))
    assert empty["map"] == empty["map50"] == empty["ar"] == -1.0
    assert empty["per_class"]["scratch"]["ap"] == -1.0


def test_class_out_of_range_is_named():
    ground_truth, predictions = batch([[[10, 10, 40, 40]]], [[0]], [[[1, 1, 9, 9, 0.9, 4]]])
    with pytest.raises(ValueError, match=r"predictions\['classes'\]"):
        evaluate((ground_truth, predictions))
