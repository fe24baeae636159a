import numpy as np
import pytest

from defect_aux_net.evaluation.classification_metrics import ClassificationMetrics

# Thresholds 0.5 and 0.3. Decisions per image and image-level outcome:
#   [1,0] vs [0.9,0.1]  -> [1,0]  TP, exact
#   [0,1] vs [0.2,0.25] -> [0,0]  FN
#   [0,0] vs [0.1,0.35] -> [0,1]  FP
#   [0,0] vs [0.4,0.2]  -> [0,0]  TN, exact
#   [1,1] vs [0.6,0.3]  -> [1,1]  TP, exact (0.3 >= 0.3)
LABELS = np.array([[1, 0], [0, 1], [0, 0], [0, 0], [1, 1]])
PROBABILITIES = np.array([[0.9, 0.1], [0.2, 0.25], [0.1, 0.35], [0.4, 0.2], [0.6, 0.3]])


def evaluate(batches):
    metrics = ClassificationMetrics(["scratch", "pit"], thresholds=[0.5, 0.3])
    for batch in batches:
        metrics.update(LABELS[batch], PROBABILITIES[batch])
    return metrics


def test_image_level_eq_7_to_10_and_per_class_counts():
    result = evaluate([slice(0, 2), slice(2, 5)]).result()
    # Image level: TP 2, FN 1, FP 1, TN 1.
    assert (result["tp"], result["fp"], result["fn"], result["tn"]) == (2, 1, 1, 1)
    assert result["precision"] == pytest.approx(2 / 3)
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(2 / 3)
    assert result["accuracy"] == pytest.approx(3 / 5)
    assert result["exact_match"] == pytest.approx(3 / 5)
    # Single-label images: [1,0] arg-max 0 right, [0,1] arg-max 1 (0.25 > 0.2) right.
    assert result["top1_accuracy"] == pytest.approx(2 / 2)
    # scratch: TP 2, TN 3. pit: TP 1, FP 1, FN 1, TN 2.
    assert result["per_class"]["scratch"] == pytest.approx(
        {"precision": 1.0, "recall": 1.0, "f1": 1.0, "accuracy": 1.0, "threshold": 0.5,
         "support": 2, "tp": 2, "fp": 0, "fn": 0, "tn": 3}
    )
    assert result["per_class"]["pit"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "accuracy": 0.6, "threshold": 0.3,
         "support": 2, "tp": 1, "fp": 1, "fn": 1, "tn": 2}
    )
    # Rows true, columns predicted (defect-free when no class reaches its threshold);
    # the image with two labels is left out.
    assert result["confusion_matrix"] == {
        "classes": ["scratch", "pit", "defect-free"],
        "counts": [[1, 0, 0], [0, 0, 1], [0, 1, 1]],
        "images_with_several_labels": 1,
    }
    assert result == evaluate([slice(0, 5)]).result()


def test_no_defect_anywhere_gives_zero_precision_recall_f1():
    metrics = ClassificationMetrics(["scratch"], thresholds=[0.5])
    metrics.update(np.zeros((3, 1)), np.full((3, 1), 0.1))
    result = metrics.result()
    assert (result["precision"], result["recall"], result["f1"]) == (0.0, 0.0, 0.0)
    assert result["accuracy"] == 1.0


def test_per_class_pr_curves():
    curves = evaluate([slice(0, 5)]).pr_curves()
    assert set(curves) == {"class/scratch", "class/pit"}
    precision, recall, thresholds = curves["class/pit"]
    # pit labels [0,1,0,0,1] at scores [0.1,0.25,0.35,0.2,0.3], from high to low score.
    np.testing.assert_allclose(thresholds, [0.1, 0.2, 0.25, 0.3, 0.35])
    np.testing.assert_allclose(recall, [1, 1, 1, 0.5, 0, 0])
    np.testing.assert_allclose(precision, [2 / 5, 2 / 4, 2 / 3, 1 / 2, 0, 1])


def test_top1_accuracy_counts_single_label_images_only():
    metrics = ClassificationMetrics(["a", "b", "c"], thresholds=[0.5, 0.5, 0.5])
    metrics.update(
        np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]]),
        # Right, wrong (b beats c), right; the last two have 2 and 0 labels.
        np.array([[0.4, 0.3, 0.1], [0.1, 0.6, 0.5], [0.2, 0.3, 0.1], [0, 0, 1], [1, 1, 1]]),
    )
    assert metrics.result()["top1_accuracy"] == pytest.approx(2 / 3)


def test_an_empty_split_gives_zero_counts():
    result = ClassificationMetrics(["scratch", "pit"], thresholds=[0.5, 0.5]).result()
    assert (result["tp"], result["fp"], result["fn"], result["tn"]) == (0, 0, 0, 0)
    assert result["per_class"]["pit"]["tn"] == 0 and result["accuracy"] == 0.0
    assert result["confusion_matrix"]["counts"] == [[0, 0], [0, 0]]
