"""Precision-recall curves, average precision, best-F1 thresholds and confusion counts.

scikit-learn computes them (`precision_recall_curve`, `average_precision_score`,
`multilabel_confusion_matrix`), as the two-stage network's evaluation (Bozic et al.,
ICPR 2020) does. The project's rules that scikit-learn does not follow are kept here:

- 0/0 counts as 0.0 for precision, recall and F1: without any positive example recall
  is 0 at every threshold (scikit-learn sets it to 1 and warns) and AP is 0.0;
- an empty split gives the curve's last point alone and AP 0.0 (scikit-learn raises);
- among equal best F1 the lowest threshold wins (the two-stage network's code;
  scikit-learn has no best-F1 threshold), F1 compared as computed from counts, and the
  threshold returned lies midway between that score and the next lower one (the same
  decisions on these scores, away from any one image's score);
- one column of multi-hot labels is one class (`multilabel_confusion_matrix` reads a
  single column as the two classes 0 and 1).
"""

import numpy as np
from sklearn import metrics

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


def confusion_counts(labels, predicted) -> dict:
    """Per-class true/false positives and negatives of multi-hot decisions.

    Args:
      labels: `[N, K]` multi-hot 0/1 ground truth.
      predicted: `[N, K]` 0/1 (or bool) decisions.

    Returns:
      `{"tp", "fp", "fn", "tn"}`, each an int64 `[K]` array (zeros when N is 0).
    """
    labels = np.asarray(labels).astype(np.int64)
    predicted = np.asarray(predicted).astype(np.int64)
    if labels.ndim != 2 or labels.shape != predicted.shape:
        raise ValueError(
            f"`labels` and `predicted` must both be [N, K], got shapes {labels.shape} and "
            f"{predicted.shape}."
        )
    if labels.shape[0] == 0:
        matrices = np.zeros((labels.shape[1], 2, 2), np.int64)
    elif labels.shape[1] == 1:
        matrices = metrics.multilabel_confusion_matrix(labels[:, 0], predicted[:, 0], labels=[1])
    else:
        matrices = metrics.multilabel_confusion_matrix(labels, predicted)
    # scikit-learn's layout: [[tn, fp], [fn, tp]] per class.
    return {
        "tp": matrices[:, 1, 1], "fp": matrices[:, 0, 1],
        "fn": matrices[:, 1, 0], "tn": matrices[:, 0, 0],
    }


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


def precision_recall_curve(labels, scores):
    """Precision and recall at every distinct score (`sklearn.metrics.precision_recall_curve`).

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
    if not labels.any():
        # Every prediction is a false positive: precision 0, and recall 0/0 = 0.
        thresholds = np.unique(scores)
        return np.r_[np.zeros(thresholds.size), 1.0], np.zeros(thresholds.size + 1), thresholds
    return metrics.precision_recall_curve(labels, scores)


def average_precision(labels, scores):
    """Area under the PR curve (`sklearn.metrics.average_precision_score`).

    `AP = sum_n (R_n - R_{n-1}) P_n` over thresholds from high to low, with `R_0 = 0`
    (no interpolation). 0.0 when there is no positive example.

    Args:
      labels: 0/1 ground truth, any shape.
      scores: scores of the same size.

    Returns:
      float average precision.
    """
    labels, scores = _check_binary_inputs(labels, scores)
    if not labels.any():
        return 0.0
    return float(metrics.average_precision_score(labels, scores))


def area_under_curve(precision, recall):
    """Average precision of a curve ordered as `precision_recall_curve` returns it.

    The sum `average_precision_score` computes, for a curve already at hand (plots).
    """
    # `+ 0.0` turns the -0.0 of an all-zero sum into 0.0.
    return float(-np.sum(np.diff(recall) * np.asarray(precision)[:-1])) + 0.0


def best_f1_threshold(labels, scores):
    """The score threshold with the highest F1, and the counts made there.

    As the two-stage network's code: candidate thresholds are the distinct scores, an
    example is positive when its score is >= the threshold, and among equal F1 the
    lowest candidate wins. The threshold returned is then the midpoint between that
    score and the next lower distinct score (`gap_midpoint`), which makes the same
    decisions on these scores. Why: the best candidate is always some example's own
    score, and where the split separates the classes with a wide gap (highest
    defect-free score 0.3, lowest defective score 0.99) it sits at the gap's far end,
    so that a defect scored a little lower on new images is missed; the split cannot
    tell any point of the gap from its end, and the middle leaves both classes the
    widest margin. The lowest score has no lower neighbour and stays. Without any
    positive example F1 is 0 everywhere, so `DEFAULT_THRESHOLD` is used.

    Args:
      labels: 0/1 ground truth, any shape.
      scores: scores of the same size.

    Returns:
      dict with `threshold`, `precision`, `recall`, `f1` and the counts `tp`, `fp`,
      `fn`, `tn` at that threshold (python float/int).
    """
    labels, scores = _check_binary_inputs(labels, scores)
    if not labels.any():
        threshold = DEFAULT_THRESHOLD
    else:
        thresholds = np.unique(scores)  # Ascending.
        # Examples at or above each threshold: all of them, and the positive ones.
        predicted = scores.size - np.searchsorted(np.sort(scores), thresholds)
        tps = labels.sum() - np.searchsorted(np.sort(scores[labels]), thresholds)
        # F1 = 2TP / (2TP + FP + FN) from integers is one rounding, so equal F1 compare
        # equal; 2PR / (P + R) of rounded P and R splits about 0.4% of ties.
        f1 = 2 * tps / (predicted + labels.sum())
        # The first maximum is the lowest threshold.
        best = int(np.argmax(f1))
        threshold = float(thresholds[best])
        if best > 0:
            threshold = gap_midpoint(thresholds[best - 1], thresholds[best])
    counts = confusion_counts(labels[:, None], (scores >= threshold)[:, None])
    counts = {name: int(value[0]) for name, value in counts.items()}
    precision, recall, f1 = precision_recall_f1(counts["tp"], counts["fp"], counts["fn"])
    return {
        "threshold": float(threshold),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        **counts,
    }


def gap_midpoint(lower: float, upper: float) -> float:
    """`(lower + upper) / 2`, or `upper` when float32 cannot put it above `lower`.

    Models score in float32 and the exported graphs compare in float32: a midpoint
    that rounds to `lower` there would turn the example scored `lower` positive.
    """
    middle = float(lower) + (float(upper) - float(lower)) / 2
    if middle <= lower or np.float32(middle) <= np.float32(lower):
        return float(upper)
    return middle


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
