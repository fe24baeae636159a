"""The Defect-Aux-Net paper's tables as experiments: rows, the paper's numbers, budgets.

A table is a list of rows; a row is a name and the experiment fields it sets (dotted
for the model's: `model.attention`), so rows of other networks join by setting
`model_name`. `row_run` turns a row, a dataset and a budget into a `RowRun`: a preset
and the fields set on it, which is what a `launch.train` command says;
`training.table_runner` trains the rows and reports the paper's numbers beside ours.

The paper's numbers are typed from its text (`../shared/papers`, OCR'd): Tables I-IV
on TekErreka (not public); Figs. 10 (Severstal) and 11 (TekErreka) are only plotted,
so they have no numbers to compare with but parameter counts from Tables IV and VI.
"""

import dataclasses
from typing import Optional

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.experiments import ExperimentConfig
from defect_aux_net.models.model_builders import DEFAULT_MODEL, MODELS, model_config

# The parameter count of the trained model (best.keras), in millions; every other
# metric key is a dotted key of the run's metrics_<split>.json.
PARAMETERS = "parameters_millions"

# How rows are sized (`row_run`): "cpu" is the automatic recipe (the small network,
# input size, batch and learning rate derived from the data, `recipes`) with the first
# row's epochs fitted to `CPU_ROW_SECONDS` and every other row training as many; "paper"
# is the paper's preset of the table (its network, input size, batch 128, 50 epochs);
# "smoke" is the recipe at `SMOKE_INPUT_SIZE` for one epoch, a check that a table runs
# end to end on a dataset (its figures measure nothing).
BUDGETS = ("cpu", "paper", "smoke")
CPU_ROW_SECONDS = 600.0
SMOKE_INPUT_SIZE = (64, 64)
SMOKE_EPOCHS = 1
# The model preset of other networks' rows at the cpu and smoke budgets.
SMALL_PRESET = "small"
# What every row of a table repeats from the first row's run where the recipe chose it
# (it reads each row's training split: Fig. 10's fractions could get other batches).
SCHEDULE_FIELDS = ("epochs", "batch_size", "learning_rate")


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
      key: the `--table` value: "T1", "T2", "T3", "T4", "F10", "F11".
      title: what the table compares.
      source: where the paper's numbers are, and on which dataset.
      paper_preset: the `ExperimentConfig` preset of the paper's settings for it.
      task: the head whose outputs the figures measure; the dataset must annotate it.
      metrics: the columns.
      rows: the rows, the reference row (the paper's choice) first.
    """

    key: str
    title: str
    source: str
    paper_preset: str
    task: str
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


def check_models(table: PaperTable):
    """Raises ConfigError naming `table`'s rows whose network the library lacks, before
    any row trains (else the rows before them would train first, for nothing)."""
    missing = [
        f"{row.name!r} (model {row.fields['model_name']!r})" for row in table.rows
        if row.fields.get("model_name", "defect_aux_net") not in MODELS
    ]
    if missing:
        raise ConfigError(
            "table", f"Table {table.key} has rows of networks this library does not have "
            f"yet: {', '.join(missing)}; models: {', '.join(MODELS)}.",
        )


def apply_fields(
    experiment: ExperimentConfig, fields: dict, model_preset: Optional[str] = None
) -> ExperimentConfig:
    """`experiment` with `fields` set (dotted `model.*` on its model config).

    A `model_name` other than the experiment's, or a `model_preset`, makes that
    network's config first, at the experiment's classes, and at its input shape unless
    the model preset has one: as `launch.train --model --model_preset` does.

    Raises:
      ValueError: naming a field the experiment or its model config does not have.
    """
    model_name = fields.get("model_name", experiment.model_name)
    model = experiment.model
    if model_name != experiment.model_name or model_preset is not None:
        shape = {} if model_preset is not None else {"input_shape": model.input_shape}
        model = model_config(model_name, model_preset, num_classes=model.num_classes, **shape)
    model_fields = {field.name for field in dataclasses.fields(model)}
    experiment_fields = {field.name for field in dataclasses.fields(experiment)}
    model_changes, changes = {}, {"model_name": model_name}
    for field, value in fields.items():
        name = field.removeprefix("model.")
        known = model_fields if field.startswith("model.") else experiment_fields
        if name not in known:
            owner = type(model).__name__ if field.startswith("model.") else "ExperimentConfig"
            raise ValueError(f"{field!r} is not a field of {owner}.")
        (model_changes if field.startswith("model.") else changes)[name] = value
    if model_name == experiment.model_name:
        del changes["model_name"]
    model = dataclasses.replace(model, **model_changes)
    return dataclasses.replace(experiment, model=model, **changes)


@dataclasses.dataclass(frozen=True)
class RowRun:
    """One row's training run, as a `launch.train` command gives it.

    Attributes:
      row: the table's row.
      preset: the `ExperimentConfig` preset it starts from ("auto": the recipe).
      fields: the fields set on the preset (the command's flags): the budget's, the
        dataset's splits and the row's. With the "auto" preset the recipe keeps them.
      model_preset: the named config of the row's network (`--model_preset`), or None
        for its defaults.
    """

    row: Row
    preset: str
    fields: dict
    model_preset: Optional[str] = None

    def experiment(self) -> ExperimentConfig:
        """The preset with the fields set; given epochs replace the preset's time budget,
        as `launch.train --epochs` does."""
        fields = self.fields
        if "epochs" in fields and "time_budget" not in fields:
            fields = {**fields, "time_budget": None}
        return apply_fields(ExperimentConfig.from_preset(self.preset), fields, self.model_preset)


def row_run(
    table: PaperTable,
    row: Row,
    budget: str,
    dataset: str,
    splits: Optional[dict] = None,
    tasks: Optional[tuple] = None,
    epochs: Optional[int] = None,
    schedule: Optional[dict] = None,
) -> RowRun:
    """The run of `row` of `table` on `dataset` at `budget`.

    Every row of a table runs with the same schedule: the paper preset's, or the one
    the first row's recipe chose (`SCHEDULE_FIELDS`, given to the other rows as
    `schedule`); the "cpu" budget fits the first row's epochs to `CPU_ROW_SECONDS`.

    Args:
      table: the table.
      row: one of its rows.
      budget: one of `BUDGETS`.
      dataset: the TFDS dataset every row trains on.
      splits: split fields (`validation_split`, `test_split`) every row sets.
      tasks: the heads every row trains, or None for the budget's: the recipe's
        choice (the heads the dataset annotates), or the paper preset's three.
      epochs: the row's epochs; None for the budget's.
      schedule: for rows after the first at the "cpu" and "smoke" budgets, the
        first row's `SCHEDULE_FIELDS`.

    Raises:
      ValueError: for an unknown budget, or a row after the first without `schedule`
        at a budget that needs it.
    """
    if budget not in BUDGETS:
        raise ValueError(f"Unknown budget {budget!r}; allowed values: {', '.join(BUDGETS)}.")
    fields, preset = {"dataset": dataset, **(splits or {})}, "auto"
    if tasks is not None:
        fields["model.tasks"] = tuple(tasks)
    if budget == "paper":
        return RowRun(row, table.paper_preset, {**fields, **_epochs(epochs), **row.fields})
    if budget == "smoke":
        channels = ExperimentConfig.from_preset(preset).model.input_shape[2]
        fields["model.input_shape"] = (*SMOKE_INPUT_SIZE, channels)
    if row is not table.rows[0]:
        if schedule is None:
            raise ValueError(
                f"Row {row.name!r} of table {table.key} at the {budget} budget needs the "
                f"schedule ({', '.join(SCHEDULE_FIELDS)}) the first row's recipe chose."
            )
        fields.update(schedule)
    elif budget == "cpu" and epochs is None:
        fields["time_budget"] = CPU_ROW_SECONDS
    else:  # Given epochs, or the smoke budget's.
        fields["epochs"] = SMOKE_EPOCHS if epochs is None else epochs
    # Another network than the recipe's at a CPU budget: its small config, as the
    # recipe's own Defect-Aux-Net is the small one (ResNet-18).
    other = row.fields.get("model_name", DEFAULT_MODEL) != DEFAULT_MODEL
    return RowRun(row, preset, {**fields, **row.fields}, SMALL_PRESET if other else None)


def _epochs(epochs) -> dict:
    return {} if epochs is None else {"epochs": epochs}


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
    )
}
