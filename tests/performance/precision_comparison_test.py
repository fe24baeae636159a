import pytest

from defect_aux_net.performance import precision_comparison
from defect_aux_net.performance.precision_comparison import (
    check_complete_run,
    check_variants,
    comparison,
    cpu_features,
    headline_metrics,
    metric_values,
)


def _result(accuracy, ap, map50, per_class_f1):
    """An evaluation result shaped as `Evaluator.result()`'s, with the fields compared."""
    return {
        "classification": {
            "accuracy": accuracy,
            "tp": 3,  # A count: never compared.
            "per_class": {"pit": {"f1": per_class_f1, "threshold": 0.4, "support": 5}},
            "confusion_matrix": {"matrix": [[1, 0], [0, 1]]},
        },
        "image_ap": {"ap": ap, "threshold": 0.3},
        "detection": {"map50": map50},
    }


def _timing(latency, cpu=1.0):
    return {"latency_s": latency, "cpu_per_wall": cpu, "peak_memory_bytes": 100}


def test_comparison_divides_latencies_and_subtracts_metrics():
    latency = {
        "1": {"float32": _timing(0.3), "bfloat16": _timing(0.2), "int8": _timing(0.1)},
        "all": {"float32": _timing(0.2, 2.0), "bfloat16": _timing(0.16), "int8": _timing(0.05)},
    }
    metrics = {
        "float32": _result(0.9, 0.8, 0.5, 0.7),
        "bfloat16": _result(0.9, 0.805, 0.49, 0.7),
        "int8": _result(0.875, 0.8, 0.5, 0.6),
    }
    compared = comparison(latency, metrics)
    # The first thread count gives the headline figures.
    assert compared["latency_s"] == {"float32": 0.3, "bfloat16": 0.2, "int8": 0.1}
    assert compared["speedup"] == {"float32": 1.0, "bfloat16": 0.3 / 0.2, "int8": 0.3 / 0.1}
    assert compared["runs"]["all"]["speedup"]["int8"] == 0.2 / 0.05
    assert compared["runs"]["all"]["cpu_per_wall"]["float32"] == 2.0
    assert compared["metrics"]["bfloat16"] == {
        "classification/accuracy": 0.9, "image_ap/ap": 0.805, "detection/map50": 0.49,
    }
    change = compared["metric_change"]["bfloat16"]
    assert change["image_ap/ap"] == pytest.approx(0.005)
    assert change["detection/map50"] == pytest.approx(-0.01)
    assert compared["max_metric_change"]["bfloat16"] == pytest.approx(0.01)
    assert compared["max_metric_change"]["int8"] == pytest.approx(0.025)
    assert compared["max_metric_change"]["float32"] == 0.0
    # A per-class metric moves more than any headline one.
    worst = compared["largest_change_any_metric"]["int8"]
    assert worst["metric"] == "classification/per_class/pit/f1"
    assert worst["change"] == pytest.approx(-0.1)


def test_metric_values_leave_out_counts_thresholds_and_lists():
    assert metric_values(_result(0.9, 0.8, 0.5, 0.7)) == {
        "classification/accuracy": 0.9,
        "classification/per_class/pit/f1": 0.7,
        "image_ap/ap": 0.8,
        "detection/map50": 0.5,
    }


def test_headline_metrics_are_those_of_the_tasks_present():
    result = {"segmentation": {"dice": 0.6, "iou": 0.4, "dice_per_image": 0.7},
              "image_ap": {"ap": 0.9}}
    assert headline_metrics(result) == {
        "image_ap/ap": 0.9, "segmentation/dice": 0.6, "segmentation/iou": 0.4,
    }


def test_cpu_features_lists_the_low_precision_flags_of_the_first_processor(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu avx2 avx512f amx_int8 sse4_2\n\n"
        "processor\t: 1\nmodel name\t: Test CPU\nflags\t\t: fpu avx2\n"
    )
    assert cpu_features(str(cpuinfo)) == {
        "model_name": "Test CPU", "flags": ["avx2", "avx512f", "amx_int8"],
    }


def test_every_variant_says_which_cpu_features_it_needs():
    assert set(precision_comparison.CPU_FEATURES) == set(precision_comparison.VARIANTS)


def test_an_incomplete_run_is_named_with_the_missing_file(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "best.keras").write_text("")
    with pytest.raises(ValueError, match=r"not a complete training run: .*complete\.json"):
        check_complete_run(str(tmp_path))


@pytest.mark.parametrize("variants", [["bfloat16", "int8"], ["float32", "float16"]])
def test_variants_need_float32_and_known_names(variants):
    with pytest.raises(ValueError, match="must be among .* and include 'float32'"):
        check_variants(variants)
