import json

import numpy as np
from PIL import Image

from defect_aux_net.evaluation.evaluator import Evaluator
from defect_aux_net.evaluation.model_evaluation import write_evaluation
from defect_aux_net.inference.postprocessing import ImageRule


def filled_evaluator(tasks, image_rule=None):
    evaluator = Evaluator(
        ["scratch", "pit"], tasks, thresholds=[0.5, 0.3], image_rule=image_rule
    )
    masks = np.zeros((3, 4, 4, 2))
    masks[0, :2, :2, 0] = 1
    evaluator.update(
        {"labels": np.array([[1, 0], [0, 1], [0, 0]]), "masks": masks,
         "has_mask": np.ones(3, bool)},
        # scratch found, pit missed, the defect-free image rejected as pit.
        {"probabilities": np.array([[0.8, 0.1], [0.2, 0.1], [0.1, 0.4]]), "masks": masks},
    )
    return evaluator


def test_counts_and_the_confusion_matrix_are_written_beside_the_metrics(tmp_path):
    output = tmp_path / "metrics_test.json"
    write_evaluation(filled_evaluator(("classification",)), str(output))

    metrics = json.loads(output.read_text())
    classification = metrics["classification"]
    # Image level: TP (image 0), FN (image 1: a missed defect), FP (image 2: a false reject).
    assert [classification[name] for name in ("tp", "fp", "fn", "tn")] == [1, 1, 1, 0]
    assert [metrics["classification"]["per_class"]["pit"][name] for name in
            ("tp", "fp", "fn", "tn", "threshold")] == [0, 1, 1, 1, 0.3]
    assert classification["confusion_matrix"]["counts"] == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]
    assert "missed defective images" in (tmp_path / "metrics_test.md").read_text()
    with Image.open(tmp_path / "metrics_test_confusion_matrix.png") as image:
        assert image.format == "PNG"


def test_without_classification_no_confusion_matrix_is_drawn(tmp_path):
    output = tmp_path / "metrics_test.json"
    write_evaluation(filled_evaluator(("segmentation",)), str(output))
    assert (tmp_path / "metrics_test_pr_curves.png").exists()
    assert not (tmp_path / "metrics_test_confusion_matrix.png").exists()
    assert {"tp", "fp", "fn", "tn"} <= set(json.loads(output.read_text())["image_ap"])


def test_the_image_rule_is_written_with_the_thresholds(tmp_path):
    output = tmp_path / "metrics_test.json"
    rule = ImageRule.from_weights({"classification": 0.4, "mask": 0.6}, 0.7)
    write_evaluation(filled_evaluator(("classification", "segmentation"), rule), str(output))
    metrics = json.loads(output.read_text())
    assert metrics["thresholds"]["image_rule"] == {
        "classification": 0.4, "mask": 0.6, "detection": 0.0, "threshold": 0.7
    }
    # Fused: 0.4 * 0.8 + 0.6 * 1 = 0.92, 0.4 * 0.2 = 0.08, 0.4 * 0.4 = 0.16; at 0.7
    # image 0 is flagged, the missed pit (image 1) and the defect-free image are not.
    assert metrics["image_ap"]["score"] == "fused"
    assert [metrics["image_ap"]["is_defective"][name] for name in ("tp", "fp", "fn", "tn")] == [
        1, 0, 1, 1
    ]
    table = (tmp_path / "metrics_test.md").read_text()
    assert "| image_rule |" in table and "| is_defective |" in table
