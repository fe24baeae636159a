"""Precision-recall curves, average precision and best-F1 thresholds of binary scores.

Written by hand because scikit-learn is not a dependency; the curve and the average
precision follow `sklearn.metrics.precision_recall_curve` and `average_precision_score`,
which the two-stage network's evaluation (Bozic et al., ICPR 2020) uses. Throughout,
0/0 counts as 0.0 for precision, recall and F1.
"""

import numpy as np

# Used when no threshold can be chosen from the data (no positive example).
from defect_aux_net.inference.postprocessing import DEFAULT_THRESHOLD


def safe_ratio(numerator, denominator):
    """`numerator / denominator` elementwise, 0.0 where the denominator is 0."""
    numerator = np.asarray(numerator, np.float64)
    denominator = np.asarray(denominator, np.float64)
    out = np.zeros(np.broadcast(numerator, denominator).shape)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def precision_recall_f1(tp, fp, fn):
    """Precision, recall and F1 (paper eq. 7-9) from counts, 0/0 counted as 0.0.

    Args:
      tp: true positive count(s).
      fp: false positive count(s).
      fn: false negative count(s).

    Returns:
      `(precision, recall, f1)`, float arrays shaped like the counts.
    """
    tp = np.asarray(tp, np.float64)
    precision = safe_ratio(tp, tp + fp)
    recall = safe_ratio(tp, tp + fn)
    f1 = safe_ratio(2 * precision * recall, precision + recall)
    return precision, recall, f1


def _check_binary_inputs(labels, scores):
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError(
            f"`labels` and `scores` must have the same number of elements, got "
            f"{labels.size} and {scores.size}."
        )
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"`labels` must be 0 or 1, got values {np.unique(labels)}.")
    return labels.astype(bool), scores


def _counts_per_threshold(labels, scores):
    """True/false positive counts at each distinct score, thresholds descending."""
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    # The last index of each run of equal scores: ties enter the curve together.
    last_of_run = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tps = np.cumsum(labels)[last_of_run]
    fps = (last_of_run + 1) - tps
    return scores[last_of_run], tps, fps


def precision_recall_curve(labels, scores):
    """Precision and recall at every distinct score, as scikit-learn returns them.

    An example is predicted positive when its score is >= the threshold.

    Args:
      labels: 0/1 ground truth, any shape.
      scores: scores of the same size.

    Returns:
      `(precision, recall, thresholds)`: `thresholds` ascending (the distinct scores);
      `precision[i]`, `recall[i]` at `thresholds[i]`, followed by one last point
      (precision 1, recall 0) that has no threshold. Recall is 0 everywhere when there
      is no positive example.
    """
    labels, scores = _check_binary_inputs(labels, scores)
    if scores.size == 0:
        return np.ones(1), np.zeros(1), np.zeros(0)
    thresholds, tps, fps = _counts_per_threshold(labels, scores)
    precision = safe_ratio(tps, tps + fps)
    recall = safe_ratio(tps, labels.sum())
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1]


def average_precision(labels, scores):
    """Area under the PR curve as `sklearn.metrics.average_precision_score`.

    `AP = sum_n (R_n - R_{n-1}) P_n` over thresholds from high to low, with `R_0 = 0`
    (no interpolation). 0.0 when there is no positive example.

    Args:
      labels: 0/1 ground truth, any shape.
      scores: scores of the same size.

    Returns:
      float average precision.
    """
    return area_under_curve(*precision_recall_curve(labels, scores)[:2])


def area_under_curve(precision, recall):
    """Average precision of a curve ordered as `precision_recall_curve` returns it."""
    # `+ 0.0` turns the -0.0 of an all-zero sum into 0.0.
    return float(-np.sum(np.diff(recall) * np.asarray(precision)[:-1])) + 0.0


def best_f1_threshold(labels, scores):
    """The score threshold with the highest F1, and the errors made there.

    As the two-stage network's code: thresholds are the distinct scores, an example is
    positive when its score is >= the threshold, and among equal F1 the lowest threshold
    wins. Without any positive example F1 is 0 everywhere, so `DEFAULT_THRESHOLD` is
    used.

    Args:
      labels: 0/1 ground truth, any shape.
      scores: scores of the same size.

    Returns:
      dict with `threshold`, `f1`, `fp` and `fn` (python float/int).
    """
    labels, scores = _check_binary_inputs(labels, scores)
    if not labels.any():
        threshold = DEFAULT_THRESHOLD
    else:
        thresholds, tps, fps = _counts_per_threshold(labels, scores)
        _, _, f1 = precision_recall_f1(tps, fps, labels.sum() - tps)
        # Thresholds are descending: the last maximum is the lowest threshold.
        threshold = float(thresholds[f1.size - 1 - np.argmax(f1[::-1])])
    predicted = scores >= threshold
    tp = int(np.sum(predicted & labels))
    fp = int(np.sum(predicted & ~labels))
    fn = int(np.sum(~predicted & labels))
    _, _, f1 = precision_recall_f1(tp, fp, fn)
    return {"threshold": float(threshold), "f1": float(f1), "fp": fp, "fn": fn}


def best_f1_thresholds(labels, probabilities):
    """Per-class thresholds maximising each class's F1 (`best_f1_threshold`).

    Args:
      labels: `[N, K]` multi-hot ground truth.
      probabilities: `[N, K]` class probabilities.

    Returns:
      float64 `[K]` thresholds; `DEFAULT_THRESHOLD` for a class without positives.
    """
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities)
    if labels.ndim != 2 or labels.shape != probabilities.shape:
        raise ValueError(
            f"`labels` and `probabilities` must both be [N, K], got shapes "
            f"{labels.shape} and {probabilities.shape}."
        )
    return np.array(
        [
            best_f1_threshold(labels[:, k], probabilities[:, k])["threshold"]
            for k in range(labels.shape[1])
        ],
        np.float64,
    )
