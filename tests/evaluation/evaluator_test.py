import json

import numpy as np
import pytest

from defect_aux_net.evaluation.evaluator import Evaluator
from defect_aux_net.inference.postprocessing import ImageRule

CLASSES = ["scratch", "pit"]


def make_batch():
    """Two 4x4 images: image 0 has a scratch (mask and box), image 1 is defect-free."""
    masks = np.zeros((2, 4, 4, 2))
    masks[0, :2, :2, 0] = 1
    segmentation = np.zeros((2, 4, 4, 2))
    segmentation[0, :2, :2, 0] = 0.8
    segmentation[1, 3, 3, 1] = 0.6  # a false pixel on the defect-free image
    ground_truth = {
        "labels": np.array([[1, 0], [0, 0]]),
        "masks": masks,
        "has_mask": np.array([True, True]),
        "boxes": np.array([[[0, 0, 2, 2]], [[0, 0, 0, 0]]], np.float32),
        "box_classes": np.array([[0], [-1]]),
        "has_boxes": np.array([True, True]),
    }
    predictions = {
        "probabilities": np.array([[0.7, 0.2], [0.1, 0.3]]),
        "masks": segmentation,
        "boxes": np.array([[[0, 0, 2, 2], [0, 0, 0, 0]], [[0, 0, 0, 0]] * 2], np.float32),
        "scores": np.array([[0.95, 0.0], [0.0, 0.0]]),
        "classes": np.array([[0, 0], [0, 0]]),
        "num_detections": np.array([1, 0]),
    }
    return ground_truth, predictions


def only(predictions, *keys):
    return {key: predictions[key] for key in keys}


def test_all_tasks_give_a_json_result_with_hand_checked_values():
    evaluator = Evaluator(CLASSES, ("classification", "segmentation", "detection"))
    evaluator.update(*make_batch())
    result = json.loads(json.dumps(evaluator.result()))
    assert set(result) == {"classification", "segmentation", "detection", "image_ap"}
    assert result["classification"]["accuracy"] == 1.0
    assert result["classification"]["per_class"]["pit"]["support"] == 0
    # scratch: found exactly in image 0, empty-empty in image 1. pit: empty-empty in
    # image 0, one false pixel in image 1 (0 there), so 0 over the split.
    assert result["segmentation"]["per_class"]["scratch"]["dice"] == 1.0
    assert result["segmentation"]["per_class"]["pit"]["iou_per_image"] == 0.5
    assert result["segmentation"]["iou"] == 0.5
    assert result["segmentation"]["iou_per_image"] == 0.75
    # Label maps: image 0 found exactly (IoU 1), image 1 one false pit pixel (IoU 0).
    assert result["segmentation"]["label_map_miou"] == 0.5
    assert result["segmentation"]["label_map_miou_defective"] == 1.0
    assert result["detection"]["map"] == pytest.approx(1.0)
    # Image scores from the classification: 0.7 (defective), 0.3 (defect-free).
    perfect = {"ap": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0,
               "tp": 1, "fp": 0, "fn": 0, "tn": 1}
    image_ap = result["image_ap"]
    assert image_ap.pop("score") == "classification"
    per_source = image_ap.pop("per_source")
    # The decision at the default 0.5 thresholds: 0.7 flags image 0, 0.3 not image 1.
    assert image_ap.pop("is_defective") == {
        "precision": 1.0, "recall": 1.0, "f1": 1.0, "tp": 1, "fp": 0, "fn": 0, "tn": 1
    }
    # Evidence is float32, as decoded outputs are. Thresholds lie midway between the
    # two images' scores.
    assert image_ap == perfect | {"threshold": pytest.approx(0.5)}
    # Each head ranks the two images right: highest mask probability 0.8 vs 0.6,
    # highest real detection score 0.95 vs none (0).
    assert per_source == {
        "classification": perfect | {"threshold": pytest.approx(0.5)},
        "mask": perfect | {"threshold": pytest.approx(0.7)},
        "detection": perfect | {"threshold": pytest.approx(0.475)},
    }
    assert set(evaluator.pr_curves()) == {"image", "class/scratch", "class/pit"}


@pytest.mark.parametrize(
    "tasks, keys, threshold",
    [
        # Highest mask probability: 0.8 and 0.6; the best-F1 threshold midway.
        (("segmentation",), ("masks",), 0.7),
        # Highest valid detection score: 0.95 and none (0).
        (("detection",), ("boxes", "scores", "classes", "num_detections"), 0.475),
    ],
)
def test_image_score_without_classification(tasks, keys, threshold):
    ground_truth, predictions = make_batch()
    evaluator = Evaluator(CLASSES, tasks)
    evaluator.update(ground_truth, only(predictions, *keys))
    result = evaluator.result()
    assert set(result) == {*tasks, "image_ap"}
    assert result["image_ap"]["threshold"] == pytest.approx(threshold)
    assert set(evaluator.pr_curves()) == {"image"}


def test_an_image_rule_gives_the_fused_score_and_decides():
    ground_truth, predictions = make_batch()
    rule = ImageRule.from_weights({"mask": 0.5, "detection": 0.5}, 0.9)
    tasks = ("classification", "segmentation", "detection")
    # At 0.25 the per-class rule would flag image 1 (0.3); the image rule decides.
    evaluator = Evaluator(CLASSES, tasks, thresholds=[0.25, 0.25], image_rule=rule)
    evaluator.update(ground_truth, predictions)
    image_ap = evaluator.result()["image_ap"]
    assert image_ap["score"] == "fused"
    assert list(image_ap["per_source"]) == ["classification", "mask", "detection", "fused"]
    # Fused: 0.5 * 0.8 + 0.5 * 0.95 = 0.875 (defective), 0.5 * 0.6 + 0 = 0.3; the
    # best-F1 threshold midway, 0.5875.
    assert image_ap["threshold"] == pytest.approx(0.5875)
    assert image_ap["per_source"]["fused"]["threshold"] == pytest.approx(0.5875)
    assert image_ap["ap"] == 1.0
    # 0.875 < 0.9: the defective image is missed, the defect-free one passes.
    assert image_ap["is_defective"] == {
        "precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "fp": 0, "fn": 1, "tn": 1
    }
    # The classifier's own counts stay at its per-class thresholds: image 1 flagged.
    assert evaluator.result()["classification"]["fp"] == 1
    with pytest.raises(ValueError, match=r"weighs \['detection'\]"):
        Evaluator(CLASSES, ("classification", "segmentation"), image_rule=rule)


def test_thresholds_reach_the_classification():
    ground_truth, predictions = make_batch()
    evaluator = Evaluator(CLASSES, ("classification",), thresholds=[0.8, 0.25])
    evaluator.update(ground_truth, only(predictions, "probabilities"))
    result = evaluator.result()["classification"]
    # Image 0 now missed (0.7 < 0.8), image 1 flagged (0.3 >= 0.25): FN 1, FP 1.
    assert result["accuracy"] == 0.0
    assert result["per_class"]["pit"]["threshold"] == 0.25


def test_bad_arguments_and_batches_are_named():
    with pytest.raises(ValueError, match="`tasks`"):
        Evaluator(CLASSES, ("segmentation", "counting"))
    with pytest.raises(ValueError, match="`thresholds`"):
        Evaluator(CLASSES, ("classification",), thresholds=[0.5])
    ground_truth, predictions = make_batch()
    evaluator = Evaluator(CLASSES, ("classification", "segmentation"))
    with pytest.raises(KeyError, match="`predictions` has no `masks`"):
        evaluator.update(ground_truth, only(predictions, "probabilities"))
    predictions["masks"] = predictions["masks"][:, :3]
    with pytest.raises(ValueError, match=r"predictions\['masks'\]` must have shape"):
        evaluator.update(ground_truth, predictions)
    ground_truth, predictions = make_batch()
    predictions["num_detections"] = np.array([3, 0])
    with pytest.raises(ValueError, match="num_detections"):
        Evaluator(CLASSES, ("detection",)).update(ground_truth, predictions)
