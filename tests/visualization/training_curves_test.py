import math
import os

import numpy as np
import pytest
from PIL import Image

from defect_aux_net.visualization.training_curves import (
    VALIDATION_COLOR,
    read_history,
    training_curves_figure,
    write_training_curves,
)

HISTORY = {
    "epoch": [0.0, 1.0, 2.0],
    "classification_loss": [0.9, 0.6, 0.5],
    "learning_rate": [0.001, 0.004, 0.0001],
    "loss": [2.0, 1.5, 1.2],
    "segmentation_loss": [1.1, 0.9, 0.7],
    "val_classification_loss": [1.0, 0.8, 0.7],
    "val_loss": [2.2, 1.8, 1.6],
}


def test_one_panel_per_loss_with_validation_dashed_and_the_learning_rate_last():
    figure = training_curves_figure(HISTORY)
    panels = [axes for axes in figure.axes if axes.get_visible()]
    assert [axes.get_title() for axes in panels] == [
        "loss", "classification_loss", "segmentation_loss", "learning_rate",
    ]
    for axes in panels:
        title = axes.get_title()
        lines = {line.get_label(): line for line in axes.get_lines()}
        for line in lines.values():
            np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3])  # Epochs from 1.
        if title == "learning_rate":
            np.testing.assert_array_equal(
                [line.get_ydata() for line in lines.values()], [HISTORY["learning_rate"]]
            )
            continue
        np.testing.assert_array_equal(lines["training"].get_ydata(), HISTORY[title])
        if f"val_{title}" in HISTORY:
            validation = lines["validation"]
            np.testing.assert_array_equal(validation.get_ydata(), HISTORY[f"val_{title}"])
            assert validation.get_linestyle() == "--"
            assert validation.get_color() == VALIDATION_COLOR
        else:  # No validation segmentation loss in this history.
            assert set(lines) == {"training"}


def test_write_and_read_back(tmp_path):
    history_csv = tmp_path / "history.csv"
    # A resumed run's column that earlier rows lack is NaN there.
    history_csv.write_text("epoch,loss,val_loss\n0,1.5,\n1,1.25,1.75\n")
    history = read_history(str(history_csv))
    assert history["epoch"] == [0.0, 1.0] and history["loss"] == [1.5, 1.25]
    assert math.isnan(history["val_loss"][0]) and history["val_loss"][1] == 1.75

    path = tmp_path / "results.png"
    write_training_curves(history, str(path))
    with Image.open(path) as image:
        assert image.format == "PNG"
    assert sorted(os.listdir(tmp_path)) == ["history.csv", "results.png"]  # No partial file.


def test_missing_header_only_and_broken_histories(tmp_path):
    assert read_history(str(tmp_path / "none.csv")) == {}
    (tmp_path / "header.csv").write_text("epoch,loss\n")
    assert read_history(str(tmp_path / "header.csv")) == {"epoch": [], "loss": []}
    (tmp_path / "edited.csv").write_text("epoch,loss\n0,lots\n")
    with pytest.raises(ValueError, match="edited.csv is not a history of numbers"):
        read_history(str(tmp_path / "edited.csv"))
    with pytest.raises(ValueError, match="`epoch` column"):
        training_curves_figure({"loss": [1.0]})
