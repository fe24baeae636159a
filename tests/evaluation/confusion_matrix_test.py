import numpy as np
import pytest
from PIL import Image

from defect_aux_net.evaluation.confusion_matrix import (
    image_confusion_matrix,
    plot_confusion_matrix,
)


def test_single_label_set_uses_the_top_class_whatever_the_thresholds():
    # NEU-like: every image has one label, none is defect-free.
    labels = np.eye(3)[[0, 0, 1, 2, 2]]
    probabilities = np.array(
        [[0.5, 0.3, 0.2], [0.3, 0.6, 0.1], [0.2, 0.7, 0.1], [0.6, 0.1, 0.3], [0.1, 0.1, 0.8]]
    )
    matrix = image_confusion_matrix(labels, probabilities, [0.9] * 3, ["a", "b", "c"])
    assert matrix == {
        "classes": ["a", "b", "c"],
        # Rows true, columns predicted: a -> a, a -> b, b -> b, c -> a, c -> c.
        "counts": [[1, 1, 0], [0, 1, 0], [1, 0, 1]],
        "images_with_several_labels": 0,
    }


def test_defect_free_images_add_a_row_and_a_column_decided_by_thresholds():
    labels = np.array([[1, 0], [0, 1], [0, 1], [0, 0], [0, 0], [1, 1], [1, 0]])
    probabilities = np.array(
        [
            [0.9, 0.4],  # both reach: scratch, the more probable -> scratch
            [0.6, 0.35],  # both reach: scratch -> pit taken for a scratch
            [0.45, 0.35],  # only pit reaches 0.3 (scratch is below 0.5) -> pit
            [0.2, 0.1],  # none -> defect-free
            [0.1, 0.31],  # pit -> a defect-free image rejected as pit
            [0.9, 0.9],  # two labels: left out
            [0.4, 0.2],  # none -> a missed scratch
        ]
    )
    matrix = image_confusion_matrix(labels, probabilities, [0.5, 0.3], ["scratch", "pit"])
    assert matrix == {
        "classes": ["scratch", "pit", "defect-free"],
        "counts": [[1, 0, 1], [1, 1, 0], [0, 1, 1]],
        "images_with_several_labels": 1,
    }


def test_no_image_with_at_most_one_label_gives_zeros():
    matrix = image_confusion_matrix(np.ones((2, 2)), np.full((2, 2), 0.7), [0.5] * 2, ["a", "b"])
    assert matrix == {
        "classes": ["a", "b"], "counts": [[0, 0], [0, 0]], "images_with_several_labels": 2,
    }


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r"must both be \[N, 2\]"):
        image_confusion_matrix(np.zeros((3, 2)), np.zeros((3, 3)), [0.5] * 2, ["a", "b"])


def test_plot_writes_a_png(tmp_path):
    matrix = {
        "classes": ["scratch", "pit", "defect-free"],
        "counts": [[1, 0, 1], [1, 1, 0], [0, 0, 0]],
        "images_with_several_labels": 1,
    }
    path = tmp_path / "confusion_matrix.png"
    plot_confusion_matrix(matrix, path)
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 100
    with pytest.raises(ValueError, match=r"matrix\['counts'\]"):
        plot_confusion_matrix(matrix | {"counts": [[1, 2]]}, path)
