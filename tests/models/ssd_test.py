import numpy as np
import pytest
import tensorflow as tf

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.data.pipeline import training_inputs
from defect_aux_net.detection.anchors import anchors_for_config
from defect_aux_net.detection.box_matching import BACKGROUND, IGNORE
from defect_aux_net.models.ssd import Ssd
from defect_aux_net.models.ssd_config import SsdConfig
from tests.tolerances import float32_output_tolerance


def test_the_outputs_are_laid_on_the_default_boxes_at_any_input_size():
    config = SsdConfig.from_preset("small", input_shape=(33, 49, 3), num_classes=2)
    model = Ssd(config)
    anchors = model.anchors
    # Maps of 5x7, 3x4, 2x2, 1x1, 1x1, 1x1 cells, 6 boxes each.
    assert anchors.shape == (6 * (35 + 12 + 4 + 1 + 1 + 1), 4)
    images = np.random.default_rng(0).random((2, 33, 49, 3)).astype(np.float32)
    outputs = {key: np.asarray(value, np.float64) for key, value in model(images).items()}
    assert outputs["box_regression"].shape == (2, len(anchors), 4)
    assert outputs["class_logits"].shape == (2, len(anchors), 3)
    # The sigmoid of box_classification is the softmax's foreground.
    logits = outputs["class_logits"]
    softmax = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(
        1 / (1 + np.exp(-outputs["box_classification"])), softmax[..., 1:],
        atol=float32_output_tolerance(),
    )


def test_the_input_pipeline_matches_as_ssd_does():
    config = SsdConfig.from_preset("small")
    anchors = config.anchors()
    # The pipeline asks anchors_for_config for the boxes it encodes targets on.
    np.testing.assert_array_equal(anchors_for_config(config), anchors)
    # A 32x24 box (some default box at IoU >= 0.5) and a thin 3x32 one (none: its best
    # one, at IoU 0.30, is positive all the same); every other default box is
    # background, none ignored.
    boxes = np.array([[8, 16, 40, 40], [13, 6, 16, 38], [0, 0, 0, 0]], np.float32)
    example = {
        "images": tf.zeros(config.input_shape), "boxes": tf.constant(boxes),
        "box_classes": tf.constant([3, 1, -1]), "has_boxes": tf.constant(1.0),
    }
    _, targets, weights = training_inputs(example, config, tf.constant(anchors))
    classes = targets["box_classification"].numpy()
    assert IGNORE not in classes and float(weights["box_classification"]) == 1.0
    ious = _iou(anchors, boxes[:2])
    np.testing.assert_array_equal(np.flatnonzero(classes == 1), [np.argmax(ious[:, 1])])
    assert ious[:, 1].max() < 0.5
    np.testing.assert_array_equal(
        np.flatnonzero(classes == 3), np.flatnonzero(ious[:, 0] >= 0.5)
    )
    assert np.sum(classes == BACKGROUND) == len(anchors) - np.sum(classes >= 0)


def _iou(anchors, boxes):
    top_left = np.maximum(anchors[:, None, :2], boxes[None, :, :2])
    bottom_right = np.minimum(anchors[:, None, 2:], boxes[None, :, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0, None), axis=-1)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return intersection / (area(anchors)[:, None] + area(boxes)[None, :] - intersection)


@pytest.mark.parametrize("fields, field", [
    ({"tasks": ("classification", "detection")}, "SsdConfig.tasks"),
    ({"min_scale": 0.95}, "SsdConfig.min_scale"),
    ({"box_variances": (0.1, 0.2)}, "SsdConfig.box_variances"),
    ({"input_shape": (16, 64, 3)}, "SsdConfig.input_shape"),
    ({"backbone": "vgg16"}, "SsdConfig.backbone"),
    ({"min_negatives_per_image": -1}, "SsdConfig.min_negatives_per_image"),
])
def test_invalid_values_name_their_field(fields, field):
    with pytest.raises(ConfigError) as error:
        SsdConfig(**fields)
    assert error.value.field == field and field in str(error.value)
