"""The Defect-Aux-Net paper's tables: their rows, columns and the paper's numbers.

A table is a list of rows; a row is a name and the experiment fields it sets (dotted
for the model's: `model.attention`), so rows of other networks join by setting
`model_name`. `row_runs` turns a row into a training run at a budget;
`training.table_runner` trains the rows and reports the paper's numbers beside ours.

The paper's numbers are typed from its text (`../shared/papers`, OCR'd): Tables I-IV
on TekErreka (not public); Figs. 10 (Severstal) and 11 (TekErreka) are only plotted,
so they have no numbers to compare with but parameter counts from Tables IV and VI.
Table VI's networks and numbers are those `performance.inference_latency` measures,
then the same two networks with its lean top-down pathway.
"""

import dataclasses

from defect_aux_net.performance.inference_latency import (
    LEAN_NETWORKS,
    LEAN_TOP_DOWN,
    PAPER_NETWORKS,
    PAPER_TABLE6,
)

# The parameter count of the trained model (best.keras), in millions; every other
# metric key is a dotted key of the run's metrics_<split>.json.
PARAMETERS = "parameters_millions"
# Table VI's batch-1 inference time, in seconds per image.
LATENCY = "latency_s"


@dataclasses.dataclass(frozen=True)
class Metric:
    """A column of a table.

    Attributes:
      key: `PARAMETERS`, or a dotted key of metrics_<split>.json (`segmentation.iou`).
      label: the column's title, as the paper's.
    """

    key: str
    label: str


@dataclasses.dataclass(frozen=True)
class Row:
    """A row: a variant of the table's experiment.

    Attributes:
      name: the row's name, as the paper's.
      folder: the name of its run folder under the table's output folder.
      fields: experiment fields the row sets, dotted for the model's
        (`{"model.attention": "se"}`), `model_name` for another network.
      paper: the paper's number for each metric key; None where it gives none.
    """

    name: str
    folder: str
    fields: dict
    paper: dict


@dataclasses.dataclass(frozen=True)
class PaperTable:
    """A table or figure of the paper whose rows are experiments.

    Attributes:
      key: the `--table` value: "T1", "T2", "T3", "T4", "F10", "F11", "T6".
      title: what the table compares.
      source: where the paper's numbers are, and on which dataset.
      paper_preset: the `ExperimentConfig` preset of the paper's settings for it.
      task: the head whose outputs the figures measure; the dataset must annotate it.
        None for Table VI, whose figures (latency, parameters) need no training:
        its rows are untrained networks, measured (`performance.latency_table`).
      metrics: the columns.
      rows: the rows, the reference row (the paper's choice) first.
    """

    key: str
    title: str
    source: str
    paper_preset: str
    task: str | None
    metrics: tuple
    rows: tuple

    def __post_init__(self):
        folders = [row.folder for row in self.rows]
        if len(set(folders)) != len(folders):
            raise ValueError(f"Table {self.key}: row folders repeat: {folders}.")
        keys = {metric.key for metric in self.metrics}
        for row in self.rows:
            if not set(row.paper) <= keys:
                raise ValueError(
                    f"Table {self.key}, row {row.name!r}: paper numbers for "
                    f"{sorted(set(row.paper) - keys)}, which are not columns {sorted(keys)}."
                )


def _row(name, folder, fields, *values, metrics):
    return Row(name, folder, fields, dict(zip((metric.key for metric in metrics), values)))


_IOU_DICE = (Metric("segmentation.iou", "IoU"), Metric("segmentation.dice", "Dice"))
_ACCURACY = Metric("classification.accuracy", "Accuracy")
_ATTENTION = (_ACCURACY, Metric(PARAMETERS, "Parameters (M)"))
_SEGMENTERS = (*_IOU_DICE, Metric(PARAMETERS, "Parameters (M)"))
_DETECTORS = (
    Metric("detection.map", "mAP"), Metric("detection.map50", "mAP@0.5"),
    Metric(PARAMETERS, "Parameters (M)"),
)
_CLASSIFIERS = (
    Metric("classification.recall", "Recall"),
    Metric("classification.precision", "Precision"),
    Metric("classification.f1", "F1-score"),
    *_ATTENTION,
)

TABLES = {
    table.key: table
    for table in (
        PaperTable(
            key="T1",
            title="Segmentation loss variants of Defect-Aux-Net",
            source="Table I (TekErreka)",
            paper_preset="tekerreka",
            task="segmentation",
            metrics=_IOU_DICE,
            rows=tuple(
                _row(name, folder, {"model.segmentation_loss": loss}, iou, dice,
                     metrics=_IOU_DICE)
                for name, folder, loss, iou, dice in (
                    ("Dice", "dice", "dice", 0.903, 0.926),
                    ("BCE", "bce", "bce", 0.892, 0.911),  # OCR: "0911".
                    ("Jaccard", "jaccard", "jaccard", 0.900, 0.913),
                    ("Dice + BCE", "dice_bce", "dice+bce", 0.901, 0.920),
                    ("Jaccard + BCE", "jaccard_bce", "jaccard+bce", 0.899, 0.912),
                )
            ),
        ),
        PaperTable(
            key="T2",
            title="Defect-Aux-Net's segmentation against segmentation networks on its backbone",
            source="Table II (TekErreka); Defect-Aux-Net's parameters from Table IV",
            paper_preset="tekerreka",
            task="segmentation",
            metrics=_SEGMENTERS,
            rows=(
                # IoU, Dice; parameters where the paper gives them (Table VI's 26.9 M
                # "ResNet-50 FPN" is on a plain ResNet-50, not this row's SE + SA one).
                _row("Defect-Aux-Net", "defect_aux_net", {}, 0.903, 0.926, 36.2,
                     metrics=_SEGMENTERS),
                # The segmentation head only, whatever heads the budget trains: FPN is
                # Defect-Aux-Net's top-down pathway and segmentation branch alone.
                *(
                    _row(name, folder, {**fields, "model.tasks": ("segmentation",)}, *values,
                         metrics=_SEGMENTERS)
                    for name, folder, fields, *values in (
                        ("FPN", "fpn", {}, 0.881, 0.902),
                        ("LinkNet", "linknet", {"model_name": "linknet"}, 0.876, 0.895),
                        ("UNet", "unet", {"model_name": "unet"}, 0.832, 0.856),
                        # OCR: "0917".
                        ("PSPNet", "pspnet", {"model_name": "pspnet"}, 0.885, 0.917),
                    )
                ),
            ),
        ),
        PaperTable(
            key="T3",
            title="Defect-Aux-Net's classification against classification networks",
            source="Table III (TekErreka, Class1); parameters from Tables IV and VI",
            paper_preset="tekerreka",
            task="classification",
            metrics=_CLASSIFIERS,
            rows=(
                # Recall, precision, F1, accuracy; parameters where the paper gives them.
                _row("Defect-Aux-Net", "defect_aux_net", {}, 0.887, 0.939, 0.912, 0.971,
                     36.2, metrics=_CLASSIFIERS),  # OCR: "0912".
                *(
                    # The classification head only, whatever heads the budget trains.
                    _row(name, model, {"model_name": model, "model.tasks": ("classification",)},
                         *values, metrics=_CLASSIFIERS)
                    for name, model, *values in (
                        ("ResNet-50", "resnet50", 0.759, 0.979, 0.855, 0.949, 23.5),
                        ("SE-ResNet-50", "se_resnet50", 0.803, 0.968, 0.878, 0.955),
                        ("EfficientNet-B0", "efficientnet_b0", 0.858, 0.928, 0.892, 0.958),
                    )
                ),
            ),
        ),
        PaperTable(
            key="T4",
            title="Attention in the residual blocks of Defect-Aux-Net",
            source="Table IV (TekErreka)",
            paper_preset="tekerreka",
            task="classification",
            metrics=_ATTENTION,
            rows=tuple(
                _row(name, folder, {"model.attention": attention}, accuracy, parameters,
                     metrics=_ATTENTION)
                for name, folder, attention, accuracy, parameters in (
                    ("SE + spatial attention", "se_sa", "se+sa", 0.971, 36.2),
                    ("Without attention", "none", "none", 0.962, 33.2),
                    ("SE attention", "se", "se", 0.968, 35.7),
                    ("Spatial attention", "sa", "sa", 0.963, 33.5),
                )
            ),
        ),
        PaperTable(
            key="F10",
            title="Training data size vs. classification accuracy of Defect-Aux-Net",
            source="Fig. 10 (Severstal; plotted only, the text gives no values)",
            paper_preset="severstal",
            task="classification",
            metrics=(_ACCURACY,),
            rows=tuple(
                Row(f"{percent} % of the training data", f"train_{percent}",
                    {"train_fraction": percent / 100}, {})
                for percent in (90, 75, 50)
            ),
        ),
        PaperTable(
            key="F11",
            title="Defect-Aux-Net's detection against detectors",
            # The text gives Defect-Aux-Net's mAP relative to the others' only.
            source="Fig. 11 (TekErreka; plotted only, the text: Defect-Aux-Net's mAP is "
            "17.95 %, 43.77 % and 26.03 % higher than RetinaNet's, SSD's and Cascade "
            "R-CNN's); parameters from Tables IV and VI",
            paper_preset="tekerreka",
            task="detection",
            metrics=_DETECTORS,
            rows=(
                Row("Defect-Aux-Net", "defect_aux_net", {}, {PARAMETERS: 36.2}),
                # The detectors train their one head, whatever heads the budget trains.
                *(
                    Row(name, model, {"model_name": model, "model.tasks": ("detection",)}, paper)
                    for name, model, paper in (
                        # Table VI's single-task "ResNet-50 RetinaNet".
                        ("RetinaNet", "retinanet", {PARAMETERS: 34.0}),
                        ("SSD", "ssd", {}),
                        ("Cascade R-CNN", "cascade_rcnn", {}),
                    )
                ),
            ),
        ),
        PaperTable(
            key="T6",
            title="Batch-1 inference: the multi-task network against single-task networks",
            source="Table VI (one Xeon core at 2.2 GHz, TekErreka's 600x600)",
            paper_preset="tekerreka",
            task=None,
            metrics=(Metric(PARAMETERS, "Parameters (M)"), Metric(LATENCY, "Latency (s/image)")),
            # The paper's order: the three single-task networks, then the multi-task one.
            rows=tuple(
                Row(
                    name, key,
                    {"model_name": model,
                     **{f"model.{field}": value for field, value in fields.items()}},
                    {PARAMETERS: PAPER_TABLE6["params_millions"][key],
                     LATENCY: PAPER_TABLE6["latency_s"][key]},
                )
                for key, (name, model, fields) in PAPER_NETWORKS.items()
            ) + tuple(
                # The cheaper design the paper does not measure: no numbers of its own.
                Row(
                    name, key,
                    {"model_name": PAPER_NETWORKS[slimmed][1],
                     **{f"model.{field}": value for field, value in
                        {**PAPER_NETWORKS[slimmed][2], **LEAN_TOP_DOWN}.items()}},
                    {},
                )
                for key, (name, slimmed) in LEAN_NETWORKS.items()
            ),
        ),
    )
}
