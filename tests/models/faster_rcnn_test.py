"""Faster R-CNN's heads, decoded outputs, losses and training targets on tiny inputs.

The `.keras` round trip, the XLA step and the export are the model contract's
(`model_contract_test.py`).
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.data.pipeline import training_inputs
from defect_aux_net.layers.two_stage_heads import BoxHead, RpnHead
from defect_aux_net.layers.two_stage_ops import DecodedDetections, MultilevelRoIAlign
from defect_aux_net.losses.two_stage import box_head_losses, rpn_losses, smooth_l1
from defect_aux_net.models.faster_rcnn import LOSS_PARTS, FasterRCNN
from defect_aux_net.models.faster_rcnn_config import FasterRCNNConfig
from tests.tolerances import float32_output_tolerance

UNIT = float32_output_tolerance()


def test_rpn_head_rows_follow_the_anchor_order():
    head = RpnHead(anchors_per_location=3, channels=4)
    features = np.random.default_rng(0).normal(size=(1, 2, 5, 6)).astype(np.float32)
    logits, deltas = head(features)
    assert logits.shape == (1, 2 * 5 * 3) and deltas.shape == (1, 2 * 5 * 3, 4)
    hidden = keras.ops.relu(head.conv(features))
    objectness = np.asarray(head.objectness(hidden))
    box = np.asarray(head.deltas(hidden))
    # Row (r * W + c) * A + a is anchor a of location (r, c), as `generate_anchors`.
    row, column, anchor = 1, 3, 2
    index = (row * 5 + column) * 3 + anchor
    np.testing.assert_allclose(logits[0, index], objectness[0, row, column, anchor], atol=UNIT)
    np.testing.assert_allclose(
        deltas[0, index], box[0, row, column, 4 * anchor : 4 * anchor + 4], atol=UNIT
    )


def test_box_head_gives_background_first_logits_and_per_class_deltas():
    head = BoxHead(num_classes=2, units=8, num_layers=2)
    crops = np.random.default_rng(1).normal(size=(1, 3, 2, 2, 5)).astype(np.float32)
    logits, deltas = head(crops)
    assert logits.shape == (1, 3, 3) and deltas.shape == (1, 3, 2, 4)
    hidden = crops.reshape(1, 3, 20)
    for layer in head.hidden:
        hidden = np.maximum(hidden @ np.asarray(layer.kernel) + np.asarray(layer.bias), 0)
    flat = hidden @ np.asarray(head.box_deltas.kernel) + np.asarray(head.box_deltas.bias)
    np.testing.assert_allclose(deltas[0, 2, 1], flat[0, 2, 4:8], atol=UNIT)
    expected_logits = hidden @ np.asarray(head.class_logits.kernel)
    np.testing.assert_allclose(
        logits, expected_logits + np.asarray(head.class_logits.bias), atol=UNIT
    )


def test_decoded_detections_by_hand():
    proposals = np.array([[[0, 0, 10, 20], [0, 0, 0, 0]]], np.float32)
    deltas = np.zeros((1, 2, 2, 4), np.float32)
    # Class 1: the centre 0.1 heights down, twice as wide; weights (10, 10, 5, 5).
    deltas[0, 0, 1] = [10 * 0.1, 0, 0, 5 * math.log(2)]
    logits = np.zeros((1, 2, 3), np.float32)
    logits[0, 0, 1] = math.log(2)  # softmax [1, 2, 1] / 4
    boxes, scores = DecodedDetections((64, 64))(logits, deltas, proposals, np.array([1]))
    np.testing.assert_allclose(boxes[0, 0, 0], [0, 0, 10, 20], atol=1e-4)
    # Centre (6, 10), height 10, width 40: [1, -10, 11, 30], clipped at x = 0.
    np.testing.assert_allclose(boxes[0, 0, 1], [1, 0, 11, 30], atol=1e-4)
    np.testing.assert_allclose(scores[0, 0], [0.5, 0.25], atol=1e-6)
    np.testing.assert_array_equal(scores[0, 1], [0, 0])  # A padding proposal.


def test_roi_align_crops_one_image_at_a_time_at_inference_as_the_batch_in_training():
    rng = np.random.default_rng(4)
    features = [rng.normal(size=(3, 16 >> i, 16 >> i, 2)).astype(np.float32) for i in range(4)]
    boxes = np.sort(rng.uniform(0, 64, size=(3, 5, 2, 2)), axis=2)
    boxes = boxes.transpose(0, 1, 3, 2).reshape(3, 5, 4)[..., [0, 2, 1, 3]].astype(np.float32)
    layer = MultilevelRoIAlign(output_size=2)
    np.testing.assert_allclose(
        layer(features, boxes, training=False), layer(features, boxes, training=True), atol=UNIT
    )


def test_smooth_l1_and_the_losses_by_hand():
    np.testing.assert_allclose(smooth_l1(np.array([0.05, -0.5, 2.0]), 0.1), [0.0125, 0.45, 1.95])
    targets = {
        "objectness_targets": np.array([[1.0, 0.0, 0.0]], np.float32),
        "objectness_weights": np.array([[1.0, 1.0, 0.0]], np.float32),
        "box_targets": np.array([[[0.5, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]], np.float32),
        "box_weights": np.array([[1.0, 0.0, 0.0]], np.float32),
    }
    logits = np.array([[0.0, math.log(3), 5.0]], np.float32)
    deltas = np.zeros((1, 3, 4), np.float32)
    objectness, box = rpn_losses(logits, deltas, targets, np.ones(1), huber_delta=1.0)
    # BCE: -log(1/2) for the positive, -log(1/4) for the negative at p = 3/4; two sampled.
    np.testing.assert_allclose(objectness, (math.log(2) + math.log(4)) / 2, rtol=1e-5)
    np.testing.assert_allclose(box, 0.5 * 0.5**2 / 2, rtol=1e-5)
    # The same image without box annotations adds nothing.
    np.testing.assert_allclose(rpn_losses(logits, deltas, targets, np.zeros(1), 1.0), [0, 0])

    sample = {
        "class_targets": np.array([[2, 0]]),
        "class_weights": np.array([[1.0, 1.0]], np.float32),
        "box_targets": np.array([[[0, 0, 3.0, 0], [0, 0, 0, 0]]], np.float32),
        "box_weights": np.array([[1.0, 0.0]], np.float32),
    }
    class_logits = np.array([[[0.0, 0.0, math.log(2)], [0.0, 0.0, 0.0]]], np.float32)
    classification, box = box_head_losses(
        class_logits, np.zeros((1, 2, 4), np.float32), sample, np.ones(1), huber_delta=1.0
    )
    np.testing.assert_allclose(classification, (-math.log(0.5) - math.log(1 / 3)) / 2, rtol=1e-5)
    np.testing.assert_allclose(box, (3.0 - 0.5) / 2, rtol=1e-5)


@pytest.fixture(scope="module")
def small_model():
    keras.utils.set_random_seed(0)
    model = FasterRCNN(FasterRCNNConfig.from_preset("small", num_classes=3))
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    return model


def test_sampled_rois_that_match_the_ground_truth_get_its_class(small_model):
    images = np.random.default_rng(2).random((2, 64, 64, 3)).astype(np.float32)
    boxes = np.array([[[8, 16, 40, 48], [0, 0, 0, 0]], np.zeros((2, 4))], np.float32)
    classes = np.array([[2, -1], [-1, -1]], np.int32)
    outputs = small_model.training_outputs(images, boxes, classes, tf.constant([5, 0]))
    rois = outputs["rois"]
    targets = np.asarray(rois["class_targets"])
    # The ground truth joins the candidates: image 0 has foreground, all of class 2 (+1
    # for background), each RoI at IoU >= 0.5 with the box; image 1 has none.
    foreground = targets[0] > 0
    assert foreground.any() and np.all(targets[0][foreground] == 3)
    assert np.all(np.asarray(rois["box_weights"][0]) == foreground)
    roi_boxes = np.asarray(rois["rois"][0])[foreground]
    y0, x0 = np.maximum(roi_boxes[:, 0], 8), np.maximum(roi_boxes[:, 1], 16)
    y1, x1 = np.minimum(roi_boxes[:, 2], 40), np.minimum(roi_boxes[:, 3], 48)
    inter = np.maximum(y1 - y0, 0) * np.maximum(x1 - x0, 0)
    areas = (roi_boxes[:, 2] - roi_boxes[:, 0]) * (roi_boxes[:, 3] - roi_boxes[:, 1])
    assert np.all(inter / (areas + 32 * 32 - inter) >= 0.5)
    assert any(np.allclose(box, [8, 16, 40, 48]) for box in roi_boxes)
    assert not targets[1].any()
    assert np.asarray(rois["class_weights"]).sum(axis=1).tolist() == [32, 32]
    # The RPN's positives are anchors of image 0 only.
    rpn_weights = np.asarray(outputs["rpn_targets"]["box_weights"])
    assert rpn_weights[0].sum() > 0 and rpn_weights[1].sum() == 0


def test_loss_parts_are_finite_and_logged(small_model):
    images = np.random.default_rng(3).random((2, 64, 64, 3)).astype(np.float32)
    targets = {
        "boxes": np.array([[[8, 16, 40, 48], [0, 0, 0, 0]], np.zeros((2, 4))], np.float32),
        "box_classes": np.array([[0, -1], [-1, -1]], np.int32),
    }
    flags = {key: np.ones(2, np.float32) for key in targets}
    for metric in small_model.metrics:
        metric.reset_state()
    loss = small_model.compute_loss(images, targets, None, flags)
    parts = {part: float(small_model.part_trackers[part].result()) for part in LOSS_PARTS}
    assert np.isfinite(float(loss)) and all(np.isfinite(list(parts.values()))), parts
    # An untrained head's softmax over 4 classes costs about log(4).
    assert abs(parts["box_class_loss"] - math.log(4)) < 0.1, parts
    np.testing.assert_allclose(float(loss), sum(parts.values()), rtol=1e-5)


def test_pipeline_gives_two_stage_models_the_padded_ground_truth():
    example = {
        "images": tf.zeros((64, 64, 3)),
        "boxes": tf.constant([[1.0, 2.0, 30.0, 40.0], [0, 0, 0, 0]]),
        "box_classes": tf.constant([1, -1]),
        "has_boxes": tf.constant(1.0),
        "labels": tf.constant([0.0, 1.0]),
    }
    _, targets, weights = training_inputs(example, FasterRCNNConfig.from_preset("small"), None)
    assert set(targets) == {"boxes", "box_classes"} and set(weights) == set(targets)
    np.testing.assert_array_equal(targets["boxes"], example["boxes"])
    np.testing.assert_array_equal(targets["box_classes"], [1, -1])
    assert float(weights["boxes"]) == 1.0


def test_invalid_config_values_name_their_field():
    with pytest.raises(ConfigError, match="FasterRCNNConfig.rpn_negative_iou"):
        FasterRCNNConfig(rpn_positive_iou=0.3, rpn_negative_iou=0.7)
    with pytest.raises(ConfigError, match="FasterRCNNConfig.tasks"):
        FasterRCNNConfig(tasks=("segmentation", "detection"))
