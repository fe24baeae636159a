"""The training curves of a run: each loss, training and validation, and the learning rate.

`results.png` beside `history.csv` in a run folder, as Ultralytics users expect one.
"""

import csv
import io
import math

import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from defect_aux_net import atomic_writes
from defect_aux_net.visualization.overlays import OKABE_ITO

LEARNING_RATE = "learning_rate"
VALIDATION = "val_"
# Okabe-Ito, as the overlays: blue for training, vermillion for validation, bluish
# green for the learning rate.
TRAIN_COLOR, VALIDATION_COLOR, RATE_COLOR = (
    tuple(channel / 255 for channel in OKABE_ITO[index]) for index in (4, 5, 2)
)
PANELS_PER_ROW = 3


def read_history(path: str) -> dict:
    """The columns of a `history.csv` (Keras' `CSVLogger`) as `{name: [float, ...]}`.

    Empty cells are NaN. A missing or empty file gives {}; a header alone, empty lists.
    """
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as file:
        reader = csv.DictReader(file)
        rows = list(reader)
        names = reader.fieldnames or []
    try:
        return {
            name: [float(row[name]) if row.get(name) else math.nan for row in rows]
            for name in names
        }
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path} is not a history of numbers ({error}): edited?") from error


def loss_names(history: dict) -> list:
    """The training losses of a history: `loss` (the total) first, then per task."""
    names = [
        name for name in history if name.endswith("loss") and not name.startswith(VALIDATION)
    ]
    return sorted(names, key=lambda name: (name != "loss", name))


def training_curves_figure(history: dict) -> Figure:
    """One panel per loss (training solid, validation dashed) and one for the learning rate.

    Args:
      history: `{column: values per epoch}` as `read_history` returns; `epoch` (counted
        from 0, as Keras logs it) gives the x axis, shown counted from 1.

    Returns:
      a `matplotlib.figure.Figure` (Agg, no pyplot state).
    """
    if "epoch" not in history or not history["epoch"]:
        raise ValueError(
            f"`history` must have an `epoch` column with values, got columns {sorted(history)}."
        )
    epochs = np.asarray(history["epoch"], np.float64) + 1
    panels = [(name, [name, VALIDATION + name]) for name in loss_names(history)]
    if LEARNING_RATE in history:
        panels.append((LEARNING_RATE, [LEARNING_RATE]))
    if not panels:
        raise ValueError(f"`history` has neither losses nor a learning rate: {sorted(history)}.")
    columns = min(len(panels), PANELS_PER_ROW)
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(4.2 * columns, 3.2 * rows))
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for panel, (title, names) in zip(axes, panels):
        for name in names:
            if name not in history:
                continue
            if name == LEARNING_RATE:
                style = {"color": RATE_COLOR}
            elif name.startswith(VALIDATION):
                style = {"color": VALIDATION_COLOR, "linestyle": "--", "label": "validation"}
            else:
                style = {"color": TRAIN_COLOR, "label": "training"}
            panel.plot(epochs, history[name], marker="o", markersize=3, **style)
        panel.set_title(title)
        panel.set_xlabel("epoch")
        panel.xaxis.set_major_locator(MaxNLocator(integer=True))
        panel.grid(True, alpha=0.3)
        if title != LEARNING_RATE:
            panel.legend()
    for panel in axes[len(panels):]:
        panel.set_visible(False)
    figure.tight_layout()
    return figure


def write_training_curves(history: dict, path: str) -> None:
    """Writes `training_curves_figure(history)` as a PNG at `path`, whole (`atomic_writes`)."""
    png = io.BytesIO()
    training_curves_figure(history).savefig(png, format="png", dpi=100)
    atomic_writes.write_text(path, png.getvalue(), mode="wb")
