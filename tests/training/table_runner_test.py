import json
import types

import pytest

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.data import datasets
from defect_aux_net.paper_tables import PARAMETERS, TABLES
from defect_aux_net.row_runs import row_run
from defect_aux_net.training import table_runner
from defect_aux_net.training.table_runner import RowResult


def builder_with(*splits):
    return types.SimpleNamespace(info=types.SimpleNamespace(splits=dict.fromkeys(splits)))


def test_rows_are_measured_on_test_or_else_on_validation_with_a_holdout_to_select_on():
    assert table_runner.evaluation_splits(builder_with("train", "test"), "a") == {}
    assert table_runner.evaluation_splits(builder_with("train", "validation"), "a") == {
        "validation_split": "holdout(train,10%,seed=0)", "test_split": "validation"
    }
    with pytest.raises(ConfigError, match="neither a test nor a validation split") as error:
        table_runner.evaluation_splits(builder_with("train"), "only_train")
    assert error.value.field == "ExperimentConfig.dataset"


def test_a_table_needs_its_task_annotated(monkeypatch):
    summary = datasets.SplitSummary(num_examples=10, with_masks=0, with_boxes=10, defective=6)
    monkeypatch.setattr(datasets, "summarize_split", lambda builder, split: summary)
    tasks = table_runner.annotated_tasks(None, TABLES["T4"], "neu_det")
    assert tasks == ("classification", "detection")
    with pytest.raises(ConfigError, match="table T1 measures segmentation") as error:
        table_runner.annotated_tasks(None, TABLES["T1"], "neu_det")
    assert error.value.field == "ExperimentConfig.dataset"


def test_figures_are_read_from_the_metrics_file(tmp_path):
    metrics = tmp_path / "metrics_test.json"
    metrics.write_text(json.dumps({"segmentation": {"iou": 0.25, "dice": 0.4}}))
    figures = table_runner.row_figures(TABLES["T1"], {"metrics": str(metrics), "best": ""})
    assert figures == {"segmentation.iou": 0.25, "segmentation.dice": 0.4}
    with pytest.raises(ValueError, match="has no 'classification.accuracy'"):
        table_runner.row_figures(TABLES["F10"], {"metrics": str(metrics), "best": ""})


def test_the_report_puts_the_papers_numbers_beside_ours(tmp_path):
    table = TABLES["T4"]
    results = [
        # Epochs: passes over the training split, fractional where a budget chose them.
        RowResult(row_run(table, row, "paper", "d"), f"/runs/{row.folder}", 1 + index * 0.85,
                  {"classification.accuracy": 0.5 + index / 8, PARAMETERS: 1.23456})
        for index, row in enumerate(table.rows[:2])
    ]
    commands = ["python -m launch.train --a", "python -m launch.train --b"]
    paths = table_runner.write_report(table, results, commands, "d, --budget=smoke", str(tmp_path))
    lines = open(paths["md"]).read().splitlines()
    assert lines[0] == "# T4: Attention in the residual blocks of Defect-Aux-Net"
    assert lines[2] == "Paper: Table IV (TekErreka). Ours: d, --budget=smoke."
    # The table's last two rows have no result: named, and in the table as not run.
    assert lines[4] == "Not run: SE attention (se), Spatial attention (sa)."
    assert lines[6] == (
        "| Row | Accuracy (paper) | Accuracy (ours) | Parameters (M) (paper) | "
        "Parameters (M) (ours) | Epochs | Command |"
    )
    assert lines[8] == (
        "| SE + spatial attention | 0.971 | 0.500 | 36.200 | 1.235 | 1 | "
        "`python -m launch.train --a` |"
    )
    assert lines[9].startswith("| Without attention | 0.962 | 0.625 | 33.200 | 1.235 | 1.85 |")
    assert lines[10:] == [
        "| SE attention | 0.968 | not run | 35.700 | not run | — | not run |",
        "| Spatial attention | 0.963 | not run | 33.500 | not run | — | not run |",
    ]
    report = json.load(open(paths["json"]))
    assert report["not_run"] == [
        {"name": "SE attention", "row": "se"}, {"name": "Spatial attention", "row": "sa"}
    ]
    assert len(report["rows"]) == 2
    assert report["rows"][1] == {
        "name": "Without attention",
        "model_dir": "/runs/none",
        "command": "python -m launch.train --b",
        "epochs": 1.85,
        "paper": {"classification.accuracy": 0.962, PARAMETERS: 33.2},
        "ours": {"classification.accuracy": 0.625, PARAMETERS: 1.23456},
    }


def test_a_complete_table_names_no_row_as_not_run():
    table = TABLES["F10"]
    results = [RowResult(row_run(table, row, "paper", "d"), "", 1, {"classification.accuracy": 0.5})
               for row in table.rows]
    markdown = table_runner.report_markdown(table, results, ["c"] * 3, "d")
    assert "not run" not in markdown.lower()
    assert table_runner.report_json(table, results, ["c"] * 3, "d")["not_run"] == []


def test_rows_are_chosen_by_folder_in_the_tables_order():
    table = TABLES["F10"]
    assert table_runner.selected_rows(table, None) == table.rows
    chosen = table_runner.selected_rows(table, ["train_50", "train_90"])
    assert [row.folder for row in chosen] == ["train_90", "train_50"]
    with pytest.raises(ConfigError) as error:
        table_runner.selected_rows(table, ["train_90", "train_60"])
    assert error.value.field == "rows"
    assert str(error.value) == (
        "rows=train_90,train_60: table F10 has no row 'train_60'; its rows: train_90 (90 % of "
        "the training data), train_75 (75 % of the training data), train_50 (50 % of the "
        "training data)."
    )
    with pytest.raises(ConfigError, match="rows=: table F10 needs a row; its rows: train_90"):
        table_runner.selected_rows(table, [])


def test_rows_after_the_first_need_its_schedule_before_anything_trains(tmp_path):
    # At a budget whose first row's recipe chooses the schedule, a later row alone is
    # refused while the first row is not complete: before the dataset (none here) is read.
    with pytest.raises(ConfigError) as error:
        table_runner.run_table(TABLES["F10"], "smoke", "no_such_dataset", None, str(tmp_path),
                               None, False, rows=["train_75"])
    assert error.value.field == "rows"
    assert str(error.value).startswith(
        "rows=train_75: at the smoke budget every row trains with the schedule (epochs, "
        "passes_per_epoch, batch_size, learning_rate) the first row's recipe chooses, and "
        "the first row, "
        f"train_90, is not complete in {tmp_path}: include it, or train it first."
    )
    assert list(tmp_path.iterdir()) == []
    # At the paper budget each row has its preset's schedule: the dataset is read next.
    with pytest.raises(ConfigError, match="no_such_dataset") as error:
        table_runner.run_table(TABLES["F10"], "paper", "no_such_dataset", None, str(tmp_path),
                               None, False, rows=["train_75"])
    assert error.value.field == "ExperimentConfig.dataset"
