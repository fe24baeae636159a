import numpy as np
import pytest

from defect_aux_net.config import DefectAuxNetConfig
from defect_aux_net.models.defect_aux_net import build_defect_aux_net
from defect_aux_net.performance.gated_streams import STOP_ALL, gated_streams, stream_indices


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
