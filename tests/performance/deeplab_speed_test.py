import json

import pytest

from defect_aux_net.models.model_builders import build_model
from defect_aux_net.performance.deeplab_speed import speed_config, table1
from defect_aux_net.performance.precision_comparison import cpu_features
from defect_aux_net.performance.report import benchmark_markdown
from tests.launch.conftest import check_success, run_launch
from tests.launch.conftest import synthetic_data_dir  # noqa: F401  the shared dataset


def _run(step_s, latency_s, original_latency_s=None):
    """One round's measurements as `training_throughput` and `inference_latency` return them."""
    run = {
        "train": {"step_s": step_s, "xla_compiles": True, "peak_memory_bytes": 1},
        "eval_images_per_s": {"latency_s": latency_s, "params": 7, "peak_memory_bytes": 1},
    }
    if original_latency_s is not None:
        run["eval_original_images_per_s"] = {"latency_s": original_latency_s}
    return run


def test_table1_carries_the_paper_figures_and_divides_by_the_reference():
    runs = {
        # The reference: ResNet101. Medians of two rounds: means of the two.
        "severstal_resnet101": [_run(0.5, 0.1, 0.4), _run(0.25, 0.2, 0.2)],
        "severstal_efficientnetb1": [_run(0.2, 0.05, 0.1), _run(0.2, 0.05, 0.1)],
        "small": [_run(0.1, 0.01, 0.02), _run(0.1, 0.01, 0.02)],
    }
    params = {"severstal_resnet101": 60, "severstal_efficientnetb1": 9, "small": 1}
    table = table1(runs, params, 16, (256, 256), (256, 1600))

    resnet, efficientnet = (table["backbones"][name] for name in list(runs)[:2])
    assert table["reference"] == "severstal_resnet101"
    assert resnet["train_iterations_per_s"] == pytest.approx((2 + 4) / 2)
    assert resnet["train_images_per_s"] == pytest.approx(3 * 16)
    assert resnet["eval_images_per_s"] == pytest.approx((10 + 5) / 2)
    assert resnet["eval_original_images_per_s"] == pytest.approx((2.5 + 5) / 2)
    assert efficientnet["ratio_to_reference"] == pytest.approx(
        {"train_iterations_per_s": 5 / 3, "eval_images_per_s": 20 / 7.5,
         "eval_original_images_per_s": 10 / 3.75}
    )
    # Table 1 of the paper: EfficientNet B1 40 / 20 / 11, ResNet101 14 / 16 / 8.
    assert (efficientnet["paper"]["train_iterations_per_s"], resnet["paper"]["eval_images_per_s"],
            resnet["paper"]["eval_original_images_per_s"]) == (40, 16, 8)
    assert efficientnet["paper_ratio_to_reference"] == pytest.approx(
        {"train_iterations_per_s": 40 / 14, "eval_images_per_s": 20 / 16,
         "eval_original_images_per_s": 11 / 8}
    )
    assert resnet["ratio_to_reference"] == resnet["paper_ratio_to_reference"] == pytest.approx(
        dict.fromkeys(resnet["ratio_to_reference"], 1.0)
    )
    small = table["backbones"]["small"]
    assert small["paper"] is None and small["paper_ratio_to_reference"] is None
    assert (table["rounds"], table["input_size"], table["original_size"]) == (2, "256x256",
                                                                             "256x1600")
    assert table["paper_setup"]["hardware"] == "Nvidia Tesla P100 (Google Colab)"
    assert table["backbone_weights"] is None and table["cpu"] == cpu_features()

    report = benchmark_markdown(
        {"command": "c", "machine": dict.fromkeys(("cpu_cores", "tensorflow", "keras", "date")),
         "deeplab_speed": table}
    )
    assert ("| severstal_efficientnetb1 (EfficientNet B1) | 9 | train_iterations_per_s | 5 | 40 "
            "| 1.667 | 2.857 |") in report
    assert "| small | 1 | eval_images_per_s | 100 | n/a | 13.333 | n/a |" in report
    assert "backbone_weights=None" in report and "ratios to the reference" in report


# One round at 64x64 (the median over rounds is checked above): three fresh processes,
# one of them compiling the training step with XLA.
@pytest.mark.extended
@pytest.mark.slow(seconds=45)
def test_benchmark_writes_the_measured_figures(synthetic_data_dir, tmp_path):  # noqa: F811
    output = tmp_path / "results.json"
    result = run_launch(
        "benchmark",
        f"--output={output}",
        "--parts=deeplab_speed",
        "--deeplab_presets=small",
        "--deeplab_input_size=64,64",
        "--deeplab_original_size=",
        "--deeplab_batch_size=2",
        "--deeplab_rounds=1",
        "--train_steps=2",
        "--warmup=0",
        "--repeats=2",
        "--dataset=synthetic_defects/small",
        f"--data_dir={synthetic_data_dir}",
        fresh_process=False,
    )
    check_success(result)
    results = json.loads(output.read_text())
    speed = results["deeplab_speed"]
    small = speed["backbones"]["small"]
    [run] = small["runs"]
    assert speed["rounds"] == 1 and speed["original_size"] is None
    # The figures are `training_throughput`'s and `inference_latency`'s: a step of
    # 2 images, a batch-1 inference.
    train, evaluation = run["train"], run["eval_images_per_s"]
    assert train["images_per_s"] == pytest.approx(2 / train["step_s"])
    assert small["train_iterations_per_s"] == pytest.approx(1 / train["step_s"])
    assert small["train_images_per_s"] == pytest.approx(train["images_per_s"])
    assert small["eval_images_per_s"] == pytest.approx(1 / evaluation["latency_s"])
    assert train["xla_compiles"] and "eval_original_images_per_s" not in small
    # The network measured is the small preset without ImageNet weights, at 64x64 and
    # with the dataset's 4 classes.
    assert small["params"] == build_model(speed_config("small", (64, 64), 4)).count_params()
    assert small["ratio_to_reference"] == {
        "train_iterations_per_s": 1.0, "eval_images_per_s": 1.0
    }
    assert speed["cpu"] == cpu_features() and speed["batch_size"] == 2
    assert {
        "training DeepLabV3+ small 64x64 batch 2", "inference DeepLabV3+ small 64x64 batch 1"
    } <= set(results["memory"])
    report = (tmp_path / "results.md").read_text()
    assert "## DeepLabV3+ backbones (Nie et al., Table 1)" in report
    assert f"| small | {small['params']:,} | train_iterations_per_s |" in report


def test_a_size_the_network_cannot_take_names_the_flag(tmp_path):
    result = run_launch(
        "benchmark", f"--output={tmp_path / 'r.json'}", "--parts=deeplab_speed",
        "--deeplab_original_size=256,1700", fresh_process=False,
    )
    assert result.returncode != 0
    assert "--deeplab_original_size (height,width)" in result.stderr
    assert "multiples of 16" in result.stderr
