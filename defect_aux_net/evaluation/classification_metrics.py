"""Classification metrics of Defect-Aux-Net (paper section IV-E, eq. 7-10)."""

from typing import Sequence

import numpy as np

from defect_aux_net.evaluation.confusion_matrix import image_confusion_matrix
from defect_aux_net.evaluation.precision_recall import (
    confusion_counts,
    precision_recall_curve,
    precision_recall_f1,
    safe_ratio,
)


class ClassificationMetrics:
    """Accumulates image-level and per-class classification results over a split.

    Image level (the paper's defective vs defect-free): an image is predicted defective
    when any class probability is >= that class's threshold, and is defective when any
    of its labels is 1. Its `fn` are missed defective images, its `fp` defect-free
    images rejected. Per class, an image counts for class k by its label k and its
    decision at class k's threshold. Precision, recall and F1 count 0/0 as 0.0;
    accuracy of an empty split is 0.0.

    Args:
      class_names: the K class names.
      thresholds: K per-class decision thresholds.
    """

    def __init__(self, class_names: Sequence[str], thresholds: Sequence[float]):
        self.class_names = list(class_names)
        self.thresholds = np.asarray(thresholds, np.float64)
        # [N, K] each, small next to masks; the counts, curves and confusion matrix are
        # computed from them at the end.
        self._labels = []
        self._probabilities = []

    def update(self, labels, probabilities):
        """Adds one batch.

        Args:
          labels: `[B, K]` multi-hot 0/1 ground truth.
          probabilities: `[B, K]` predicted class probabilities.
        """
        self._labels.append(np.asarray(labels).astype(bool))
        self._probabilities.append(np.asarray(probabilities, np.float64))

    def _all(self):
        empty = np.zeros((0, len(self.class_names)))
        if not self._labels:
            return empty.astype(bool), empty
        return np.concatenate(self._labels), np.concatenate(self._probabilities)

    @staticmethod
    def _scores(counts):
        """Eq. 7-10 from counts, followed by the counts themselves (int)."""
        precision, recall, f1 = precision_recall_f1(counts["tp"], counts["fp"], counts["fn"])
        total = counts["tp"] + counts["fp"] + counts["tn"] + counts["fn"]
        accuracy = safe_ratio(counts["tp"] + counts["tn"], total)
        scores = {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1}
        return {name: np.asarray(value, np.float64) for name, value in scores.items()} | {
            name: np.asarray(counts[name], np.int64) for name in ("tp", "fp", "fn", "tn")
        }

    def result(self) -> dict:
        """Returns the metrics as JSON-serialisable python numbers.

        Returns:
          dict with image-level `accuracy`, `precision`, `recall`, `f1`, the counts
          `tp`, `fp`, `fn` (missed defective images), `tn`, `exact_match` (share of
          images whose K decisions are all right), `top1_accuracy` (over the images with
          exactly one label, the share whose most probable class is that label: the
          accuracy of single-label sets such as NEU, threshold-free), `per_class`:
          `{name: {precision, recall, f1, accuracy, tp, fp, fn, tn, threshold,
          support}}` (support: the number of images with that label; the counts at
          that `threshold`) and `confusion_matrix` (`image_confusion_matrix`).
        """
        labels, probabilities = self._all()
        predicted = probabilities >= self.thresholds
        image_counts = confusion_counts(labels.any(axis=1)[:, None], predicted.any(axis=1)[:, None])
        image = {name: value.item() for name, value in self._scores(image_counts).items()}
        image["exact_match"] = float(
            safe_ratio(np.all(predicted == labels, axis=1).sum(), len(labels))
        )
        single = labels.sum(axis=1) == 1
        top1 = labels[single, probabilities[single].argmax(axis=1)] if single.any() else single
        image["top1_accuracy"] = float(safe_ratio(top1.sum(), single.sum()))
        per_class = self._scores(confusion_counts(labels, predicted))
        support = per_class["tp"] + per_class["fn"]
        image["per_class"] = {
            name: {
                **{metric: values[k].item() for metric, values in per_class.items()},
                "threshold": float(self.thresholds[k]),
                "support": int(support[k]),
            }
            for k, name in enumerate(self.class_names)
        }
        image["confusion_matrix"] = image_confusion_matrix(
            labels, probabilities, self.thresholds, self.class_names
        )
        return image

    def pr_curves(self) -> dict:
        """Returns `{"class/<name>": (precision, recall, thresholds)}` per class."""
        labels, probabilities = self._all()
        return {
            f"class/{name}": precision_recall_curve(labels[:, k], probabilities[:, k])
            for k, name in enumerate(self.class_names)
        }
