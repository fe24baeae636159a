"""launch.reproduce: a table's rows in their own run folders, resumed after a kill."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.launch.conftest import REPO, check_success, files_in, run_launch

# Fig. 10's three rows at the smallest budget a user has: one epoch at 64x64, the
# classification head alone (the one Fig. 10 measures).
REPRODUCE = (
    "--table=F10",
    "--dataset=synthetic_defects/small",
    "--budget=smoke",
    "--tasks=classification",
    "--jit_compile=false",
)
ENV = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2"}


# 287 s in .ci/run while a training run shared the machine.
@pytest.mark.slow(seconds=240)
def test_a_killed_table_resumes_without_training_finished_rows_again(
    synthetic_data_dir, tmp_path
):
    output = tmp_path / "f10"
    args = (*REPRODUCE, f"--data_dir={synthetic_data_dir}", f"--output_dir={output}")
    folders = [output / name for name in ("train_90", "train_75", "train_50")]
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
    assert len(rows) == len(report["rows"]) == 3
    first = json.load(open(folders[0] / "config.json"))
    for row, line, folder, percent in zip(report["rows"], rows, folders, (90, 75, 50)):
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
    assert f"--batch_size={first['batch_size']}" in report["rows"][2]["command"]


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
    for flag in ("--table", "--dataset", "--budget", "--output_dir", "--epochs", "--tasks"):
        assert f"  {flag}" in help_text, flag
