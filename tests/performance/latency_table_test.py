import pytest

from defect_aux_net.models.model_builders import model_name
from defect_aux_net.paper_tables import LATENCY, PARAMETERS, TABLES
from defect_aux_net.performance import latency_table
from defect_aux_net.performance.latency_table import LatencyResult

TABLE = TABLES["T6"]


@pytest.mark.parametrize(
    "budget, shape, backbone",
    [("paper", (600, 600, 3), "resnet50"), ("cpu", (256, 256, 3), "resnet50"),
     ("smoke", (64, 64, 3), "resnet18")],
)
def test_every_budget_measures_the_papers_four_networks_at_one_input(budget, shape, backbone):
    configs = latency_table.row_configs(budget, num_classes=5)
    assert {key: model_name(config) for key, config in configs.items()} == {
        "classification": "resnet50", "segmentation": "defect_aux_net",
        "detection": "retinanet", "multi_task": "defect_aux_net",
    }
    assert list(configs) == [row.folder for row in TABLE.rows]
    for config in configs.values():
        assert (config.input_shape, config.num_classes, config.backbone) == (shape, 5, backbone)
    assert configs["segmentation"].tasks == ("segmentation",)
    assert configs["segmentation"].attention == "none"
    assert configs["multi_task"].tasks == ("classification", "segmentation", "detection")
    with pytest.raises(ValueError, match="Unknown budget 'tpu'"):
        latency_table.row_configs("tpu", 5)


def result(row, params, latency):
    measured = {"config": {"input_shape": [64, 64, 3]}, "params": params, "latency_s": latency,
                "cpu_per_wall": 1.0, "threads": 1, "warmup": 1, "repeats": 3}
    return LatencyResult(row, f"out/{row.folder}", measured,
                         {PARAMETERS: params / 1e6, LATENCY: latency})


def test_the_report_sums_the_single_task_networks_and_checks_the_ratios_by_hand():
    # Parameters 10 + 20 + 30 M, latencies 1 + 2 + 3 s; the multi-task network 15 M, 3.3 s.
    values = ((10e6, 1.0), (20e6, 2.0), (30e6, 3.0), (15e6, 3.3))
    results = [result(row, *value) for row, value in zip(TABLE.rows, values)]
    commands = [f"command {index}" for index in range(4)]
    markdown = latency_table.report_markdown(TABLE, results, commands, "d, --budget=smoke")
    lines = markdown.splitlines()
    assert "| ResNet-50 | 23.50 | 10.00 | 0.0654 | 1.0000 | 64x64x3 | `command 0` |" in lines
    assert "| Defect-Aux-Net | 36.20 | 15.00 | 0.1927 | 3.3000 | 64x64x3 | `command 3` |" in lines
    assert "| Sum of the single-task networks | 84.40 | 60.00 | 0.3540 | 6.0000 | | |" in lines
    # 3.3 / 6 = 0.55 > 0.544: missed; 3.3 / 3 = 1.1 <= 1.15: met; the paper's own ratios
    # are 0.1927 / 0.354 and 0.1927 / 0.178.
    assert ("| Table VI: multi-task latency / sum of single-task latencies | 0.544 | 0.550 "
            "| <= 0.544 | no |") in lines
    assert ("| Table VI: multi-task latency / ResNet-50 RetinaNet latency | 1.083 | 1.100 "
            "| <= 1.15 | yes |") in lines
    assert ("| Table VI: multi-task parameters / sum of single-task parameters | 0.429 "
            "| 0.250 |  | — |") in lines
    assert "median of 3 after 1 warm-up runs" in markdown
    report = latency_table.report_json(TABLE, results, commands, "d, --budget=smoke")
    assert report["single_task_sum"]["ours"] == {PARAMETERS: 60.0, LATENCY: 6.0}
    assert report["ratios"]["latency_ratio"]["ours"] == pytest.approx(0.55)
    assert [(target["measured"], target["met"]) for target in report["targets"]] == [
        (pytest.approx(0.55), False), (pytest.approx(1.1), True)
    ]
    assert report["rows"][1]["paper"] == {PARAMETERS: 26.9, LATENCY: 0.1106}
    assert report["not_run"] == []


def test_a_row_not_measured_is_named_and_leaves_the_ratios_unmeasured():
    results = [result(row, 1e6, 1.0) for row in TABLE.rows[:3]]
    markdown = latency_table.report_markdown(TABLE, results, ["c"] * 3, "d")
    lines = markdown.splitlines()
    assert "Not run: Defect-Aux-Net (multi_task)." in lines
    assert "| Defect-Aux-Net | 36.20 | not run | 0.1927 | not run | — | not run |" in lines
    assert ("| Table VI: multi-task latency / sum of single-task latencies | 0.544 | — "
            "| <= 0.544 | — |") in lines
    assert "The ratios need every row measured." in lines
    report = latency_table.report_json(TABLE, results, ["c"] * 3, "d")
    assert report["targets"] == [] and report["single_task_sum"]["ours"] is None
    assert report["not_run"] == [{"name": "Defect-Aux-Net", "row": "multi_task"}]
