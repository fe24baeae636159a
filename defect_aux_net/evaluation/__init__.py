"""Metrics of the papers for a split: classification, segmentation, detection, per-image AP,
with the confusion counts and matrix a quality engineer signs off on."""

from defect_aux_net.evaluation.confusion_matrix import (
    image_confusion_matrix,
    plot_confusion_matrix,
)
from defect_aux_net.evaluation.evaluator import Evaluator
from defect_aux_net.evaluation.markdown_report import metrics_markdown
from defect_aux_net.evaluation.pr_plots import plot_pr_curves
from defect_aux_net.evaluation.precision_recall import (
    average_precision,
    best_f1_threshold,
    best_f1_thresholds,
    confusion_counts,
    precision_recall_curve,
)

__all__ = [
    "Evaluator",
    "average_precision",
    "best_f1_threshold",
    "best_f1_thresholds",
    "confusion_counts",
    "image_confusion_matrix",
    "metrics_markdown",
    "plot_confusion_matrix",
    "plot_pr_curves",
    "precision_recall_curve",
]
