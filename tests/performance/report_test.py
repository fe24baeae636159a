from defect_aux_net.performance.report import benchmark_markdown, check_targets

RESULTS = {
    "command": "python -m launch.benchmark --output=r.json",
    "machine": {"cpu_cores": 2, "tensorflow": "2.21.0", "keras": "3.15.1", "date": "2026-11-21"},
    "table6": {"latency_ratio": 0.5, "params_ratio": 0.4, "runs": {}},
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
        ("multi-task latency / sum of single-task latencies", 0.5, "<= 0.45", False),
        ("multi-task parameters / sum of single-task parameters", 0.4, "<= 0.45", True),
        ("pipeline images/s per core / model images/s", 3.0, ">= 3.0", True),
    ]


def test_markdown_lists_targets_and_parts():
    markdown = benchmark_markdown(RESULTS)
    assert "`python -m launch.benchmark --output=r.json`" in markdown
    assert "| multi-task latency / sum of single-task latencies | 0.5 | <= 0.45 | no |" in markdown
    assert "| pipeline images/s per core / model images/s | 3 | >= 3.0 | yes |" in markdown
    assert "30 images/s on one core" in markdown and "ratio 3." in markdown
    assert "| imports only | 600 |" in markdown
    assert "## Gated" not in markdown


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
    markdown = benchmark_markdown(results)
    assert "## Precision: neu_det validation, 192x192, batch 1" in markdown
    assert "CPU: Test CPU; flags: avx512f amx_bf16." in markdown
    assert "| bfloat16 | 0.4000 | 1.25x | 0.99 | avx512_bf16, amx_bf16 |" in markdown
    assert (
        "| bfloat16 | 0.9050 (+0.0050) | classification/per_class/pit/f1 -0.0200 |" in markdown
    )
