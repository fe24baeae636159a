"""Precision-recall curve plots."""

import io
import os

import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from defect_aux_net.evaluation.precision_recall import area_under_curve


def plot_pr_curves(curves: dict, path) -> None:
    """Writes one PNG with a precision-recall line per curve, its AP in the legend.

    Uses a bare `matplotlib.figure.Figure`, which draws with the Agg backend without
    touching pyplot's global state, so it works on machines without a display.

    Args:
      curves: `{name: (precision, recall, thresholds)}` as `Evaluator.pr_curves()`
        returns (precision and recall ordered by increasing threshold, ending at
        precision 1, recall 0).
      path: the PNG file to write; written with `tf.io.gfile`, so it may be a `gs://`
        path like the other outputs of a TPU run.
    """
    if not curves:
        raise ValueError("`curves` must hold at least one curve, got none.")
    figure = Figure(figsize=(6, 5))
    axes = figure.subplots()
    for name, (precision, recall, _) in curves.items():
        precision = np.asarray(precision, np.float64)
        recall = np.asarray(recall, np.float64)
        if precision.shape != recall.shape or precision.ndim != 1:
            raise ValueError(
                f"`curves['{name}']` precision and recall must be 1-D of equal length, got "
                f"shapes {precision.shape} and {recall.shape}."
            )
        # "post": each precision holds down to the next (lower) recall, as AP sums it.
        axes.step(
            recall, precision, where="post",
            label=f"{name} (AP {area_under_curve(precision, recall):.3f})",
        )
    axes.set_xlabel("Recall")
    axes.set_ylabel("Precision")
    # A little margin so lines on recall 0 or 1 stay visible.
    axes.set_xlim(-0.01, 1.01)
    axes.set_ylim(0.0, 1.05)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower left")
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    with tf.io.gfile.GFile(os.fspath(path), "wb") as file:
        file.write(png.getvalue())
