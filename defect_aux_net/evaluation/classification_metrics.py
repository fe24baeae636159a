"""Classification metrics of Defect-Aux-Net (paper section IV-E, eq. 7-10)."""

from typing import Sequence

import numpy as np

from defect_aux_net.evaluation.precision_recall import (
    precision_recall_curve,
    precision_recall_f1,
    safe_ratio,
)

_COUNTS = ("tp", "fp", "tn", "fn")


class ClassificationMetrics:
    """Accumulates image-level and per-class classification results over a split.

    Image level (the paper's defective vs defect-free): an image is predicted defective
    when any class probability is >= that class's threshold, and is defective when any
    of its labels is 1. Precision, recall and F1 count 0/0 as 0.0; accuracy of an empty
    split is 0.0.

    Args:
      class_names: the K class names.
      thresholds: K per-class decision thresholds.
    """

    def __init__(self, class_names: Sequence[str], thresholds: Sequence[float]):
        self.class_names = list(class_names)
        self.thresholds = np.asarray(thresholds, np.float64)
        num_classes = len(self.class_names)
        # Per class: true/false positives and negatives.
        self._class_counts = {name: np.zeros(num_classes, np.int64) for name in _COUNTS}
        self._image_counts = dict.fromkeys(_COUNTS, 0)
        self._exact_matches = 0
        # Images with exactly one label, and those whose most probable class is it.
        self._single_label_images = 0
        self._top1_matches = 0
        # Kept for the per-class PR curves: [N, K] each, small next to masks.
        self._labels = []
        self._probabilities = []

    def update(self, labels, probabilities):
        """Adds one batch.

        Args:
          labels: `[B, K]` multi-hot 0/1 ground truth.
          probabilities: `[B, K]` predicted class probabilities.
        """
        labels = np.asarray(labels).astype(bool)
        probabilities = np.asarray(probabilities, np.float64)
        predicted = probabilities >= self.thresholds
        self._add_counts(self._class_counts, labels, predicted, axis=0)
        self._add_counts(self._image_counts, labels.any(axis=1), predicted.any(axis=1), axis=0)
        self._exact_matches += int(np.all(predicted == labels, axis=1).sum())
        single = labels.sum(axis=1) == 1
        self._single_label_images += int(single.sum())
        self._top1_matches += int(labels[single, probabilities[single].argmax(axis=1)].sum())
        self._labels.append(labels)
        self._probabilities.append(probabilities)

    @staticmethod
    def _add_counts(counts, labels, predicted, axis):
        counts["tp"] += np.sum(predicted & labels, axis=axis)
        counts["fp"] += np.sum(predicted & ~labels, axis=axis)
        counts["tn"] += np.sum(~predicted & ~labels, axis=axis)
        counts["fn"] += np.sum(~predicted & labels, axis=axis)

    @staticmethod
    def _scores(counts):
        precision, recall, f1 = precision_recall_f1(counts["tp"], counts["fp"], counts["fn"])
        total = counts["tp"] + counts["fp"] + counts["tn"] + counts["fn"]
        accuracy = safe_ratio(counts["tp"] + counts["tn"], total)
        return {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1}

    def result(self) -> dict:
        """Returns the metrics as JSON-serialisable python numbers.

        Returns:
          dict with image-level `accuracy`, `precision`, `recall`, `f1`, `exact_match`
          (share of images whose K decisions are all right), `top1_accuracy` (over the
          images with exactly one label, the share whose most probable class is that
          label: the accuracy of single-label sets such as NEU, threshold-free) and
          `per_class`:
          `{name: {precision, recall, f1, accuracy, threshold, support}}` (support: the
          number of images with that label).
        """
        image = {name: float(value) for name, value in self._scores(self._image_counts).items()}
        num_images = sum(self._image_counts.values())
        image["exact_match"] = float(safe_ratio(self._exact_matches, num_images))
        image["top1_accuracy"] = float(
            safe_ratio(self._top1_matches, self._single_label_images)
        )
        per_class_scores = self._scores(self._class_counts)
        support = self._class_counts["tp"] + self._class_counts["fn"]
        image["per_class"] = {
            name: {
                **{metric: float(values[k]) for metric, values in per_class_scores.items()},
                "threshold": float(self.thresholds[k]),
                "support": int(support[k]),
            }
            for k, name in enumerate(self.class_names)
        }
        return image

    def pr_curves(self) -> dict:
        """Returns `{"class/<name>": (precision, recall, thresholds)}` per class."""
        empty = np.zeros((0, len(self.class_names)))
        labels = np.concatenate(self._labels) if self._labels else empty
        probabilities = np.concatenate(self._probabilities) if self._probabilities else empty
        return {
            f"class/{name}": precision_recall_curve(labels[:, k], probabilities[:, k])
            for k, name in enumerate(self.class_names)
        }
