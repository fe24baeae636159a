import math
import warnings
from fractions import Fraction

import numpy as np
import pytest

from defect_aux_net.evaluation.precision_recall import (
    average_precision,
    best_f1_threshold,
    best_f1_thresholds,
    confusion_counts,
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
    # F1 at 0.9, 0.8, 0.7, 0.6: 2/3, 1/2, 4/5, 2/3. At >= 0.7: TP 2, FP 1, TN 1; the
    # threshold midway to the next lower score, 0.6, makes the same decisions.
    assert best_f1_threshold(LABELS, SCORES) == pytest.approx(
        {"threshold": 0.65, "precision": 2 / 3, "recall": 1.0, "f1": 0.8,
         "tp": 2, "fp": 1, "fn": 0, "tn": 1}
    )


def test_equal_f1_keeps_the_lowest_threshold():
    # F1 at 0.9 (TP 1, FN 1) and at 0.6 (TP 2, FP 2) are both 2/3. Nothing is lower
    # than 0.6: it stays.
    result = best_f1_threshold([1, 0, 0, 1], [0.9, 0.8, 0.7, 0.6])
    assert result == pytest.approx(
        {"threshold": 0.6, "precision": 0.5, "recall": 1.0, "f1": 2 / 3,
         "tp": 2, "fp": 2, "fn": 0, "tn": 0}
    )


def test_a_tie_split_by_rounding_still_takes_the_lowest_threshold():
    # F1 is 2/3 at >= 0.8 (TP 2, FN 2) and at >= 0.5 (TP 3, FP 2, FN 1); 2PR / (P + R)
    # gives 0.6666666666666666 and 0.6666666666666665, so a float comparison picks 0.8.
    # 0.5 wins, and the threshold is midway to 0.4.
    labels = [1, 1, 0, 0, 1, 0, 0, 0, 1]
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    result = best_f1_threshold(labels, scores)
    assert result == pytest.approx(
        {"threshold": 0.45, "precision": 0.6, "recall": 0.75, "f1": 2 / 3,
         "tp": 3, "fp": 2, "fn": 1, "tn": 3}
    )


def brute_force_best_f1_threshold(labels, scores):
    """The rule by enumeration with exact fractions: best F1, then the lowest threshold,
    then midway to the next lower score."""
    labels = np.asarray(labels, bool)
    best = None
    distinct = sorted(set(scores.tolist()), reverse=True)
    for index, threshold in enumerate(distinct):
        predicted = scores >= threshold
        tp = int(np.sum(predicted & labels))
        fp, fn = int(np.sum(predicted & ~labels)), int(np.sum(~predicted & labels))
        f1 = Fraction(2 * tp, 2 * tp + fp + fn)
        if best is None or f1 >= best[0]:
            lower = distinct[index + 1] if index + 1 < len(distinct) else None
            best = (f1, threshold if lower is None else (threshold + lower) / 2)
    return best[1]


def test_best_f1_threshold_follows_the_rule_on_random_inputs():
    rng = np.random.default_rng(0)
    for _ in range(300):
        size = int(rng.integers(1, 30))
        # Few distinct scores: many ties of scores and of F1.
        scores = rng.integers(0, 8, size) / 8
        labels = (rng.random(size) < 0.4).astype(int)
        labels[0] = 1
        result = best_f1_threshold(labels, scores)
        assert result["threshold"] == pytest.approx(brute_force_best_f1_threshold(labels, scores))
        predicted = scores >= result["threshold"]
        assert (result["tp"], result["fp"], result["fn"], result["tn"]) == (
            int(np.sum(predicted & (labels == 1))), int(np.sum(predicted & (labels == 0))),
            int(np.sum(~predicted & (labels == 1))), int(np.sum(~predicted & (labels == 0))),
        )


@pytest.mark.parametrize(
    "labels, scores, threshold, tp, fp",
    [
        # Separable: defect-free at most 0.3, defective from 0.99. F1 at 1.0, 0.99, 0.3:
        # 2/3, 1, 4/5; the threshold is the middle of the gap, not its edge at 0.99.
        ([0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.99, 1.0], 0.645, 2, 0),
        # Overlapping: F1 at 0.8, 0.6, 0.5, 0.4, 0.2: 1/2, 4/5, 2/3, 4/7, 2/3. The best,
        # 0.6 (TP 2, FN 1), moves midway to 0.5.
        ([1, 0, 1, 0, 1, 0], [0.8, 0.5, 0.6, 0.4, 0.2, 0.2], 0.55, 2, 0),
        # Tied scores: 0.7 and 0.3 each hold a defective and a defect-free image. F1 at
        # 0.9, 0.7, 0.3, 0.1: 1/2, 2/3, 3/4 (TP 3, FP 2), 2/3: 0.3, midway to 0.1.
        ([1, 1, 0, 1, 0, 0], [0.9, 0.7, 0.7, 0.3, 0.3, 0.1], 0.2, 3, 2),
        # Tied F1: 2/3 at 0.9 (TP 1, FN 1) and at 0.5 (TP 2, FP 2); the lower, 0.5,
        # moves midway to 0.1.
        ([1, 0, 0, 1, 0], [0.9, 0.8, 0.7, 0.5, 0.1], 0.3, 2, 2),
    ],
)
def test_the_threshold_lies_midway_below_the_best_score(labels, scores, threshold, tp, fp):
    result = best_f1_threshold(labels, scores)
    assert result["threshold"] == pytest.approx(threshold)
    # The decisions (and counts) are the best score's.
    assert (result["tp"], result["fp"]) == (tp, fp)


@pytest.mark.parametrize("upper", [0.75, float(np.nextafter(np.float32(0.75), np.float32(1)))])
def test_the_threshold_separates_neighbouring_float32_scores_in_float32(upper):
    # Adjacent float32 scores: their midpoint rounds to one of them in float32 (ties to
    # even: upward for one pair, downward for the other). Compared in float32, as the
    # exported graphs do, the threshold must still leave the lower score negative.
    lower = float(np.nextafter(np.float32(upper), np.float32(0)))
    threshold = best_f1_threshold([0, 1], [lower, upper])["threshold"]
    assert np.float32(lower) < np.float32(threshold) <= np.float32(upper)
    assert lower < threshold <= upper
    assert best_f1_threshold([0, 1], [0.5, 0.75])["threshold"] == 0.625


def test_without_positives_the_default_threshold_is_used():
    assert best_f1_threshold([0, 0, 0], [0.2, 0.6, 0.7]) == {
        "threshold": 0.5, "precision": 0.0, "recall": 0.0, "f1": 0.0,
        "tp": 0, "fp": 2, "fn": 0, "tn": 1,
    }


def test_best_f1_thresholds_per_class():
    labels = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]])
    probabilities = np.array(
        [[0.9, 0.5, 0.1], [0.8, 0.4, 0.9], [0.7, 0.3, 0.2], [0.6, 0.2, 0.3]]
    )
    # Class 0 as LABELS: 0.7, midway to 0.6. Class 1 F1 at 0.5, 0.4, 0.3, 0.2: 0, 2/3,
    # 1/2, 2/5: 0.4, midway to 0.3. Class 2 has no positive: the default 0.5.
    np.testing.assert_allclose(best_f1_thresholds(labels, probabilities), [0.65, 0.35, 0.5])


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
    with pytest.raises(ValueError, match=r"`predicted` must both be \[N, K\]"):
        confusion_counts(np.zeros((3, 2)), np.zeros((2, 2)))


def test_without_positives_recall_is_zero_and_nothing_warns():
    # scikit-learn would set recall to 1 at every threshold and warn.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        precision, recall, thresholds = precision_recall_curve([0, 0, 0], [0.2, 0.7, 0.2])
        assert average_precision([0, 0], [0.1, 0.9]) == 0.0
        best_f1_threshold([0, 0], [0.1, 0.9])
    np.testing.assert_array_equal(thresholds, [0.2, 0.7])
    np.testing.assert_array_equal(precision, [0, 0, 1])
    np.testing.assert_array_equal(recall, [0, 0, 0])


def test_empty_input_gives_the_last_point_and_zero_ap():
    precision, recall, thresholds = precision_recall_curve([], [])
    assert (precision.tolist(), recall.tolist(), thresholds.size) == ([1.0], [0.0], 0)
    assert average_precision([], []) == 0.0


def test_confusion_counts_per_class():
    labels = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
    predicted = np.array([[1, 1], [0, 1], [0, 0], [1, 0]])
    counts = confusion_counts(labels, predicted)
    # Class 0: TP (row 0), FN (row 1), TN (row 2), FP (row 3).
    # Class 1: FP (row 0), TP (row 1), TN (row 2), FN (row 3).
    assert {name: value.tolist() for name, value in counts.items()} == {
        "tp": [1, 1], "fp": [1, 1], "fn": [1, 1], "tn": [1, 1],
    }


@pytest.mark.parametrize(
    "labels, predicted, expected",
    [
        # One class: its column is the class, not the two classes 0 and 1.
        ([[1], [0], [1]], [[1], [1], [0]], {"tp": [1], "fp": [1], "fn": [1], "tn": [0]}),
        # No positive label or decision at all: three true negatives.
        ([[0], [0], [0]], [[0], [0], [0]], {"tp": [0], "fp": [0], "fn": [0], "tn": [3]}),
        # No image.
        (np.zeros((0, 2)), np.zeros((0, 2)), dict.fromkeys(("tp", "fp", "fn", "tn"), [0, 0])),
    ],
)
def test_confusion_counts_of_one_class_and_of_nothing(labels, predicted, expected):
    counts = confusion_counts(labels, predicted)
    assert {name: value.tolist() for name, value in counts.items()} == expected
