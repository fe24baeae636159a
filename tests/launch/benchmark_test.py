import json

import pytest

from tests.launch.conftest import check_success, run_launch


@pytest.mark.slow(seconds=165)
def test_table6_and_gated_streams_of_a_trained_run(trained_run, synthetic_data_dir, tmp_path):
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
    )
    check_success(result)
    results = json.loads(output.read_text())
    table6 = results["table6"]
    latency = table6["latency_s"]
    assert latency["single_task_sum"] == sum(
        latency[task] for task in ("classification", "segmentation", "detection")
    )
    assert table6["latency_ratio"] == latency["multi_task"] / latency["single_task_sum"]
    assert table6["params"]["multi_task"] < table6["params"]["single_task_sum"]
    assert table6["runs"]["128x128"]["1"]["params_ratio"] == table6["params_ratio"]
    gated = results["gated"]
    assert gated["identical_passing_results"]
    assert set(gated["streams"]) == {"5", "12", "50"}
    assert "paper_network" not in gated
    assert set(results["memory"]) >= {"imports only", "inference multi_task 128x128 threads=1"}
    report = (tmp_path / "results.md").read_text()
    assert "## Table VI" in report and "## Gated inference" in report
    assert report in result.stdout


def test_gated_part_needs_a_model_dir(tmp_path):
    result = run_launch("benchmark", f"--output={tmp_path / 'r.json'}", "--parts=gated")
    assert result.returncode != 0
    assert "The gated part needs --gate_model_dir" in result.stderr
