"""The image-level confusion matrix: each image's true class against its predicted class.

A K x K matrix needs one true and one predicted class per image. So it holds the images
with at most one label (all of them in single-label sets such as NEU-DET); an image with
several labels has no single true class and is left out, counted in
`images_with_several_labels`: its decisions are in the per-class `tp`/`fp`/`fn`/`tn`,
which are scikit-learn's multi-label confusion matrix (one 2 x 2 matrix per class).
"""

import io
import os
from typing import Sequence

import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure
from sklearn import metrics

DEFECT_FREE = "defect-free"


def image_confusion_matrix(labels, probabilities, thresholds, class_names: Sequence[str]) -> dict:
    """Counts of images per (true class, predicted class).

    When the split has defect-free images (no label), a `defect-free` row and column
    are added: an image is predicted defect-free when no class reaches its threshold,
    else it is predicted the most probable of the classes that reach theirs (the
    decisions of the per-class counts). Without defect-free images (NEU-DET) every
    image is predicted its most probable class, threshold-free: the diagonal's share
    is `top1_accuracy`.

    Args:
      labels: `[N, K]` multi-hot ground truth.
      probabilities: `[N, K]` class probabilities.
      thresholds: K per-class thresholds.
      class_names: the K class names.

    Returns:
      JSON-ready dict: `classes` (row and column names: the class names, then
      `defect-free` when present), `counts` (rows: true class, columns: predicted
      class; python ints) and `images_with_several_labels` (left out).
    """
    labels = np.asarray(labels).astype(bool)
    probabilities = np.asarray(probabilities, np.float64)
    num_classes = len(class_names)
    if labels.ndim != 2 or labels.shape[1] != num_classes or labels.shape != probabilities.shape:
        raise ValueError(
            f"`labels` and `probabilities` must both be [N, {num_classes}], got shapes "
            f"{labels.shape} and {probabilities.shape}."
        )
    label_counts = labels.sum(axis=1)
    kept = label_counts <= 1
    labels, probabilities = labels[kept], probabilities[kept]
    has_defect_free = bool((label_counts == 0).any())
    # An image without labels gets the defect-free index K.
    true = np.where(labels.any(axis=1), labels.argmax(axis=1), num_classes)
    if has_defect_free:
        reached = probabilities >= np.asarray(thresholds, np.float64)
        candidates = np.where(reached, probabilities, -np.inf)
        predicted = np.where(reached.any(axis=1), candidates.argmax(axis=1), num_classes)
    else:
        predicted = probabilities.argmax(axis=1)
    classes = list(class_names) + [DEFECT_FREE] * has_defect_free
    counts = np.zeros((len(classes), len(classes)), np.int64)
    if true.size:  # scikit-learn refuses an empty split.
        counts = metrics.confusion_matrix(true, predicted, labels=np.arange(len(classes)))
    return {
        "classes": classes,
        "counts": counts.tolist(),
        "images_with_several_labels": int((~kept).sum()),
    }


def plot_confusion_matrix(matrix: dict, path) -> None:
    """Writes the confusion matrix as a PNG: counts in the cells, coloured by row share.

    Each cell shows its image count; its colour is the count's share of the true
    class's images (the row), so classes with few images are read as easily as large
    ones. Uses a bare `matplotlib.figure.Figure` (Agg, no pyplot state).

    Args:
      matrix: `image_confusion_matrix`'s result.
      path: the PNG file to write (`tf.io.gfile`, so it may be on `gs://`).
    """
    classes = list(matrix["classes"])
    counts = np.asarray(matrix["counts"], np.int64)
    if counts.shape != (len(classes), len(classes)):
        raise ValueError(
            f"`matrix['counts']` must be {len(classes)} x {len(classes)} (one row and "
            f"column per class of {classes}), got shape {counts.shape}."
        )
    rows = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    size = 2.5 + 0.6 * len(classes)
    figure = Figure(figsize=(size + 1.5, size))
    axes = figure.subplots()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, label="share of the true class's images")
    for (row, column), count in np.ndenumerate(counts):
        axes.text(
            column, row, str(count), ha="center", va="center",
            color="white" if shares[row, column] > 0.5 else "black",
        )
    axes.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axes.set_yticks(range(len(classes)), classes)
    axes.set_xlabel("Predicted")
    axes.set_ylabel("True")
    title = f"{int(counts.sum())} images"
    left_out = matrix.get("images_with_several_labels", 0)
    if left_out:
        title += f"; {left_out} with several labels left out (see per-class counts)"
    axes.set_title(title, fontsize=9)
    figure.tight_layout()
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    with tf.io.gfile.GFile(os.fspath(path), "wb") as file:
        file.write(png.getvalue())
