import math

import numpy as np
import pytest

from defect_aux_net.evaluation.precision_recall import (
    average_precision,
    best_f1_threshold,
    best_f1_thresholds,
    precision_recall_curve,
    precision_recall_f1,
)

LABELS = [1, 0, 1, 0]
SCORES = [0.9, 0.8, 0.7, 0.6]


def test_curve_at_each_distinct_score():
    # >= 0.9: TP 1 FP 0; >= 0.8: 1/1; >= 0.7: 2/1; >= 0.6: 2/2 (2 positives).
    precision, recall, thresholds = precision_recall_curve(LABELS, SCORES)
    np.testing.assert_allclose(thresholds, [0.6, 0.7, 0.8, 0.9])
    np.testing.assert_allclose(precision, [0.5, 2 / 3, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(recall, [1.0, 1.0, 0.5, 0.5, 0.0])


def test_average_precision_sums_recall_steps_times_precision():
    # Recall steps at 0.9 (0 -> 0.5, P 1) and 0.7 (0.5 -> 1, P 2/3).
    assert average_precision(LABELS, SCORES) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert average_precision([0, 1, 1], [0.1, 0.8, 0.9]) == pytest.approx(1.0)
    # Tied scores enter together: >= 0.5 gives TP 1 FP 1, >= 0.2 gives TP 2 FP 1.
    assert average_precision([1, 0, 1], [0.5, 0.5, 0.2]) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    no_positive = average_precision([0, 0], [0.3, 0.9])
    assert no_positive == 0.0 and math.copysign(1.0, no_positive) == 1.0  # not -0.0


def test_best_f1_threshold_and_errors_there():
    # F1 at 0.9, 0.8, 0.7, 0.6: 2/3, 1/2, 4/5, 2/3.
    assert best_f1_threshold(LABELS, SCORES) == pytest.approx(
        {"threshold": 0.7, "f1": 0.8, "fp": 1, "fn": 0}
    )


def test_equal_f1_keeps_the_lowest_threshold():
    # F1 at 0.9 (TP 1, FN 1) and at 0.6 (TP 2, FP 2) are both 2/3.
    result = best_f1_threshold([1, 0, 0, 1], [0.9, 0.8, 0.7, 0.6])
    assert result == pytest.approx({"threshold": 0.6, "f1": 2 / 3, "fp": 2, "fn": 0})


def test_without_positives_the_default_threshold_is_used():
    assert best_f1_threshold([0, 0, 0], [0.2, 0.6, 0.7]) == {
        "threshold": 0.5, "f1": 0.0, "fp": 2, "fn": 0,
    }


def test_best_f1_thresholds_per_class():
    labels = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]])
    probabilities = np.array(
        [[0.9, 0.5, 0.1], [0.8, 0.4, 0.9], [0.7, 0.3, 0.2], [0.6, 0.2, 0.3]]
    )
    # Class 1 F1 at 0.5, 0.4, 0.3, 0.2: 0, 2/3, 1/2, 2/5. Class 2 has no positive.
    np.testing.assert_allclose(best_f1_thresholds(labels, probabilities), [0.7, 0.4, 0.5])


def test_zero_over_zero_is_zero():
    precision, recall, f1 = precision_recall_f1([0, 3], [0, 1], [0, 0])
    np.testing.assert_allclose(precision, [0.0, 0.75])
    np.testing.assert_allclose(recall, [0.0, 1.0])
    np.testing.assert_allclose(f1, [0.0, 2 * 0.75 / 1.75])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="same number of elements"):
        average_precision([1, 0], [0.5])
    with pytest.raises(ValueError, match="`labels` must be 0 or 1"):
        average_precision([2, 0], [0.5, 0.1])
    with pytest.raises(ValueError, match=r"\[N, K\]"):
        best_f1_thresholds(np.zeros((3, 2)), np.zeros((3, 1)))
