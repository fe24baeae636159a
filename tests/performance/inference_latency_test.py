import pytest

from defect_aux_net.config import DefectAuxNetConfig
from defect_aux_net.models.defect_aux_net import build_defect_aux_net
from defect_aux_net.performance.inference_latency import (
    MULTI_TASK,
    inference_latency,
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


def test_inference_latency_counts_the_model_parameters():
    config = DefectAuxNetConfig.from_preset("small", input_shape=(64, 64, 3))
    measured = inference_latency(config, warmup=1, repeats=2)
    assert measured["params"] == build_defect_aux_net(config).count_params()
    assert 0 < measured["latency_s"] < 10
    assert measured["peak_memory_bytes"] > 100 * 2**20
