"""launch.reproduce: a table's rows in their own run folders, resumed after a kill."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from defect_aux_net.config import DefectAuxNetConfig
from defect_aux_net.config_errors import ConfigError
from defect_aux_net.data import datasets
from defect_aux_net.experiments import ExperimentConfig
from defect_aux_net.models.defect_aux_net import DefectAuxNet
from defect_aux_net.models.image_classifier import ImageClassifier
from defect_aux_net.models.image_classifier_config import ImageClassifierConfig
from defect_aux_net.models.model_builders import model_config
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
@pytest.mark.extended
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
    # Killed once the first row is complete and the second has started training (and
    # when the wait fails, so that the runner does not outlive the test).
    try:
        while not (folders[1] / "config.json").exists():
            assert process.poll() is None, "the runner ended before it could be killed"
            assert time.time() < deadline, "the second row did not start"
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert (folders[0] / "complete.json").exists()
    assert not (folders[1] / "complete.json").exists()
    assert not (output / "F10.md").exists()
    finished = files_in(folders[0])

    # Resumed in this process: a new one would start TensorFlow again (10 s of CPU).
    result = run_launch("reproduce", *args, fresh_process=False)
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
@pytest.mark.extended
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
        f"--data_dir={synthetic_data_dir}", f"--output_dir={output}", fresh_process=False,
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


# One child process times the six small networks once each at 64x64.
@pytest.mark.slow(seconds=55)
def test_table_six_times_the_papers_networks_untrained_beside_the_papers_figures(
    synthetic_data_dir, tmp_path
):
    output = tmp_path / "t6"
    args = ("--table=T6", "--dataset=synthetic_defects/small", "--budget=smoke",
            f"--data_dir={synthetic_data_dir}", f"--output_dir={output}")
    result = run_launch("reproduce", *args, fresh_process=False)
    check_success(result)
    report = json.loads((output / "T6.json").read_text())
    markdown = (output / "T6.md").read_text()
    assert markdown in result.stdout
    # The small networks (ResNet-18) at 64x64 with the dataset's classes, built here.
    classes = len(datasets.class_names(datasets.load_builder(
        "synthetic_defects/small", synthetic_data_dir
    )))
    small = {"input_shape": (64, 64, 3), "num_classes": classes}
    lean = {"p2_output_conv": False, "segmentation_channels": 64}
    networks = {
        "classification": ImageClassifier(ImageClassifierConfig.from_preset("small", **small)),
        "segmentation": DefectAuxNet(DefectAuxNetConfig.from_preset(
            "small", tasks=("segmentation",), attention="none", **small
        )),
        "detection": DefectAuxNet(model_config("retinanet", "small", **small)),
        "multi_task": DefectAuxNet(DefectAuxNetConfig.from_preset("small", **small)),
        "segmentation_lean": DefectAuxNet(DefectAuxNetConfig.from_preset(
            "small", tasks=("segmentation",), attention="none", **small, **lean
        )),
        "multi_task_lean": DefectAuxNet(DefectAuxNetConfig.from_preset("small", **small, **lean)),
    }
    params = {name: network.count_params() for name, network in networks.items()}
    # Typed from the paper's Table VI: parameters (M), latency (s).
    paper = {"classification": ("ResNet-50", 23.5, 0.0654),
             "segmentation": ("ResNet-50 FPN", 26.9, 0.1106),
             "detection": ("ResNet-50 RetinaNet", 34.0, 0.1780),
             "multi_task": ("Defect-Aux-Net", 36.2, 0.1927),
             "segmentation_lean": ("ResNet-50 FPN, lean top-down", None, None),
             "multi_task_lean": ("Defect-Aux-Net, lean top-down", None, None)}
    assert [row["row"] for row in report["rows"]] == list(paper)
    latency = {}
    for row in report["rows"]:
        name, paper_params, paper_latency = paper[row["row"]]
        measured = json.loads((output / row["row"] / "latency.json").read_text())
        latency[row["row"]] = measured["latency_s"]
        assert row["ours"] == {"parameters_millions": params[row["row"]] / 1e6,
                               "latency_s": measured["latency_s"]}
        assert (measured["params"], measured["threads"], measured["repeats"]) == (
            params[row["row"]], 1, 1
        )
        assert 0 < measured["latency_s"] < 60
        assert row["command"] == (
            f"python -m launch.reproduce --table=T6 --dataset=synthetic_defects/small "
            f"--budget=smoke --data_dir={synthetic_data_dir} --output_dir={output} "
            f"--rows={row['row']}"
        )
        paper_figures = ("—", "—") if paper_params is None else (
            f"{paper_params:.2f}", f"{paper_latency:.4f}"
        )
        assert (
            f"| {name} | {paper_figures[0]} | {params[row['row']] / 1e6:.2f} "
            f"| {paper_figures[1]} | {measured['latency_s']:.4f} | 64x64x3 "
            f"| `{row['command']}` |"
        ) in markdown.splitlines()
    single = ("classification", "segmentation", "detection")
    assert report["single_task_sum"] == {
        "paper": {"parameters_millions": pytest.approx(84.4), "latency_s": pytest.approx(0.354)},
        "ours": {"parameters_millions": sum(params[key] for key in single) / 1e6,
                 "latency_s": sum(latency[key] for key in single)},
    }
    ratio = latency["multi_task"] / sum(latency[key] for key in single)
    detection_ratio = latency["multi_task"] / latency["detection"]
    assert [(target["measured"], target["bound"], target["met"])
            for target in report["targets"]] == [
        (pytest.approx(ratio), "<= 0.544", ratio <= 0.544),
        (pytest.approx(detection_ratio), "<= 1.15", detection_ratio <= 1.15),
    ]
    assert (f"| Table VI: multi-task latency / ResNet-50 RetinaNet latency | 1.083 "
            f"| {detection_ratio:.3f} | <= 1.15 | {'yes' if detection_ratio <= 1.15 else 'no'} |"
            ) in markdown.splitlines()
    lean_sum = latency["classification"] + latency["segmentation_lean"] + latency["detection"]
    assert [target["measured"] for target in report["lean"]["targets"]] == [
        pytest.approx(latency["multi_task_lean"] / lean_sum),
        pytest.approx(latency["multi_task_lean"] / latency["detection"]),
    ]

    # Run again: every row is read, none measured again; at another budget the rows
    # measured at this one are refused, not mixed.
    measured_files = files_in(output)
    check_success(run_launch("reproduce", *args, fresh_process=False))
    assert files_in(output) == measured_files | {
        name: files_in(output)[name] for name in ("T6.md", "T6.json")
    }
    assert (output / "T6.md").read_text() == markdown
    again = run_launch("reproduce", *args[:2], "--budget=cpu", *args[3:], fresh_process=False)
    assert again.returncode == 1
    assert again.stderr.strip().splitlines()[-1] == (
        f"--overwrite: {output / 'classification' / 'latency.json'} measured another "
        f"network or input (64x64x3, {classes} classes) than the cpu budget's (256x256x3, "
        f"{classes} classes): measure it again with --overwrite, or choose another output_dir."
    )
    epochs = run_launch("reproduce", *args, "--epochs=2", fresh_process=False)
    assert epochs.stderr.strip().splitlines()[-1] == (
        "--epochs: table T6 trains nothing (its networks are timed untrained, batch 1, one "
        "thread, without XLA): leave it out."
    )
