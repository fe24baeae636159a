import numpy as np
import pytest
from PIL import Image

from defect_aux_net.evaluation.pr_plots import plot_pr_curves
from defect_aux_net.evaluation.precision_recall import precision_recall_curve


def test_writes_a_png(tmp_path):
    curves = {
        "image": precision_recall_curve([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6]),
        "class/scratch": precision_recall_curve([1, 1, 0], [0.9, 0.4, 0.2]),
    }
    path = tmp_path / "pr.png"
    plot_pr_curves(curves, path)
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (600, 500)
        # Not a blank canvas: lines and text were drawn.
        assert len(np.unique(np.asarray(image.convert("L")))) > 2


def test_no_curve_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="`curves`"):
        plot_pr_curves({}, tmp_path / "pr.png")
