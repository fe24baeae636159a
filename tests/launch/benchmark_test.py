import json

import pytest

from defect_aux_net.config import TASKS, DefectAuxNetConfig
from defect_aux_net.data import datasets
from defect_aux_net.evaluation.model_evaluation import evaluate_model
from defect_aux_net.models.defect_aux_net import DefectAuxNet
from defect_aux_net.models.image_classifier import ImageClassifier
from defect_aux_net.models.image_classifier_config import ImageClassifierConfig
from defect_aux_net.models.model_builders import model_config
from defect_aux_net.performance.precision_comparison import cpu_features, headline_metrics
from defect_aux_net.training import run_files, thresholds_file
from tests.launch.conftest import check_success, run_launch

PRECISION_SPLIT = "test[:16]"


# One launch.benchmark run measures every part of a trained run: a process start and
# the run's loading are paid once (the parts' checks follow, one function each).
@pytest.mark.extended
@pytest.mark.slow(seconds=320)
def test_every_part_of_a_trained_run(trained_run, synthetic_data_dir, tmp_path):
    model_dir, _ = trained_run
    output = tmp_path / "results.json"
    result = run_launch(
        "benchmark",
        f"--output={output}",
        "--parts=table6",
        "--parts=gated",
        "--table6_presets=small",
        "--threads=1",
        "--warmup=0",
        "--repeats=1",
        f"--gate_model_dir={model_dir}",
        f"--data_dir={synthetic_data_dir}",
        "--stream_length=20",
        # The paper-network streams are `gated_streams` with per-image thresholds, which
        # tests/performance covers; skipped here to keep the suite short.
        "--gated_paper_preset=",
        "--parts=precision",
        f"--precision_model_dir={model_dir}",
        f"--precision_split={PRECISION_SPLIT}",
        # bfloat16 is float32's Keras path under another dtype policy (`with_precision`,
        # whose bfloat16 export tests/launch/evaluate_test.py checks); the OpenVINO
        # float32 variants are int8's code path with another export.
        "--precision_variants=float32,int8",
        "--precision_calibration_images=8",
        timeout=900,
    )
    check_success(result)
    results, report = json.loads(output.read_text()), (tmp_path / "results.md").read_text()
    check_table6(results, report)
    check_gated_streams(result, results, report)
    check_precision(model_dir, synthetic_data_dir, results, report)


def check_table6(results, report):
    """Both tables' sums and ratios by arithmetic; the paper's networks' parameters
    counted on the networks built here."""
    paper, shared = results["table6"], results["table6_shared_backbone"]
    for table in (paper, shared):
        latency = table["latency_s"]
        assert latency["single_task_sum"] == sum(latency[task] for task in TASKS)
        assert table["latency_ratio"] == latency["multi_task"] / latency["single_task_sum"]
        assert table["detection_latency_ratio"] == latency["multi_task"] / latency["detection"]
        assert table["runs"]["128x128"]["1"]["params_ratio"] == table["params_ratio"]
    # The small preset's networks at Defect-Aux-Net's small input: the ResNet-18
    # classifier, a plain FPN segmenter, RetinaNet and Defect-Aux-Net.
    networks = {
        "classification": ImageClassifier(
            ImageClassifierConfig.from_preset("small", input_shape=(128, 128, 3))
        ),
        "segmentation": DefectAuxNet(
            DefectAuxNetConfig.from_preset("small", tasks=("segmentation",), attention="none")
        ),
        "detection": DefectAuxNet(model_config("retinanet", "small")),
        "multi_task": DefectAuxNet(DefectAuxNetConfig.from_preset("small")),
    }
    params = {name: network.count_params() for name, network in networks.items()}
    params["single_task_sum"] = sum(params[task] for task in TASKS)
    assert paper["params"] == params
    assert paper["params_ratio"] == params["multi_task"] / params["single_task_sum"]
    # The multi-task network is in both tables, measured once.
    assert shared["latency_s"]["multi_task"] == paper["latency_s"]["multi_task"]
    assert shared["params"]["multi_task"] < shared["params"]["single_task_sum"]
    # With SE + SA attention, unlike the paper's plain segmenter.
    assert shared["params"]["segmentation"] > params["segmentation"]
    assert {
        f"inference {name} 128x128 threads=1"
        for name in (*TASKS, "multi_task", *(f"shared-backbone {task}" for task in TASKS))
    } <= set(results["memory"])
    assert "inference shared-backbone multi_task 128x128 threads=1" not in results["memory"]
    assert "## Table VI: batch-1 inference, the paper's networks" in report
    assert "| ResNet-50 RetinaNet | " in report and "## Table VI, shared backbone" in report


def check_gated_streams(result, results, report):
    gated = results["gated"]
    assert gated["identical_passing_results"]
    assert set(gated["streams"]) == {"5", "12", "50"}
    assert "paper_network" not in gated
    assert "imports only" in results["memory"]
    assert "## Gated inference" in report
    assert report in result.stdout


def test_gated_part_needs_a_model_dir(tmp_path):
    result = run_launch("benchmark", f"--output={tmp_path / 'r.json'}", "--parts=gated")
    assert result.returncode != 0
    assert "The gated part needs --gate_model_dir" in result.stderr


def check_precision(model_dir, synthetic_data_dir, results, report):
    """Its figures against their own timings and an independent evaluation."""
    precision = results["precision"]
    variants = ["float32", "int8"]
    assert "inference int8 64x64 threads=1" in results["memory"]
    assert "## Precision: synthetic_defects/small test[:16], 64x64, batch 1" in report
    assert list(precision["speedup"]) == variants
    run = precision["runs"]["1"]
    for name in variants:
        assert run["speedup"][name] == run["latency_s"]["float32"] / run["latency_s"][name]
    assert precision["speedup"] == run["speedup"]
    assert precision["cpu"] == cpu_features()
    assert precision["cpu_features_needed"]["int8"] == ["avx512_vnni", "amx_int8"]
    # float32's metrics are evaluate_model's on the run's best model.
    experiment, class_names = run_files.read_config(model_dir)
    thresholds = thresholds_file.read_thresholds(model_dir, class_names)
    builder = datasets.load_builder(experiment.dataset, synthetic_data_dir)
    model = run_files.load_model(run_files.model_dir_paths(model_dir)["best"])
    expected = headline_metrics(
        evaluate_model(model, builder, PRECISION_SPLIT, class_names, thresholds).result()
    )
    assert precision["metrics"]["float32"] == pytest.approx(expected, abs=1e-12)
    # All three tasks: accuracy, image AP, mAP and Dice are each compared.
    assert {"classification/accuracy", "image_ap/ap", "detection/map50", "segmentation/dice"} <= (
        set(precision["metrics"]["int8"])
    )
    for name in variants:
        changes = {
            key: value - precision["metrics"]["float32"][key]
            for key, value in precision["metrics"][name].items()
        }
        assert precision["metric_change"][name] == pytest.approx(changes)
        assert precision["max_metric_change"][name] == pytest.approx(
            max(abs(value) for value in changes.values())
        )
