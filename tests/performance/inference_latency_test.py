import dataclasses

import pytest

from defect_aux_net.config import DefectAuxNetConfig
from defect_aux_net.models.defect_aux_net import build_defect_aux_net
from defect_aux_net.models.image_classifier_config import ImageClassifierConfig
from defect_aux_net.models.model_builders import model_name
from defect_aux_net.performance.inference_latency import (
    MULTI_TASK,
    PAPER_TABLE6,
    inference_latency,
    lean_table6,
    paper_networks,
    table6,
    task_networks,
)


def test_task_networks_have_one_head_each_and_the_same_rest():
    config = DefectAuxNetConfig.from_preset("small", tasks=("classification",))
    networks = task_networks(config)
    assert {name: network.tasks for name, network in networks.items()} == {
        "classification": ("classification",),
        "segmentation": ("segmentation",),
        "detection": ("detection",),
        MULTI_TASK: ("classification", "segmentation", "detection"),
    }
    for network in networks.values():
        assert network.backbone == "resnet18" and network.attention == "se+sa"


@pytest.mark.parametrize("preset", ["small", "severstal"])
def test_paper_networks_are_the_papers_at_defect_aux_nets_input(preset):
    networks = paper_networks(preset)
    multi_task = DefectAuxNetConfig.from_preset(preset)
    assert {key: model_name(config) for key, config in networks.items()} == {
        "classification": "resnet50",
        "segmentation": "defect_aux_net",
        "detection": "retinanet",
        MULTI_TASK: "defect_aux_net",
    }
    assert networks[MULTI_TASK] == multi_task
    # A plain FPN segmenter: no attention, the segmentation head only.
    assert networks["segmentation"] == DefectAuxNetConfig.from_preset(
        preset, tasks=("segmentation",), attention="none"
    )
    # The classifier's own preset (small: its ResNet-18 at 64x64, 4 classes), at
    # Defect-Aux-Net's input (small: 128x128).
    assert networks["classification"] == ImageClassifierConfig.from_preset(
        preset, input_shape=multi_task.input_shape
    )
    assert networks["detection"].backbone == multi_task.backbone
    assert {config.input_shape for config in networks.values()} == {multi_task.input_shape}


def test_the_lean_networks_slim_the_segmenter_and_defect_aux_net_only():
    networks = paper_networks("tekerreka", lean=True)
    assert list(networks) == [
        "classification", "segmentation", "detection", MULTI_TASK,
        "segmentation_lean", f"{MULTI_TASK}_lean",
    ]
    assert networks["segmentation"].p2_output_conv and networks[MULTI_TASK].p2_output_conv
    assert networks["segmentation"].segmentation_channels == 128
    for key in ("segmentation", MULTI_TASK):
        lean = networks[f"{key}_lean"]
        assert (lean.p2_output_conv, lean.segmentation_channels) == (False, 64)
        # Nothing else changes: the other fields are the network's own.
        assert lean == dataclasses.replace(networks[key], p2_output_conv=False,
                                           segmentation_channels=64)
    assert paper_networks("tekerreka") == {
        key: networks[key] for key in ("classification", "segmentation", "detection", MULTI_TASK)
    }


def test_the_lean_table_swaps_in_the_lean_networks_by_hand():
    def network(latency, params):
        return {"latency_s": latency, "params": params, "cpu_per_wall": 1.0}

    measured = {
        "classification": network(1.0, 10), "segmentation": network(2.0, 20),
        "detection": network(3.0, 30), MULTI_TASK: network(3.3, 15),
        "segmentation_lean": network(1.5, 18), f"{MULTI_TASK}_lean": network(2.5, 14),
    }
    table = lean_table6(measured)
    # 1 + 1.5 + 3 = 5.5 s and 10 + 18 + 30 = 58 parameters; 2.5 / 5.5, 2.5 / 3, 14 / 58.
    assert table["latency_s"]["single_task_sum"] == 5.5
    assert table["params"]["single_task_sum"] == 58
    assert table["latency_ratio"] == pytest.approx(2.5 / 5.5)
    assert table["detection_latency_ratio"] == pytest.approx(2.5 / 3)
    assert table["params_ratio"] == pytest.approx(14 / 58)
    assert table6(measured)["latency_ratio"] == pytest.approx(3.3 / 6)


def test_paper_table6_sums_and_ratios_are_the_papers():
    latency, params = PAPER_TABLE6["latency_s"], PAPER_TABLE6["params_millions"]
    tasks = ("classification", "segmentation", "detection")
    assert sum(latency[task] for task in tasks) == pytest.approx(latency["single_task_sum"])
    assert sum(params[task] for task in tasks) == pytest.approx(params["single_task_sum"])
    # The text: 45.5 % less time (45.57 % cut to one decimal), 57.1 % fewer parameters.
    assert 1 - latency[MULTI_TASK] / latency["single_task_sum"] == pytest.approx(0.4557, abs=1e-4)
    assert 1 - params[MULTI_TASK] / params["single_task_sum"] == pytest.approx(0.571, abs=6e-4)


def test_table6_sums_and_ratios_by_hand():
    measured = {
        "classification": {"latency_s": 1.0, "params": 10, "cpu_per_wall": 1.0},
        "segmentation": {"latency_s": 2.0, "params": 20, "cpu_per_wall": 1.0},
        "detection": {"latency_s": 3.0, "params": 30, "cpu_per_wall": 1.0},
        MULTI_TASK: {"latency_s": 2.4, "params": 15, "cpu_per_wall": 1.0},
    }
    table = table6(measured)
    assert table["latency_s"]["single_task_sum"] == 6.0
    assert table["params"]["single_task_sum"] == 60
    assert table["latency_ratio"] == pytest.approx(0.4)
    assert table["params_ratio"] == pytest.approx(0.25)
    assert table["detection_latency_ratio"] == pytest.approx(0.8)


def test_inference_latency_counts_the_model_parameters():
    config = DefectAuxNetConfig.from_preset("small", input_shape=(64, 64, 3))
    measured = inference_latency(config, warmup=1, repeats=2)
    assert measured["params"] == build_defect_aux_net(config).count_params()
    assert 0 < measured["latency_s"] < 10
    assert measured["peak_memory_bytes"] > 100 * 2**20
