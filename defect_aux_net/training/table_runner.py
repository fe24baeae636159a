"""Trains the rows of a paper table, each in its own run folder, and reports them.

Each row (`row_runs.RowRun`) is a training run in `<output_dir>/<row.folder>`,
made by the library's steps in `launch.train`'s order: `prepare_training_data`, the
automatic recipe, the time budget, `run_training`. A killed runner therefore resumes
the row it was training from its last epoch, and a row with complete.json is read,
not trained again (unless overwritten). A runner may train some rows only: the
report holds every row whose folder is complete and names the others as not run.
The report puts the paper's numbers beside ours, with the command that trains each
row: `<output_dir>/<table key>.md` and `.json`, written whole.
"""

import dataclasses
import os
import time

from absl import logging

from defect_aux_net import atomic_writes
from defect_aux_net.config import TASKS
from defect_aux_net.config_errors import ConfigError
from defect_aux_net.data import datasets
from defect_aux_net.data.holdout import Holdout
from defect_aux_net.paper_tables import PARAMETERS, PaperTable
from defect_aux_net.row_runs import SCHEDULE_FIELDS, RowRun, check_models, row_run
from defect_aux_net.training import auto_recipe, run_files, time_budget, training_run


@dataclasses.dataclass(frozen=True)
class RowResult:
    """A trained row.

    Attributes:
      run: what it trained.
      model_dir: its run folder.
      epochs: the passes over its training split it trained: its config.json's epochs
        times their passes (fractional where a time budget chose them).
      figures: our number for each metric key of the table.
    """

    run: RowRun
    model_dir: str
    epochs: float
    figures: dict


def evaluation_splits(builder, dataset: str) -> dict:
    """The split fields that measure every row on images no row trained or chose on.

    The dataset's test split where it has one (the presets' default); else its
    validation split, with best-model selection and thresholds on a holdout of train.

    Raises:
      ConfigError: naming `ExperimentConfig.dataset` when it has neither split.
    """
    names = set(builder.info.splits)
    if "test" in names:
        return {}
    if "validation" in names:
        return {"validation_split": str(Holdout("train")), "test_split": "validation"}
    raise ConfigError(
        "ExperimentConfig.dataset",
        f"ExperimentConfig.dataset={dataset} has neither a test nor a validation split "
        f"(splits: {', '.join(sorted(names))}): no images are left to measure the rows on.",
    )


def annotated_tasks(builder, table: PaperTable, dataset: str) -> tuple:
    """The heads `dataset`'s training split annotates; the table's task must be one.

    Raises:
      ConfigError: naming `ExperimentConfig.dataset` when the table's task is not
        (a dataset without masks for Table I).
    """
    summary = datasets.summarize_split(builder, "train")
    counts = {"classification": summary.num_examples, "segmentation": summary.with_masks,
              "detection": summary.with_boxes}
    tasks = tuple(task for task in TASKS if counts[task] > 0)
    if table.task not in tasks:
        raise ConfigError(
            "ExperimentConfig.dataset",
            f"ExperimentConfig.dataset={dataset}: table {table.key} measures {table.task}, "
            f"and no training image of {dataset} is annotated for it (it has {tasks}); "
            "choose a dataset that is.",
        )
    return tasks


def train_row(
    run: RowRun, data_dir, model_dir: str, strategy, jit_compile, overwrite: bool = False
) -> dict:
    """Trains `run` in `model_dir` (or resumes it; a complete run is not retrained
    unless `overwrite`, which deletes what `model_dir` holds and trains afresh).

    Returns:
      The outputs of its complete.json.
    """
    started = time.monotonic()
    stored = None
    # A rerun reuses its measured choices; an overwritten one measures them again.
    if not overwrite and run_files.has_config(model_dir):
        stored = run_files.read_stored_config(model_dir)
    data = training_run.prepare_training_data(run.experiment(), data_dir)
    if run.preset == "auto":
        data = auto_recipe.apply_recipe(data, frozenset(run.fields), stored)
    if data.experiment.time_budget is not None:
        data = time_budget.fit_epochs_to_budget(data, strategy, jit_compile, started, stored)
    schedule = training_run.one_cycle_schedule(data)
    logging.info("Row %r in %s: %s", run.row.name, model_dir, data.experiment)
    auto_recipe.write_range_test_plot(data.experiment, model_dir)
    training_run.run_training(
        data, schedule, model_dir, strategy, export=False, jit_compile=jit_compile,
        test_split=data.experiment.test_split, overwrite=overwrite,
    )
    return run_files.read_completion(model_dir)


def selected_rows(table: PaperTable, names) -> tuple:
    """The rows of `table` whose folders `names` lists, in the table's order; all for None.

    Raises:
      ConfigError: naming `rows` and listing the table's rows, for a name it lacks.
    """
    if names is None:
        return table.rows
    folders = [row.folder for row in table.rows]
    unknown = [name for name in names if name not in folders]
    if unknown or not names:
        problem = f"has no row {', '.join(map(repr, unknown))}" if unknown else "needs a row"
        listed = ", ".join(f"{row.folder} ({row.name})" for row in table.rows)
        raise ConfigError(
            "rows", f"rows={','.join(names)}: table {table.key} {problem}; its rows: {listed}.",
        )
    return tuple(row for row in table.rows if row.folder in names)


def row_figures(table: PaperTable, outputs: dict) -> dict:
    """Our number for each of the table's metric keys, from a complete run's outputs.

    Raises:
      ValueError: naming the metrics file when it lacks a key.
    """
    if "metrics" not in outputs:
        raise ValueError(f"The run of {outputs['best']} has no test metrics.")
    metrics = run_files.read_json(outputs["metrics"])
    figures = {}
    for metric in table.metrics:
        if metric.key == PARAMETERS:
            figures[metric.key] = run_files.load_model(outputs["best"]).count_params() / 1e6
            continue
        value = metrics
        for part in metric.key.split("."):
            if not isinstance(value, dict) or part not in value:
                raise ValueError(f"{outputs['metrics']} has no {metric.key!r}.")
            value = value[part]
        figures[metric.key] = value
    return figures


def run_table(
    table: PaperTable,
    budget: str,
    dataset: str,
    data_dir,
    output_dir: str,
    strategy,
    jit_compile,
    epochs=None,
    tasks=None,
    rows=None,
    overwrite: bool = False,
) -> list:
    """Trains the rows of `table` on `dataset` with the same schedule; `RowResult`s.

    Rows not in `rows` are not trained; those whose folder is complete (an earlier
    runner's) are read and are in the results, the others are not.

    Args:
      table: the table.
      budget: one of `row_runs.BUDGETS`.
      dataset: TFDS name of a built dataset.
      data_dir: its TFDS data_dir, or None.
      output_dir: where each row's run folder goes.
      strategy: the tf.distribute strategy every row trains under.
      jit_compile: as for `run_training`.
      epochs: every row's epochs, instead of the budget's.
      tasks: the heads every row trains, instead of the budget's (the recipe's, or
        for "paper" every head the dataset annotates); they must include the table's.
      rows: the folders of the rows to train (`selected_rows`), or None for all.
      overwrite: train the rows of `rows` again where their folder is complete.

    Raises:
      ConfigError: naming the dataset or the tasks, when they cannot make the table;
        the table, when the library lacks a row's network (`check_models`); `rows`,
        for a row the table lacks, or rows that need the first row's schedule when it
        is neither among them nor complete.
    """
    check_models(table)
    selected = selected_rows(table, rows)
    first = table.rows[0]
    if (budget != "paper" and first not in selected
            and not run_files.is_complete(os.path.join(output_dir, first.folder))):
        raise ConfigError(
            "rows", f"rows={','.join(rows)}: at the {budget} budget every row trains with "
            f"the schedule ({', '.join(SCHEDULE_FIELDS)}) the first row's recipe chooses, "
            f"and the first row, {first.folder}, is not complete in {output_dir}: include "
            "it, or train it first.",
        )
    builder = datasets.load_builder(dataset, data_dir)
    splits = evaluation_splits(builder, dataset)
    annotated = annotated_tasks(builder, table, dataset)
    if tasks is not None and table.task not in tasks:
        field = "DefectAuxNetConfig.tasks"
        raise ConfigError(
            field, f"{field}={','.join(tasks)}: table {table.key} measures {table.task}: "
            f"include it.",
        )
    if tasks is None and budget == "paper":
        tasks = annotated
    results, schedule = [], None
    for row in table.rows:
        model_dir = os.path.join(output_dir, row.folder)
        if row not in selected and not run_files.is_complete(model_dir):
            continue  # Not run.
        run = row_run(table, row, budget, dataset, splits, tasks, epochs, schedule)
        outputs = train_row(
            run, data_dir, model_dir, strategy, jit_compile, overwrite and row in selected
        )
        experiment, _ = run_files.read_config(model_dir)
        if schedule is None and run.preset == "auto":  # The first row's recipe chose it.
            schedule = {field: getattr(experiment, field) for field in SCHEDULE_FIELDS}
        passes = round(experiment.epochs * experiment.passes_per_epoch, 2)
        results.append(RowResult(run, model_dir, passes, row_figures(table, outputs)))
        logging.info("Row %r: %s", row.name, results[-1].figures)
    return results


def _cell(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def not_run(table: PaperTable, done) -> tuple:
    """The rows of `table` whose folder is not among `done`, those of its results."""
    done = set(done)
    return tuple(row for row in table.rows if row.folder not in done)


def _folders(results: list) -> list:
    return [result.run.row.folder for result in results]


def report_markdown(table: PaperTable, results: list, commands: list, heading: str) -> str:
    """The table as markdown: the paper's number and ours side by side, per column.

    Rows without a result are in the table, "not run", and named under the title
    with their folders (the names that select them to train).

    Args:
      table: the table.
      results: its `RowResult`s, in row order; some rows may have none.
      commands: the command that trains each row of `results`.
      heading: what was run (dataset, budget), said under the title.
    """
    header = ["Row"]
    for metric in table.metrics:
        header += [f"{metric.label} (paper)", f"{metric.label} (ours)"]
    missing = not_run(table, _folders(results))
    lines = [f"# {table.key}: {table.title}", "", f"Paper: {table.source}. Ours: {heading}."]
    if missing:
        names = ", ".join(f"{row.name} ({row.folder})" for row in missing)
        lines += ["", f"Not run: {names}."]
    lines += [
        "",
        "| " + " | ".join(header + ["Epochs", "Command"]) + " |",
        "|" + "---|" * (len(header) + 2),
    ]
    done = dict(zip((result.run.row.folder for result in results), zip(results, commands)))
    for row in table.rows:
        result, command = done.get(row.folder, (None, None))
        cells = [row.name]
        for metric in table.metrics:
            ours = "not run" if result is None else _cell(result.figures[metric.key])
            cells += [_cell(row.paper.get(metric.key)), ours]
        cells += ["—", "not run"] if result is None else [f"{result.epochs:g}", f"`{command}`"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def report_json(table: PaperTable, results: list, commands: list, heading: str) -> dict:
    """Every figure of the report, for scripts; `not_run` names the rows without one."""
    return {
        "table": table.key,
        "title": table.title,
        "source": table.source,
        "run": heading,
        "metrics": {metric.key: metric.label for metric in table.metrics},
        "rows": [
            {
                "name": result.run.row.name,
                "model_dir": result.model_dir,
                "command": command,
                "epochs": result.epochs,
                "paper": result.run.row.paper,
                "ours": result.figures,
            }
            for result, command in zip(results, commands)
        ],
        "not_run": [
            {"name": row.name, "row": row.folder}
            for row in not_run(table, _folders(results))
        ],
    }


def write_report(table: PaperTable, results, commands, heading: str, output_dir: str) -> dict:
    """Writes `<output_dir>/<key>.md` and `.json` whole; returns their paths."""
    return write_table_files(
        table, output_dir, report_markdown(table, results, commands, heading),
        report_json(table, results, commands, heading),
    )


def write_table_files(table: PaperTable, output_dir: str, markdown: str, figures: dict) -> dict:
    """Writes `markdown` and `figures` as `<output_dir>/<key>.md` and `.json`, each whole."""
    paths = {ext: os.path.join(output_dir, f"{table.key}.{ext}") for ext in ("md", "json")}
    atomic_writes.write_text(paths["md"], markdown)
    atomic_writes.write_json(paths["json"], figures)
    return paths
