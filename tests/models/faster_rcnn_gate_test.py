"""The gasket paper's classification gate on Faster R-CNN, on tiny inputs.

The `.keras` round trip, the XLA step and the export are the model contract's
(`model_contract_test.py`); the serving signatures are `serving_test.py`'s.
"""

import keras
import numpy as np
import pytest

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.inference.postprocessing import decode_outputs
from defect_aux_net.models.faster_rcnn import GATE_LOSS, LOSS_PARTS, FasterRCNN
from defect_aux_net.models.faster_rcnn_config import GATED_TASKS, FasterRCNNConfig
from defect_aux_net.models.gated_inference import GatedModel
from tests.tolerances import float32_output_tolerance

UNIT = float32_output_tolerance()


@pytest.fixture(scope="module")
def gated_model():
    keras.utils.set_random_seed(0)
    model = FasterRCNN(FasterRCNNConfig.from_preset("small", num_classes=2, tasks=GATED_TASKS))
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    return model


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((4, 64, 64, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def ungated(gated_model, images):
    """The model's own outputs, every head run on every image."""
    return {key: np.asarray(value) for key, value in gated_model(images, training=False).items()}


def test_the_gate_classifies_the_deepest_pyramid_level(gated_model, images, ungated):
    p6 = keras.Model(gated_model.input, gated_model.symbolic_features["P6"])(images)
    dense = gated_model.get_layer("classification_head").dense
    logits = np.asarray(p6).mean(axis=(1, 2)) @ np.asarray(dense.kernel) + np.asarray(dense.bias)
    np.testing.assert_allclose(ungated["classification"], 1 / (1 + np.exp(-logits)), atol=UNIT)
    assert gated_model.supports_gated_inference


def test_stopped_images_get_no_detections_and_passing_ones_the_ungated_ones(
    gated_model, images, ungated
):
    highest = ungated["classification"].max(axis=-1)
    threshold = float(np.sort(highest)[2])  # The two highest pass.
    outputs = GatedModel(gated_model)(images, threshold)
    passed = np.asarray(outputs["gate_passed"])
    np.testing.assert_array_equal(passed, highest >= threshold)
    assert passed.sum() == 2
    np.testing.assert_array_equal(outputs["classification"], ungated["classification"])
    for key in ("detection_boxes", "detection_scores"):
        np.testing.assert_allclose(
            np.asarray(outputs[key])[passed], ungated[key][passed], atol=UNIT
        )
        assert not np.asarray(outputs[key])[~passed].any(), key
    # Decoded as every consumer decodes them (serving, evaluation).
    gated_results = decode_outputs(
        {key: value for key, value in outputs.items() if key != "gate_passed"},
        gated_model.config, normalize_boxes=False,
    )
    ungated_results = decode_outputs(ungated, gated_model.config, normalize_boxes=False)
    counts = np.asarray(gated_results["num_detections"])
    assert (np.asarray(ungated_results["num_detections"])[passed] > 0).all()
    np.testing.assert_array_equal(counts[~passed], 0)
    np.testing.assert_array_equal(
        counts[passed], np.asarray(ungated_results["num_detections"])[passed]
    )
    for key in ("boxes", "scores"):
        for index in np.flatnonzero(passed):
            count = counts[index]
            np.testing.assert_allclose(
                np.asarray(gated_results[key])[index, :count],
                np.asarray(ungated_results[key])[index, :count],
                atol=UNIT * 64 if key == "boxes" else UNIT,
            )


def test_no_image_passing_runs_no_detector_and_gives_its_output_shapes(gated_model, images):
    outputs = GatedModel(gated_model)(images, 1.01)
    assert not np.asarray(outputs["gate_passed"]).any()
    assert outputs["detection_boxes"].shape == (4, 32, 2, 4)
    assert not np.asarray(outputs["detection_scores"]).any()


def test_the_gate_loss_is_binary_cross_entropy_added_to_the_detection_losses(
    gated_model, images, ungated
):
    labels = np.array([[1, 0], [0, 0], [0, 1], [1, 1]], np.float32)
    targets = {
        "classification": labels,
        "boxes": np.tile(np.array([[[8, 16, 40, 48], [0, 0, 0, 0]]], np.float32), (4, 1, 1)),
        "box_classes": np.tile(np.array([[1, -1]], np.int32), (4, 1)),
    }
    flags = {key: np.ones(4, np.float32) for key in targets}
    for metric in gated_model.metrics:
        metric.reset_state()
    # Inference-mode batch norm, so that the probabilities are the model's outputs.
    loss = gated_model.compute_loss(images, targets, None, flags, training=False)
    probabilities = ungated["classification"].astype(np.float64)
    expected = -np.mean(labels * np.log(probabilities) + (1 - labels) * np.log(1 - probabilities))
    parts = {part: float(tracker.result()) for part, tracker in gated_model.part_trackers.items()}
    assert set(parts) == {*LOSS_PARTS, GATE_LOSS}
    np.testing.assert_allclose(parts[GATE_LOSS], expected, rtol=1e-5)
    np.testing.assert_allclose(float(loss), sum(parts.values()), rtol=1e-5)
    # Images without labels weigh nothing in it.
    for metric in gated_model.metrics:
        metric.reset_state()
    no_labels = flags | {"classification": np.zeros(4, np.float32)}
    gated_model.compute_loss(images, targets, None, no_labels, training=False)
    assert float(gated_model.part_trackers[GATE_LOSS].result()) == 0.0


def test_the_gasket_preset_gates_and_other_task_sets_are_refused():
    assert FasterRCNNConfig.from_preset("gasket").tasks == GATED_TASKS
    assert FasterRCNNConfig.from_preset("small").tasks == ("detection",)
    for tasks in (("classification",), ("classification", "segmentation", "detection")):
        with pytest.raises(ConfigError, match="FasterRCNNConfig.tasks"):
            FasterRCNNConfig(tasks=tasks)


def test_a_detector_without_the_gate_has_no_gated_inference():
    model = FasterRCNN(FasterRCNNConfig.from_preset("small"))
    assert not model.supports_gated_inference and "classification" not in model.output
    with pytest.raises(ValueError, match="classification task"):
        GatedModel(model)
