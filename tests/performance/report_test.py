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
