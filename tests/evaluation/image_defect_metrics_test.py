import numpy as np
import pytest

from defect_aux_net.evaluation.image_defect_metrics import ImageDefectMetrics


def test_ap_and_errors_at_the_best_f1_threshold_over_batches():
    metrics = ImageDefectMetrics()
    metrics.update(np.array([True, False]), np.array([0.9, 0.8]))
    metrics.update(np.array([True, False]), np.array([0.7, 0.6]))
    assert metrics.result() == pytest.approx(
        {"ap": 0.5 * 1 + 0.5 * 2 / 3, "threshold": 0.65, "precision": 2 / 3, "recall": 1.0,
         "f1": 0.8, "tp": 2, "fp": 1, "fn": 0, "tn": 1}
    )
    precision, recall, thresholds = metrics.pr_curve()
    np.testing.assert_allclose(thresholds, [0.6, 0.7, 0.8, 0.9])
    np.testing.assert_allclose(recall, [1, 1, 0.5, 0.5, 0])


def test_empty_split():
    assert ImageDefectMetrics().result() == {
        "ap": 0.0, "threshold": 0.5, "precision": 0.0, "recall": 0.0, "f1": 0.0,
        "tp": 0, "fp": 0, "fn": 0, "tn": 0,
    }
