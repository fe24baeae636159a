import types

import keras
import numpy as np
import pytest

from defect_aux_net.config import DefectAuxNetConfig
from defect_aux_net.config_errors import ConfigError
from defect_aux_net.evaluation.detection_metrics import DetectionMetrics
from defect_aux_net.models.defect_aux_net import build_defect_aux_net
from defect_aux_net.models.faster_rcnn import FasterRCNN
from defect_aux_net.models.faster_rcnn_config import GATED_TASKS, FasterRCNNConfig
from defect_aux_net.performance.gated_streams import (
    STOP_ALL,
    detection_maps,
    detections,
    gated_streams,
    paper_network_config,
    stream_indices,
)


@pytest.mark.parametrize("rate, defective_count", [(0.05, 5), (0.12, 12), (0.5, 50)])
def test_streams_hold_the_share_of_defective_images(rate, defective_count):
    defective = np.arange(300) < 60
    indices = stream_indices(defective, rate, 100, seed=0)
    assert len(set(indices)) == 100  # no image twice
    assert defective[indices].sum() == defective_count
    np.testing.assert_array_equal(indices, stream_indices(defective, rate, 100, seed=0))


def test_a_stream_longer_than_the_split_allows_names_the_counts():
    with pytest.raises(ValueError, match="needs 1 defective and 19 defect-free images; the split has 12 and 18"):
        stream_indices(np.arange(30) < 12, 0.05, 20, seed=0)


@pytest.fixture(scope="module")
def model_and_images():
    model = build_defect_aux_net(DefectAuxNetConfig.from_preset("small", input_shape=(64, 64, 3)))
    images = np.random.default_rng(0).uniform(size=(40, 64, 64, 3)).astype(np.float32)
    return model, images, np.arange(40) < 12


def test_passing_images_get_the_ungated_results_and_stopped_ones_skip_the_heads(
    model_and_images,
):
    model, images, defective = model_and_images
    # Per-image thresholds carry another gate's decisions: 0 passes, STOP_ALL stops.
    passes = np.arange(40) % 3 == 0
    thresholds = np.where(passes, 0.0, STOP_ALL)
    results = gated_streams(model, images, defective, thresholds, length=20, warmup=1, repeats=2)
    for rate, (percent, stream) in zip((0.05, 0.12, 0.5), results["streams"].items()):
        assert stream["pass_rate"] == np.mean(passes[stream_indices(defective, rate, 20, 0)])
        expected = stream["gated_mean_s"] / results["ungated_s"]
        assert results[f"ratio_{percent}"] == pytest.approx(expected)
    assert results["identical_passing_results"]
    assert results["max_abs_difference"] <= results["tolerance"]
    assert results["full_path_s"] > 0 and results["stopped_s"] > 0
    assert results["gate_only_s"] > 0


def test_the_gate_passes_images_whose_highest_probability_reaches_the_threshold(
    model_and_images,
):
    model, images, defective = model_and_images
    highest = np.asarray(model(images, training=False)["classification"]).max(axis=-1)
    threshold = float(np.median(highest))
    results = gated_streams(
        model, images, defective, threshold, length=20, warmup=0, repeats=1
    )
    for rate, stream in zip((0.05, 0.12, 0.5), results["streams"].values()):
        expected = np.mean(highest[stream_indices(defective, rate, 20, seed=0)] >= threshold)
        assert stream["pass_rate"] == pytest.approx(expected)


def test_detection_maps_score_stopped_images_as_missed_by_hand():
    model = types.SimpleNamespace(config=types.SimpleNamespace(num_classes=1))
    ground_truth = {
        "boxes": np.array([[[0, 0, 10, 10]], [[20, 20, 40, 30]]], np.float32),
        "box_classes": np.array([[0], [0]]),
        "has_boxes": np.array([True, True]),
    }

    def found(box, score, count=1):
        return {
            "boxes": np.array([[box]], np.float32), "scores": np.array([[score]], np.float32),
            "classes": np.array([[0]]), "num_detections": np.array([count]),
        }

    ungated = [found([0, 0, 10, 10], 0.9), found([20, 20, 40, 30], 0.8)]
    gated = [ungated[0], found([20, 20, 40, 30], 0.8, count=0)]  # The second is stopped.
    maps = detection_maps(model, ground_truth, gated, ungated)
    assert maps["ungated"] == {"map": 1.0, "map50": 1.0}
    # Precision 1 up to recall 1/2, then nothing: COCO's 101 recall points give 51 / 101.
    assert maps["gated"]["map"] == pytest.approx(51 / 101)
    assert maps["fraction"] == pytest.approx(51 / 101)
    assert maps["fraction50"] == pytest.approx(51 / 101)


def test_a_gated_detectors_streams_give_its_map_as_a_share_of_the_ungated_one():
    keras.utils.set_random_seed(0)
    model = FasterRCNN(FasterRCNNConfig.from_preset("small", num_classes=2, tasks=GATED_TASKS))
    images = np.random.default_rng(1).uniform(size=(16, 64, 64, 3)).astype(np.float32)
    defective = np.arange(16) < 8
    # The ground truth: each defective image's best ungated detection; the others none.
    ungated = detections(model, model(images, training=False))
    truth = {
        "boxes": ungated["boxes"][:, :1] * defective[:, None, None],
        "box_classes": np.where(defective[:, None], ungated["classes"][:, :1], -1),
        "has_boxes": np.ones(16, bool),
    }
    passes = np.arange(16) % 2 == 0
    results = gated_streams(
        model, images, defective, np.where(passes, 0.0, STOP_ALL), length=10, warmup=0,
        repeats=1, defect_rates=(0.5,), ground_truth=truth,
    )
    stream = stream_indices(defective, 0.5, 10, seed=0)
    expected = {}
    for name, counts in (("ungated", ungated["num_detections"]),
                         ("gated", np.where(passes, ungated["num_detections"], 0))):
        metrics = DetectionMetrics(["a", "b"])
        metrics.update(
            {key: value[stream] for key, value in truth.items()},
            {key: value[stream] for key, value in (ungated | {"num_detections": counts}).items()},
        )
        expected[name] = metrics.result()["map"]
    maps = results["streams"]["50"]["map"]
    assert expected["ungated"] > 0 and expected["gated"] < expected["ungated"]
    assert maps["ungated"]["map"] == pytest.approx(expected["ungated"], abs=1e-6)
    assert maps["gated"]["map"] == pytest.approx(expected["gated"], abs=1e-6)
    assert results["map_fraction_50"] == pytest.approx(expected["gated"] / expected["ungated"])


def test_the_paper_network_is_a_preset_of_the_runs_own_model():
    config = paper_network_config("faster_rcnn", "gasket", ["scratch", "pit"])
    assert type(config) is FasterRCNNConfig and config.num_classes == 2
    assert config.tasks == GATED_TASKS
    with pytest.raises(ConfigError, match="paper_preset='gasket' of the run's defect_aux_net"):
        paper_network_config("defect_aux_net", "gasket", ["scratch"])
