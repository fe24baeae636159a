from defect_aux_net.performance.report import benchmark_markdown, check_targets

RESULTS = {
    "command": "python -m launch.benchmark --output=r.json",
    "machine": {"cpu_cores": 2, "tensorflow": "2.21.0", "keras": "3.15.1", "date": "2026-11-21"},
    "table6": {"latency_ratio": 0.5, "params_ratio": 0.4, "detection_latency_ratio": 1.2,
               "runs": {}},
    "table6_shared_backbone": {
        "latency_ratio": 0.5, "params_ratio": 0.4, "detection_latency_ratio": 1.1, "runs": {},
    },
    "pipeline": {
        "images_per_s_per_core": 30.0,
        "cpu_per_wall": 1.0,
        "model_images_per_s": 10.0,
        "ratio": 3.0,
        "input_size": "128x800",
    },
    "memory": {"imports only": 600 * 2**20},
}


def test_targets_are_checked_for_the_parts_measured():
    assert check_targets(RESULTS) == [
        ("Table VI: multi-task latency / sum of single-task latencies", 0.5, "<= 0.544", True),
        ("Table VI: multi-task latency / ResNet-50 RetinaNet latency", 1.2, "<= 1.15", False),
        (
            "shared backbone: multi-task latency / sum of single-head latencies",
            0.5, "<= 0.45", False,
        ),
        (
            "shared backbone: multi-task parameters / sum of single-head parameters",
            0.4, "<= 0.45", True,
        ),
        ("pipeline images/s per core / model images/s", 3.0, ">= 3.0", True),
    ]


def test_markdown_lists_targets_and_parts():
    markdown = benchmark_markdown(RESULTS)
    assert "`python -m launch.benchmark --output=r.json`" in markdown
    assert (
        "| Table VI: multi-task latency / sum of single-task latencies | 0.5 | <= 0.544 | yes |"
        in markdown
    )
    assert "| pipeline images/s per core / model images/s | 3 | >= 3.0 | yes |" in markdown
    assert "30 images/s on one core" in markdown and "ratio 3." in markdown
    assert "| imports only | 600 |" in markdown
    assert "## Gated" not in markdown


def _table(latency, params, cpu=1.0):
    """A `table6` result of latencies and parameters (classification, segmentation,
    detection, multi-task), its sums and ratios by hand."""
    keys = ("classification", "segmentation", "detection", "multi_task")
    table = {
        "latency_s": dict(zip(keys, latency), single_task_sum=sum(latency[:3])),
        "params": dict(zip(keys, params), single_task_sum=sum(params[:3])),
        "cpu_per_wall": dict.fromkeys(keys, cpu),
        "latency_ratio": latency[3] / sum(latency[:3]),
        "params_ratio": params[3] / sum(params[:3]),
        "detection_latency_ratio": latency[3] / latency[2],
    }
    return table | {"runs": {"600x600": {"1": table}}}


def test_both_table6s_with_the_papers_figures_beside_the_papers_networks():
    results = dict(
        RESULTS,
        table6=_table((0.1, 0.2, 0.4, 0.35), (20, 30, 40, 45)),
        table6_shared_backbone=_table((0.2, 0.3, 0.5, 0.35), (25, 35, 41, 45), cpu=0.99),
    )
    markdown = benchmark_markdown(results)
    paper, shared = markdown.split("## Table VI, shared backbone")
    assert "## Table VI: batch-1 inference, the paper's networks" in paper
    assert "| ResNet-50 | 20 | 23.5 | 0.1000 | 0.0654 | 1.00 |" in paper
    assert "| ResNet-50 RetinaNet | 40 | 34.0 | 0.4000 | 0.178 | 1.00 |" in paper
    assert "| sum of the single-task networks | 90 | 84.4 | 0.7000 | 0.354 |  |" in paper
    assert "| Defect-Aux-Net | 45 | 36.2 | 0.3500 | 0.1927 | 1.00 |" in paper
    # Ours 0.35 / 0.7, 45 / 90, 0.35 / 0.4; the paper's 0.1927 / 0.354, 36.2 / 84.4,
    # 0.1927 / 0.178.
    assert (
        "Multi-task: latency ratio 0.500 (paper 0.544), parameter ratio 0.500 (paper 0.429), "
        "latency over the detection network's 0.875 (paper 1.083)." in paper
    )
    assert "| segmentation | 35 | 0.3000 | 0.99 |" in shared
    assert "| single_task_sum | 101 | 1.0000 |  |" in shared
    assert (
        "Multi-task: latency ratio 0.350, parameter ratio 0.446, latency over the detection "
        "network's 0.700." in shared
    )
    assert "paper" not in shared.split("## Gated")[0].split("## Input")[0]


def test_targets_follow_nested_paths():
    results = {
        "gated": {
            "ratio_5": 0.9,
            "identical_passing_results": True,
            "paper_network": {"ratio_5": 0.45},
        }
    }
    assert [(name.split(", ")[-1], met) for name, _, _, met in check_targets(results)] == [
        ("the trained network", False),
        ("the paper network (trained gate deciding)", True),
        ("passing images: gated results = ungated results (to float32 rounding)", True),
    ]


PRECISION = {
    "split": "neu_det validation",
    "input_size": "192x192",
    "cpu": {"model_name": "Test CPU", "flags": ["avx512f", "amx_bf16"]},
    "cpu_features_needed": {"float32": ["avx512f"], "bfloat16": ["avx512_bf16", "amx_bf16"]},
    "speedup": {"float32": 1.0, "bfloat16": 1.25},
    "max_metric_change": {"float32": 0.0, "bfloat16": 0.005},
    "metrics": {"float32": {"image_ap/ap": 0.9}, "bfloat16": {"image_ap/ap": 0.905}},
    "metric_change": {"float32": {"image_ap/ap": 0.0}, "bfloat16": {"image_ap/ap": 0.005}},
    "largest_change_any_metric": {
        "float32": {"metric": "image_ap/ap", "change": 0.0},
        "bfloat16": {"metric": "classification/per_class/pit/f1", "change": -0.02},
    },
    "runs": {
        "1": {
            "latency_s": {"float32": 0.5, "bfloat16": 0.4},
            "speedup": {"float32": 1.0, "bfloat16": 1.25},
            "cpu_per_wall": {"float32": 1.0, "bfloat16": 0.99},
        }
    },
}


def test_precision_targets_and_table():
    results = dict(RESULTS, precision=PRECISION)
    checked = {name: met for name, _, _, met in check_targets(results)}
    assert checked["bfloat16 speed-up over float32"] is False
    assert checked["bfloat16: largest change of a test metric"] is True
    assert "INT8 (OpenVINO) speed-up over float32" not in checked  # Not measured.
    assert "bfloat16 (OpenVINO) speed-up over float32" not in checked
    markdown = benchmark_markdown(results)
    assert "## Precision: neu_det validation, 192x192, batch 1" in markdown
    assert "CPU: Test CPU; flags: avx512f amx_bf16." in markdown
    assert "| bfloat16 | 0.4000 | 1.25x | 0.99 | avx512_bf16, amx_bf16 |" in markdown
    assert (
        "| bfloat16 | 0.9050 (+0.0050) | classification/per_class/pit/f1 -0.0200 |" in markdown
    )


def test_the_openvino_bfloat16_export_is_judged_by_the_bfloat16_targets():
    precision = {
        "speedup": {"float32": 1.0, "bfloat16": 1.01, "openvino_bfloat16": 2.17},
        "max_metric_change": {"float32": 0.0, "bfloat16": 0.001, "openvino_bfloat16": 0.012},
    }
    checked = {name: met for name, _, _, met in check_targets({"precision": precision})}
    assert checked == {
        "bfloat16 speed-up over float32": False,
        "bfloat16: largest change of a test metric": True,
        "bfloat16 (OpenVINO) speed-up over float32": True,
        "bfloat16 (OpenVINO): largest change of a test metric": False,
    }
