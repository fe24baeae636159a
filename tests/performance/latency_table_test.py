import dataclasses

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
def test_every_budget_measures_the_papers_four_networks_and_the_lean_two_at_one_input(
    budget, shape, backbone
):
    configs = latency_table.row_configs(budget, num_classes=5)
    assert {key: model_name(config) for key, config in configs.items()} == {
        "classification": "resnet50", "segmentation": "defect_aux_net",
        "detection": "retinanet", "multi_task": "defect_aux_net",
        "segmentation_lean": "defect_aux_net", "multi_task_lean": "defect_aux_net",
    }
    assert list(configs) == [row.folder for row in TABLE.rows]
    for config in configs.values():
        assert (config.input_shape, config.num_classes, config.backbone) == (shape, 5, backbone)
    assert configs["segmentation"].tasks == ("segmentation",)
    assert configs["segmentation"].attention == "none"
    assert configs["multi_task"].tasks == ("classification", "segmentation", "detection")
    for key in ("segmentation", "multi_task"):
        assert configs[f"{key}_lean"] == dataclasses.replace(
            configs[key], p2_output_conv=False, segmentation_channels=64
        )
    with pytest.raises(ValueError, match="Unknown budget 'tpu'"):
        latency_table.row_configs("tpu", 5)


def result(row, params, latency):
    measured = {"config": {"input_shape": [64, 64, 3]}, "params": params, "latency_s": latency,
                "cpu_per_wall": 1.0, "threads": 1, "warmup": 1, "repeats": 3}
    return LatencyResult(row, f"out/{row.folder}", measured,
                         {PARAMETERS: params / 1e6, LATENCY: latency})


def test_the_report_sums_the_single_task_networks_and_checks_the_ratios_by_hand():
    # Parameters 10 + 20 + 30 M, latencies 1 + 2 + 3 s; the multi-task network 15 M, 3.3 s;
    # the lean segmenter 18 M, 1.5 s, and the lean multi-task network 14 M, 2.5 s.
    values = ((10e6, 1.0), (20e6, 2.0), (30e6, 3.0), (15e6, 3.3), (18e6, 1.5), (14e6, 2.5))
    results = [result(row, *value) for row, value in zip(TABLE.rows, values)]
    commands = [f"command {index}" for index in range(6)]
    markdown = latency_table.report_markdown(TABLE, results, commands, "d, --budget=smoke")
    lines = markdown.splitlines()
    assert "| ResNet-50 | 23.50 | 10.00 | 0.0654 | 1.0000 | 64x64x3 | `command 0` |" in lines
    assert "| Defect-Aux-Net | 36.20 | 15.00 | 0.1927 | 3.3000 | 64x64x3 | `command 3` |" in lines
    assert ("| Defect-Aux-Net, lean top-down | — | 14.00 | — | 2.5000 | 64x64x3 "
            "| `command 5` |") in lines
    assert "| Sum of the single-task networks | 84.40 | 60.00 | 0.3540 | 6.0000 | | |" in lines
    assert "| Sum with the lean FPN segmenter | — | 58.00 | — | 5.5000 | | |" in lines
    # 3.3 / 6 = 0.55 > 0.544: missed; 3.3 / 3 = 1.1 <= 1.15: met; the paper's own ratios
    # are 0.1927 / 0.354 and 0.1927 / 0.178. Lean: 2.5 / 5.5 = 0.455, 2.5 / 3 = 0.833,
    # 14 / 58 = 0.241.
    ratio_lines = [line for line in lines if line.startswith("| Table VI: multi-task")]
    assert ratio_lines == [
        "| Table VI: multi-task latency / sum of single-task latencies | 0.544 | 0.550 "
        "| <= 0.544 | no |",
        "| Table VI: multi-task latency / ResNet-50 RetinaNet latency | 1.083 | 1.100 "
        "| <= 1.15 | yes |",
        "| Table VI: multi-task parameters / sum of single-task parameters | 0.429 "
        "| 0.250 |  | — |",
        "| Table VI: multi-task latency / sum of single-task latencies | 0.544 | 0.455 "
        "| <= 0.544 | yes |",
        "| Table VI: multi-task latency / ResNet-50 RetinaNet latency | 1.083 | 0.833 "
        "| <= 1.15 | yes |",
        "| Table VI: multi-task parameters / sum of single-task parameters | 0.429 "
        "| 0.241 |  | — |",
    ]
    assert lines.index("| Multi-task network, lean top-down (both networks) | paper | ours "
                       "| target | met |") < lines.index(ratio_lines[3])
    assert "median of 3 after 1 warm-up runs" in markdown
    assert "The ratios need every row measured." not in lines
    report = latency_table.report_json(TABLE, results, commands, "d, --budget=smoke")
    assert report["single_task_sum"]["ours"] == {PARAMETERS: 60.0, LATENCY: 6.0}
    assert report["ratios"]["latency_ratio"]["ours"] == pytest.approx(0.55)
    assert [(target["measured"], target["met"]) for target in report["targets"]] == [
        (pytest.approx(0.55), False), (pytest.approx(1.1), True)
    ]
    assert report["lean"]["single_task_sum"]["ours"] == {PARAMETERS: 58.0, LATENCY: 5.5}
    assert [(target["measured"], target["met"]) for target in report["lean"]["targets"]] == [
        (pytest.approx(2.5 / 5.5), True), (pytest.approx(2.5 / 3), True)
    ]
    assert report["rows"][1]["paper"] == {PARAMETERS: 26.9, LATENCY: 0.1106}
    assert report["rows"][4]["paper"] == {}
    assert report["not_run"] == []


def test_a_row_not_measured_is_named_and_leaves_the_ratios_unmeasured():
    # The four networks of the paper (1 s each: 1 / 3), not the lean two: the default
    # design's ratios only.
    results = [result(row, 1e6, 1.0) for row in TABLE.rows[:4]]
    markdown = latency_table.report_markdown(TABLE, results, ["c"] * 4, "d")
    lines = markdown.splitlines()
    assert ("Not run: ResNet-50 FPN, lean top-down (segmentation_lean), Defect-Aux-Net, lean "
            "top-down (multi_task_lean).") in lines
    assert ("| Defect-Aux-Net, lean top-down | — | not run | — | not run | — | not run |"
            in lines)
    ratio_lines = [line for line in lines if "latency / sum of single-task" in line]
    assert ratio_lines == [
        "| Table VI: multi-task latency / sum of single-task latencies | 0.544 | 0.333 "
        "| <= 0.544 | yes |",
        "| Table VI: multi-task latency / sum of single-task latencies | 0.544 | — "
        "| <= 0.544 | — |",
    ]
    assert "The ratios need every row measured." in lines
    report = latency_table.report_json(TABLE, results, ["c"] * 4, "d")
    assert len(report["targets"]) == 2 and report["lean"]["targets"] == []
    assert report["lean"]["single_task_sum"]["ours"] is None

    # Without the multi-task network neither design has its ratios.
    results = [result(row, 1e6, 1.0) for row in TABLE.rows[:3]]
    report = latency_table.report_json(TABLE, results, ["c"] * 3, "d")
    assert report["targets"] == [] and report["single_task_sum"]["ours"] is None
    assert report["not_run"][0] == {"name": "Defect-Aux-Net", "row": "multi_task"}
    assert "| Defect-Aux-Net | 36.20 | not run | 0.1927 | not run | — | not run |" in (
        latency_table.report_markdown(TABLE, results, ["c"] * 3, "d").splitlines()
    )
