"""Per-image defect detection metrics of the two-stage network (Bozic et al., ICPR 2020)."""

import numpy as np

from defect_aux_net.evaluation.precision_recall import (
    average_precision,
    best_f1_threshold,
    precision_recall_curve,
)


class ImageDefectMetrics:
    """Accumulates one defect score per image and scores defective vs defect-free.

    `ap` is the area under the precision-recall curve (`average_precision`, as
    scikit-learn's `average_precision_score`); precision, recall, F1 and the counts `tp`,
    `fp` (defect-free images rejected), `fn` (missed defective images) and `tn` are
    taken at the score threshold with the best F1 on this split, as the paper reports
    misclassifications.
    """

    def __init__(self):
        self._labels = []
        self._scores = []

    def update(self, is_defective, scores):
        """Adds one batch.

        Args:
          is_defective: `[B]` bool ground truth.
          scores: `[B]` image defect scores.
        """
        self._labels.append(np.asarray(is_defective).astype(np.int64).reshape(-1))
        self._scores.append(np.asarray(scores, np.float64).reshape(-1))

    def _all(self):
        if not self._labels:
            return np.zeros(0, np.int64), np.zeros(0)
        return np.concatenate(self._labels), np.concatenate(self._scores)

    def result(self) -> dict:
        """Returns `{ap, threshold, precision, recall, f1, tp, fp, fn, tn}` as python numbers.

        See `best_f1_threshold`.
        """
        labels, scores = self._all()
        return {"ap": average_precision(labels, scores), **best_f1_threshold(labels, scores)}

    def pr_curve(self):
        """Returns `(precision, recall, thresholds)` of the image scores."""
        return precision_recall_curve(*self._all())
