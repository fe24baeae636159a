r"""Trains every row of one of the paper's tables and writes ours beside the paper's numbers.

  python -m launch.reproduce --table=T4 --dataset=neu_det --budget=cpu \
    --output_dir=runs/table4

Tables (`defect_aux_net.paper_tables`): T1, the five segmentation losses (the dataset
needs masks); T2, the segmentation networks; T3, the classification networks; T4, the
four attention variants; F10, 90/75/50 % of the training data; F11, the detectors;
T6, batch-1 latency and parameters of the paper's single-task networks (ResNet-50,
ResNet-50 FPN, ResNet-50 RetinaNet) and of Defect-Aux-Net, then of the FPN segmenter
and Defect-Aux-Net with the lean top-down pathway (no 3x3 output convolution at P2,
the segmentation branch at 64 channels instead of 128).
Each row is a launch.train run in <output_dir>/<row>, all with the same schedule:
--budget=cpu is the automatic recipe (small network, input size from the data), the
first row's epochs fitted to 10 minutes and every other row trained with the first
row's epochs, batch size and learning rate (other networks as their small config);
--budget=paper is the paper's preset
(ResNet-50, 50 epochs, batch 128: TPU/GPU); --budget=smoke trains one epoch at 64x64,
to check that a table runs on your data.
Rows are measured on the test split, or on the validation split (selecting the best
epoch on a holdout of train) where there is no test split.

Running the same command again after a kill resumes the row it was training; finished
rows are not trained again (--overwrite trains them afresh). --rows=train_90,train_75
trains only those rows (their folder names; an unknown name lists the table's rows).
<output_dir>/<table>.md and <table>.json hold the table and the launch.train command
of each row: every row whose folder is complete, whichever command trained it, and
the rest marked as not run.

T6 trains nothing: latency and parameters do not depend on the weights, so each row
is its network untrained, at the dataset's class count, timed at batch 1 on one
thread (`defect_aux_net.performance.latency_table`): --budget=paper at the paper's
600x600 (ResNet-50 networks), cpu at 256x256 (the same networks, minutes on 2
cores), smoke the small networks at 64x64. Its table adds the sum of the single-task
networks and the multi-task network's ratios against their targets, for the default
design and for the lean one; a row's command is the launch.reproduce one that
measures it alone.
"""

import shlex

from absl import app, flags

import launch
from defect_aux_net import config
from defect_aux_net.paper_tables import TABLES
from defect_aux_net.row_runs import BUDGETS
from launch import flag_errors, run_flags

flags.adopt_module_key_flags(run_flags)

TABLE = flags.DEFINE_enum("table", None, list(TABLES), "The paper's table or figure.")
DATASET = flags.DEFINE_string("dataset", None, 'TFDS dataset every row trains on, "name" or '
                              '"name/config".')
BUDGET = flags.DEFINE_enum(
    "budget", "cpu", BUDGETS, "How rows are sized: cpu (minutes on 2 "
    "cores), paper (the paper's settings, for TPU/GPU) or smoke (one epoch at 64x64). "
    "T6: the paper's networks at 256x256 (cpu) or 600x600 (paper), the small ones at "
    "64x64 (smoke).",
)
OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Where the rows' run folders and the table (<table>.md, .json) go."
)
DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "TFDS data_dir; gs://... on Cloud TPU (default: ~/tensorflow_datasets)."
)
EPOCHS = flags.DEFINE_integer(
    "epochs", None, "Every row's epochs, instead of the budget's.", lower_bound=1
)
ROWS = flags.DEFINE_list(
    "rows", None, "Train only these rows (their folder names, e.g. train_90,train_75; "
    "default: all). The table also reads rows other runs completed in --output_dir and "
    "marks the rest as not run. At --budget=cpu or smoke the first row must be among "
    "them or complete: the others take its schedule.",
)
OVERWRITE = flags.DEFINE_boolean(
    "overwrite", False, "Train the rows (those of --rows, else all) afresh even where their "
    "folder is complete, deleting what it holds. To resume a killed --overwrite run, run "
    "it again without --overwrite, or it starts its finished rows over.",
)
TASKS = flags.DEFINE_list(
    "tasks", None, "Heads every row trains, a subset of classification,segmentation,"
    "detection holding the table's (default: those the dataset annotates).",
)

flags.mark_flags_as_required(["table", "dataset", "output_dir"])
flags.register_validator(
    "tasks",
    lambda value: value is None or (bool(value) and set(value) <= set(config.TASKS)),
    message=f"--tasks must be a non-empty subset of {','.join(config.TASKS)}.",
)
flags.register_validator(
    "strategy",
    lambda value: value != "multi_worker",
    message="--strategy=multi_worker trains one run on several machines; launch.reproduce "
    "trains a table's rows one after another on one: use launch.train for each row.",
)


def flag_of(field: str, value) -> str:
    """The launch.train flag that sets an experiment field (dotted for the model's)."""
    owner = "DefectAuxNetConfig." if field.startswith("model.") else "ExperimentConfig."
    name = flag_errors.flag_name(owner + field.removeprefix("model."))
    if isinstance(value, bool):
        return f"--{name}" if value else f"--no{name}"
    if field == "model.input_shape":
        value = value[:2]  # --input_size is height,width; channels are the preset's.
    if field == "time_budget":
        value = f"{value:g}s"
    if isinstance(value, (tuple, list)):
        value = ",".join(str(item) for item in value)
    return f"--{name}={value}"


def train_command(run, model_dir: str) -> str:
    """The launch.train command that trains (or, when complete, finds) the row's run."""
    command = ["python", "-m", "launch.train", f"--preset={run.preset}"]
    if run.model_preset is not None:
        command.append(f"--model_preset={run.model_preset}")
    command += [flag_of(field, value) for field, value in run.fields.items()]
    if DATA_DIR.value:
        command.append(f"--data_dir={DATA_DIR.value}")
    command += [f"--model_dir={model_dir}", "--noexport"]
    for flag in (run_flags.STRATEGY, run_flags.TPU, run_flags.JIT_COMPILE):
        if flag.value != flag.default:
            command.append(f"--{flag.name}={flag.value}")
    return shlex.join(command)


def reproduce_command(folder: str) -> str:
    """The launch.reproduce command that measures one row of a table that trains nothing."""
    command = ["python", "-m", "launch.reproduce", f"--table={TABLE.value}",
               f"--dataset={DATASET.value}", f"--budget={BUDGET.value}"]
    if DATA_DIR.value:
        command.append(f"--data_dir={DATA_DIR.value}")
    return shlex.join(command + [f"--output_dir={OUTPUT_DIR.value}", f"--rows={folder}"])


def measure_latency_table(table):
    """Table VI (`latency_table`): its rows measured, its report written and printed."""
    from defect_aux_net.config_errors import ConfigError
    from defect_aux_net.performance import latency_table

    for flag in (EPOCHS, TASKS, run_flags.STRATEGY, run_flags.TPU, run_flags.JIT_COMPILE):
        if flag.present:
            raise app.UsageError(
                f"--{flag.name}: table {table.key} trains nothing (its networks are timed "
                "untrained, batch 1, one thread, without XLA): leave it out."
            )
    try:
        results = latency_table.run_latency_table(
            table, BUDGET.value, DATASET.value, DATA_DIR.value, OUTPUT_DIR.value,
            ROWS.value, OVERWRITE.value,
        )
    except ConfigError as error:
        raise app.UsageError(flag_errors.flag_message(error)) from error
    commands = [reproduce_command(result.row.folder) for result in results]
    heading = f"{DATASET.value}, --budget={BUDGET.value}"
    paths = latency_table.write_report(table, results, commands, heading, OUTPUT_DIR.value)
    print(latency_table.report_markdown(table, results, commands, heading))
    print(f"Written: {paths['md']}, {paths['json']}")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    table = TABLES[TABLE.value]
    if table.task is None:
        measure_latency_table(table)
        return
    import keras

    from defect_aux_net.config_errors import ConfigError
    from defect_aux_net.training import strategies, table_runner

    if run_flags.STRATEGY.value == "tpu":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")  # As launch.train's auto.
    jit_compile = run_flags.jit_compile()
    try:
        strategy = strategies.make_strategy(run_flags.STRATEGY.value, run_flags.TPU.value)
        results = table_runner.run_table(
            table, BUDGET.value, DATASET.value, DATA_DIR.value, OUTPUT_DIR.value,
            strategy, jit_compile, EPOCHS.value, TASKS.value and tuple(TASKS.value),
            ROWS.value, OVERWRITE.value,
        )
    # Only what a flag can fix (the dataset, a folder of another run): any other error
    # keeps its traceback.
    except ConfigError as error:
        raise app.UsageError(flag_errors.flag_message(error)) from error
    commands = [train_command(result.run, result.model_dir) for result in results]
    heading = ", ".join(
        [DATASET.value, f"--budget={BUDGET.value}"]
        + [f"--{flag.name}={flag.serialize().split('=', 1)[1]}" for flag in (EPOCHS, TASKS)
           if flag.present]
    )
    paths = table_runner.write_report(table, results, commands, heading, OUTPUT_DIR.value)
    print(table_runner.report_markdown(table, results, commands, heading))
    print(f"Written: {paths['md']}, {paths['json']}")


def run():
    launch.run_command(main, __name__)


if __name__ == "__main__":
    app.run(main)
