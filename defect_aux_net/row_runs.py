"""A row of a paper table as a training run: the budgets that size it, its fields.

`row_run` turns a row of `paper_tables`, a dataset and a budget into a `RowRun`: a
preset and the fields set on it, which is what a `launch.train` command says;
`training.table_runner` trains them.
"""

import dataclasses

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.experiments import ExperimentConfig
from defect_aux_net.models.model_builders import DEFAULT_MODEL, MODELS, model_config
from defect_aux_net.paper_tables import PaperTable, Row

# How rows are sized (`row_run`): "cpu" is the automatic recipe (the small network,
# input size, batch and learning rate derived from the data, `recipes`) with the first
# row's epochs (and their passes) fitted to `CPU_ROW_SECONDS` and every other row
# training as many; "paper" is the paper's preset of the table (its network, input
# size, batch 128, 50 epochs); "smoke" is the recipe at `SMOKE_INPUT_SIZE` for one
# epoch, a check that a table runs end to end on a dataset (its figures measure nothing).
BUDGETS = ("cpu", "paper", "smoke")
CPU_ROW_SECONDS = 600.0
SMOKE_INPUT_SIZE = (64, 64)
SMOKE_EPOCHS = 1
# The model preset of other networks' rows at the cpu and smoke budgets.
SMALL_PRESET = "small"
# What every row of a table repeats from the first row's run where the recipe chose it
# (it reads each row's training split: Fig. 10's fractions could get other batches).
SCHEDULE_FIELDS = ("epochs", "passes_per_epoch", "batch_size", "learning_rate")


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
    experiment: ExperimentConfig, fields: dict, model_preset: str | None = None
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
    model_preset: str | None = None

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
    splits: dict | None = None,
    tasks: tuple | None = None,
    epochs: int | None = None,
    schedule: dict | None = None,
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
