"""launch.reproduce: a table's rows in their own run folders, resumed after a kill."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.experiments import ExperimentConfig
from defect_aux_net.paper_tables import TABLES
from defect_aux_net.training import run_files, table_runner
from launch import flag_errors
from tests.launch.conftest import REPO, check_success, files_in, run_launch

# Fig. 10 at the smallest budget a user has: one epoch at 64x64, the classification
# head alone (the one Fig. 10 measures).
REPRODUCE = (
    "--table=F10",
    "--dataset=synthetic_defects/small",
    "--budget=smoke",
    "--tasks=classification",
    "--jit_compile=false",
)
ENV = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2"}


# 231 s in .ci/run with three rows; two rows took 127 s of CPU where three took 160 s.
@pytest.mark.slow(seconds=185)
def test_a_killed_table_resumes_without_training_finished_rows_again(
    synthetic_data_dir, tmp_path
):
    # Two of the three rows: a kill between rows needs no more.
    output = tmp_path / "f10"
    args = (*REPRODUCE, "--rows=train_90,train_75", f"--data_dir={synthetic_data_dir}",
            f"--output_dir={output}")
    folders = [output / name for name in ("train_90", "train_75")]
    process = subprocess.Popen(
        [sys.executable, "-m", "launch.reproduce", *args],
        cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 900
    # Killed once the first row is complete and the second has started training.
    while not (folders[1] / "config.json").exists():
        assert process.poll() is None, "the runner ended before it could be killed"
        assert time.time() < deadline, "the second row did not start"
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (folders[0] / "complete.json").exists()
    assert not (folders[1] / "complete.json").exists()
    assert not (output / "F10.md").exists()
    finished = files_in(folders[0])

    result = run_launch("reproduce", *args, timeout=900)
    check_success(result)
    assert files_in(folders[0]) == finished, "the finished row was trained again"
    report = json.load(open(output / "F10.json"))
    markdown = open(output / "F10.md").read().splitlines()
    rows = [line for line in markdown if line.startswith("| ") and "% of the training" in line]
    assert len(rows) == 3 and len(report["rows"]) == 2
    # The row left out is named, and in the table, as not run.
    assert rows[2] == "| 50 % of the training data | — | not run | — | not run |"
    assert "Not run: 50 % of the training data (train_50)." in markdown
    assert report["not_run"] == [{"name": "50 % of the training data", "row": "train_50"}]
    assert not (output / "train_50").exists()
    first = json.load(open(folders[0] / "config.json"))
    for row, line, folder, percent in zip(report["rows"], rows, folders, (90, 75)):
        # Every row with the first row's schedule, whatever its fraction's recipe says.
        config = json.load(open(folder / "config.json"))
        assert (config["batch_size"], config["learning_rate"]) == (
            first["batch_size"], first["learning_rate"]
        )
        accuracy = json.load(open(folder / "metrics_test.json"))["classification"]["accuracy"]
        assert row["ours"] == {"classification.accuracy": accuracy}
        assert row["paper"] == {}  # Fig. 10's points are only plotted.
        assert row["epochs"] == 1
        assert line.startswith(f"| {percent} % of the training data | — | {accuracy:.3f} | 1 | ")
        assert f"--train_fraction={percent / 100:g}" in row["command"]
        assert config["train_fraction"] == percent / 100
    assert f"--batch_size={first['batch_size']}" in report["rows"][1]["command"]


# 74 s of CPU alone, building the synthetic dataset and starting TensorFlow twice.
@pytest.mark.slow(seconds=60)
def test_overwrite_trains_a_complete_row_again(synthetic_data_dir, tmp_path):
    # The first row's folder holds a complete run (of another configuration, which
    # costs no training to make): without --overwrite a complete row is only read.
    output = tmp_path / "f10"
    old = str(output / "train_90")
    paths = run_files.model_dir_paths(old)
    experiment = ExperimentConfig.from_preset("quickstart").for_classes(("a", "b"))
    run_files.write_config(experiment, ("a", "b"), paths["config"])
    metrics = os.path.join(old, "metrics_test.json")
    run_files.write_json({"classification": {"accuracy": 2.0}}, metrics)  # Impossible.
    run_files.write_completion(old, {"best": paths["best"], "metrics": metrics})

    result = run_launch(
        "reproduce", *REPRODUCE, "--rows=train_90", "--overwrite",
        f"--data_dir={synthetic_data_dir}", f"--output_dir={output}", timeout=900,
    )
    check_success(result)
    config = json.load(open(paths["config"]))
    assert (config["dataset"], config["train_fraction"]) == ("synthetic_defects/small", 0.9)
    accuracy = json.load(open(metrics))["classification"]["accuracy"]
    assert 0 <= accuracy <= 1
    report = json.load(open(output / "F10.json"))
    assert [(row["name"], row["ours"]) for row in report["rows"]] == [
        ("90 % of the training data", {"classification.accuracy": accuracy})
    ]
    assert [row["row"] for row in report["not_run"]] == ["train_75", "train_50"]


def test_an_unknown_row_is_a_flag_error_listing_the_tables_rows(tmp_path):
    # Raised before anything is read or trained, and printed by launch.reproduce in flags.
    with pytest.raises(ConfigError) as error:
        table_runner.run_table(TABLES["T4"], "cpu", "neu_det", None, str(tmp_path), None,
                               False, rows=["se", "cbam"])
    assert flag_errors.flag_message(error.value) == (
        "--rows=se,cbam: table T4 has no row 'cbam'; its rows: se_sa (SE + spatial "
        "attention), none (Without attention), se (SE attention), sa (Spatial attention)."
    )


@pytest.mark.slow(seconds=45)
def test_a_table_on_a_dataset_without_its_annotations_names_the_flag(
    train_test_data_dir, tmp_path
):
    # defect_folder/train_test has image labels only: Table I measures segmentation.
    result = run_launch(
        "reproduce", "--table=T1", "--dataset=defect_folder/train_test",
        f"--data_dir={train_test_data_dir}", f"--output_dir={tmp_path}", timeout=300,
    )
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]  # absl's usage error, printed last.
    assert message.endswith(
        "--dataset=defect_folder/train_test: table T1 measures segmentation, and no training "
        "image of defect_folder/train_test is annotated for it (it has ('classification',)); "
        "choose a dataset that is."
    ), message
    assert os.listdir(tmp_path) == []  # Nothing trained.
    help_text = run_launch("reproduce", "--help", timeout=300).stdout
    for flag in ("--table", "--dataset", "--budget", "--output_dir", "--epochs", "--tasks",
                 "--rows", "--[no]overwrite"):
        assert f"  {flag}" in help_text, flag
