"""Table VI as `launch.reproduce --table=T6` makes it: each network measured in its own folder.

The rows are the paper's Table VI networks (`inference_latency.paper_networks`),
then its FPN segmenter and Defect-Aux-Net with the lean top-down pathway
(`inference_latency.LEAN_NETWORKS`), untrained: latency and parameter counts do not
depend on the weights, so the table needs no training, and its networks are the
paper's whatever network the other tables' rows train at a budget. `--dataset` gives
them its class count; the input channels are the presets' (3; the input pipeline
repeats grey images), as in every training run. Each network runs at batch 1 on one
thread, as the paper measures, as one `tf.function` graph without XLA, as TF Serving
runs an export.

A row is measured once: `<output_dir>/<row>/latency.json` holds its figures, written
whole, and a later runner reads it (unless overwritten), so a killed runner resumes
with the rows it had not measured. The rows a runner measures are timed in turn, one
call of each per round, so that their ratios are measured side by side. The report
puts the paper's figures beside ours, with the sum of the single-task networks and the
multi-task network's ratios checked against the issue's targets (`report.TARGETS`),
for the default design and again for the lean one.
"""

import dataclasses
import json
import os

import tensorflow as tf

from defect_aux_net import atomic_writes
from defect_aux_net.config_errors import ConfigError
from defect_aux_net.data import datasets
from defect_aux_net.paper_tables import LATENCY, PARAMETERS, PaperTable
from defect_aux_net.performance import inference_latency, report
from defect_aux_net.performance.measurement import interleaved_median_seconds, run_isolated
from defect_aux_net.row_runs import SMOKE_INPUT_SIZE, check_models
from defect_aux_net.training import run_files
from defect_aux_net.training.table_runner import not_run, selected_rows, write_table_files

# The paper measured on one core.
THREADS = 1
MEASUREMENT_FILE = "latency.json"
SUM = "single_task_sum"


@dataclasses.dataclass(frozen=True)
class LatencyBudget:
    """How a budget measures Table VI.

    Attributes:
      preset: the model preset of every network (`inference_latency.paper_networks`).
      input_size: (height, width) of every network's input, or None for the preset's.
      warmup: untimed runs before timing.
      repeats: timed runs; the median is the latency.
    """

    preset: str
    input_size: tuple | None
    warmup: int
    repeats: int


BUDGETS = {
    # The paper's networks (ResNet-50: its parameter counts) at a quarter of its side
    # squared less: minutes on 2 cores. 256 is a multiple of the coarsest stride (P7).
    "cpu": LatencyBudget("tekerreka", (256, 256), warmup=1, repeats=5),
    # The paper's networks at its 600x600, as launch.benchmark times them.
    "paper": LatencyBudget("tekerreka", None, warmup=2, repeats=10),
    # The small networks at 64x64, timed once after the run that traces the graph: a
    # check that the table runs.
    "smoke": LatencyBudget("small", SMOKE_INPUT_SIZE, warmup=1, repeats=1),
}


@dataclasses.dataclass(frozen=True)
class LatencyResult:
    """A measured row.

    Attributes:
      row: the table's row.
      model_dir: its folder.
      measured: its latency.json: the network's `config` (as a dict), `model_name`,
        `params`, `latency_s`, `cpu_per_wall`, `threads`, `warmup`, `repeats`.
      figures: our number for each metric key of the table.
    """

    row: object
    model_dir: str
    measured: dict
    figures: dict


def row_configs(budget: str, num_classes: int) -> dict:
    """The config of each row's network at `budget`, keyed by row folder (task or
    `MULTI_TASK`), all at the same input and with `num_classes` classes."""
    if budget not in BUDGETS:
        raise ValueError(f"Unknown budget {budget!r}; allowed values: {', '.join(BUDGETS)}.")
    settings = BUDGETS[budget]
    configs = inference_latency.paper_networks(settings.preset, lean=True)
    changes = {"num_classes": num_classes}
    if settings.input_size is not None:
        channels = configs[inference_latency.MULTI_TASK].input_shape[2]
        changes["input_shape"] = (*settings.input_size, channels)
    return {key: dataclasses.replace(config, **changes) for key, config in configs.items()}


def measure_rows(rows: list, warmup: int, repeats: int):
    """Measures each `(config, path)` of `rows` and writes its latency.json at `path`.

    Run in a process of its own at `THREADS` threads (`run_isolated`). The networks are
    timed in turn, one call each per round (`interleaved_median_seconds`): measured side
    by side, their ratios hold on a machine whose speed drifts. So all are built first
    and written when the last round ends; a kill loses the rows being measured.
    """
    from defect_aux_net.models.model_builders import model_name

    functions, params = {}, {}
    for config, path in rows:
        functions[path], params[path] = inference_latency.latency_function(config)
    timings = interleaved_median_seconds(functions, warmup, repeats)
    for config, path in rows:
        atomic_writes.write_json(path, {
            "config": config.to_dict(), "model_name": model_name(config),
            "params": params[path], "latency_s": timings[path]["median_s"],
            "cpu_per_wall": timings[path]["cpu_per_wall"], "threads": THREADS,
            "warmup": warmup, "repeats": repeats,
        })


def run_latency_table(
    table: PaperTable,
    budget: str,
    dataset: str,
    data_dir,
    output_dir: str,
    rows=None,
    overwrite: bool = False,
) -> list:
    """Measures the rows of `table` (Table VI) not yet measured in `output_dir`.

    Args:
      table: `paper_tables.TABLES["T6"]`.
      budget: a key of `BUDGETS`.
      dataset: TFDS name of a built dataset: its class count.
      data_dir: its TFDS data_dir, or None.
      output_dir: where each row's folder goes.
      rows: the folders of the rows to measure (`selected_rows`), or None for all.
      overwrite: measure the rows of `rows` again where they were measured.

    Returns:
      A `LatencyResult` for each row measured, now or by an earlier runner.

    Raises:
      ConfigError: naming `rows` for a row the table lacks, or `overwrite` for a row
        measured earlier of another network or input than `budget`'s.
    """
    check_models(table)
    selected = selected_rows(table, rows)
    settings = BUDGETS[budget]
    num_classes = len(datasets.class_names(datasets.load_builder(dataset, data_dir)))
    configs = row_configs(budget, num_classes)
    to_measure = []
    for row in table.rows:
        path = os.path.join(output_dir, row.folder, MEASUREMENT_FILE)
        if overwrite and row in selected:
            to_measure.append((configs[row.folder], path))
        elif tf.io.gfile.exists(path):
            _check_same_network(path, configs[row.folder], budget)
        elif row in selected:
            to_measure.append((configs[row.folder], path))
    if to_measure:
        run_isolated(measure_rows, to_measure, settings.warmup, settings.repeats,
                     threads=THREADS)
    results = []
    for row in table.rows:
        model_dir = os.path.join(output_dir, row.folder)
        path = os.path.join(model_dir, MEASUREMENT_FILE)
        if tf.io.gfile.exists(path):
            measured = run_files.read_json(path)
            figures = {PARAMETERS: measured["params"] / 1e6, LATENCY: measured["latency_s"]}
            results.append(LatencyResult(row, model_dir, measured, figures))
    return results


def _check_same_network(path: str, config, budget: str):
    stored = run_files.read_json(path)["config"]
    if stored != json.loads(json.dumps(config.to_dict())):  # Tuples as JSON's lists.
        shape = "x".join(map(str, stored.get("input_shape", ())))
        raise ConfigError(
            "overwrite", f"{path} measured another network or input ({shape}, "
            f"{stored.get('num_classes')} classes) than the {budget} budget's "
            f"({'x'.join(map(str, config.input_shape))}, {config.num_classes} classes): "
            "measure it again with overwrite=True, or choose another output_dir.",
        )


def ratios(results: list, lean: bool = False):
    """`inference_latency.table6` of the results, and of the paper's figures; (None, paper)
    unless every row it needs was measured. With `lean`, the results' table with the lean
    networks (`inference_latency.lean_table6`); the paper's is its own."""
    paper = inference_latency.table6({
        key: {"latency_s": inference_latency.PAPER_TABLE6["latency_s"][key],
              "params": inference_latency.PAPER_TABLE6["params_millions"][key] * 1e6,
              "cpu_per_wall": None}
        for key in inference_latency.PAPER_NETWORKS
    })
    measured = {result.row.folder: result.measured for result in results}
    needed = set(inference_latency.PAPER_NETWORKS)
    if lean:
        needed = needed - {slimmed for _, slimmed in inference_latency.LEAN_NETWORKS.values()}
        needed |= set(inference_latency.LEAN_NETWORKS)
    if not needed <= set(measured):
        return None, paper
    table6 = inference_latency.lean_table6 if lean else inference_latency.table6
    return table6(measured), paper


def targets(ours) -> list:
    """`report.check_targets`' `(name, measured, bound, met)` of `ours`, a `table6`
    result: the Table VI targets."""
    return report.check_targets({"table6": ours})


def _figure(key: str, value) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" if key == PARAMETERS else f"{value:.4f}"


def report_markdown(table: PaperTable, results: list, commands: list, heading: str) -> str:
    """Table VI as markdown: the paper's figures beside ours, the sum of the single-task
    networks, the ratios and their targets, for the default design and again with the
    lean top-down pathway; rows without a result marked "not run"."""
    missing = _not_run(table, results)
    settings = _settings(results)
    lines = [f"# {table.key}: {table.title}", "", (
        f"Paper: {table.source}. Ours: {heading}; untrained networks (latency and "
        f"parameters do not depend on the weights), batch 1, {settings}, without XLA."
    )]
    if missing:
        lines += ["", "Not run: " + ", ".join(f"{row.name} ({row.folder})" for row in missing)
                  + "."]
    header = ["Row"] + [f"{metric.label} ({side})" for metric in table.metrics
                        for side in ("paper", "ours")]
    lines += ["", "| " + " | ".join(header + ["Input", "Command"]) + " |",
              "|" + "---|" * (len(header) + 2)]
    done = {result.row.folder: (result, command) for result, command in zip(results, commands)}
    for row in table.rows:
        result, command = done.get(row.folder, (None, None))
        cells = [row.name]
        for metric in table.metrics:
            ours = "not run" if result is None else _figure(metric.key, result.figures[metric.key])
            cells += [_figure(metric.key, row.paper.get(metric.key)), ours]
        if result is None:
            cells += ["—", "not run"]
        else:
            cells += ["x".join(map(str, result.measured["config"]["input_shape"])),
                      f"`{command}`"]
        lines.append("| " + " | ".join(cells) + " |")
    ours, paper = ratios(results)
    lean, _ = ratios(results, lean=True)
    sums = [paper["params"][SUM] / 1e6, _sum(ours, "params", 1e-6),
            paper["latency_s"][SUM], _sum(ours, "latency_s")]
    lines.append(_sum_row("Sum of the single-task networks", sums))
    lines.append(_sum_row("Sum with the lean FPN segmenter",
                          [None, _sum(lean, "params", 1e-6), None, _sum(lean, "latency_s")]))
    for title, measured in (("Multi-task network", ours),
                            ("Multi-task network, lean top-down (both networks)", lean)):
        lines += ["", f"| {title} | paper | ours | target | met |", "|---|---|---|---|---|"]
        lines += _ratio_lines(measured, paper)
    if ours is None or lean is None:
        lines += ["", "The ratios need every row measured."]
    return "\n".join(lines) + "\n"


def report_json(table: PaperTable, results: list, commands: list, heading: str) -> dict:
    """Every figure of the report, for scripts; `not_run` names the rows without one.
    `lean` holds the sum, ratios and targets with the lean top-down pathway."""
    ours, paper = ratios(results)
    lean, _ = ratios(results, lean=True)
    return {
        "table": table.key,
        "title": table.title,
        "source": table.source,
        "run": heading,
        "metrics": {metric.key: metric.label for metric in table.metrics},
        "rows": [
            {"name": result.row.name, "row": result.row.folder, "model_dir": result.model_dir,
             "command": command, "paper": result.row.paper, "ours": result.figures,
             "measured": result.measured}
            for result, command in zip(results, commands)
        ],
        **_ratio_figures(ours, paper),
        "lean": _ratio_figures(lean, paper),
        "not_run": [{"name": row.name, "row": row.folder} for row in _not_run(table, results)],
    }


def _ratio_figures(ours, paper) -> dict:
    """The sum of the single-task networks, the ratios and the targets of `ours` (a
    `table6` result, or None), beside the paper's."""
    return {
        "single_task_sum": {
            "paper": {PARAMETERS: paper["params"][SUM] / 1e6, LATENCY: paper["latency_s"][SUM]},
            "ours": None if ours is None else {
                PARAMETERS: ours["params"][SUM] / 1e6, LATENCY: ours["latency_s"][SUM]
            },
        },
        "ratios": {key: {"paper": paper[key], "ours": None if ours is None else ours[key]}
                   for _, key, _ in _ratio_rows()},
        "targets": [
            {"name": name, "measured": measured, "bound": bound, "met": met}
            for name, measured, bound, met in ([] if ours is None else targets(ours))
        ],
    }


def write_report(table: PaperTable, results, commands, heading: str, output_dir: str) -> dict:
    """Writes `<output_dir>/T6.md` and `.json` whole; returns their paths."""
    return write_table_files(
        table, output_dir, report_markdown(table, results, commands, heading),
        report_json(table, results, commands, heading),
    )


def _sum_row(name: str, sums: list) -> str:
    """A sum's row: parameters paper / ours, latency paper / ours."""
    figures = zip((PARAMETERS, PARAMETERS, LATENCY, LATENCY), sums)
    return f"| {name} | " + " | ".join(_figure(key, value) for key, value in figures) + " | | |"


def _ratio_lines(ours, paper) -> list:
    """The ratio table's rows of `ours` (a `table6` result, or None), beside the paper's."""
    checked = {} if ours is None else {name: met for name, _, _, met in targets(ours)}
    lines = []
    for name, key, bound in _ratio_rows():
        measured = "—" if ours is None else f"{ours[key]:.3f}"
        answer = {True: "yes", False: "no"}.get(checked.get(name), "—")
        lines.append(f"| {name} | {paper[key]:.3f} | {measured} | {bound} | {answer} |")
    return lines


def _sum(ours, key, scale=1.0):
    return None if ours is None else ours[key][SUM] * scale


def _not_run(table: PaperTable, results: list) -> tuple:
    return not_run(table, [result.row.folder for result in results])


def _ratio_rows() -> list:
    """(name, `table6` key, bound) of each ratio the report gives: the Table VI targets
    of `report.TARGETS`, and the parameter ratio, which has none."""
    bounds = {path[1]: (name, f"{comparison} {bound}")
              for name, path, comparison, bound in report.TARGETS if path[0] == "table6"}
    parameters = ("Table VI: multi-task parameters / sum of single-task parameters", "")
    rows = []
    for key in ("latency_ratio", "detection_latency_ratio", "params_ratio"):
        name, bound = bounds.get(key, parameters)
        rows.append((name, key, bound))
    return rows


def _settings(results: list) -> str:
    """How the rows were timed, as their files say (one description per distinct way)."""
    ways = sorted({
        f"{result.measured['threads']} thread, median of {result.measured['repeats']} after "
        f"{result.measured['warmup']} warm-up runs" for result in results
    })
    return "; ".join(ways) or f"{THREADS} thread"
