"""Cascade R-CNN's stages on tiny inputs: refined RoIs, per-stage targets, the score ensemble.

The `.keras` round trip, the XLA step and the export are the model contract's
(`model_contract_test.py`).
"""

import dataclasses
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.layers.refined_boxes import RefinedBoxes
from defect_aux_net.layers.two_stage_heads import BoxHead
from defect_aux_net.layers.two_stage_ops import DecodedDetections
from defect_aux_net.models.cascade_rcnn import CascadeRCNN
from defect_aux_net.models.cascade_rcnn_config import CascadeRCNNConfig
from tests.tolerances import float32_output_tolerance

UNIT = float32_output_tolerance()
# The paper's stage stds (0.1, 0.1, 0.2, 0.2), (0.05, 0.05, 0.1, 0.1), (1/30, 1/30, 1/15, 1/15)
# as delta weights, and the stages' IoU thresholds.
STAGE_WEIGHTS = [(10, 10, 5, 5), (20, 20, 10, 10), (30, 30, 15, 15)]
STAGE_IOUS = [0.5, 0.6, 0.7]


def test_refined_boxes_decode_with_the_stage_weights_clip_and_stop_the_gradient():
    rois = tf.constant([[[0, 0, 10, 20], [0, 0, 0, 0]]], tf.float32)
    # Stage 2's weights: the centre 0.1 heights down, twice as wide.
    deltas = tf.constant([[[[20 * 0.1, 0, 0, 10 * math.log(2)]], [[1.0, 1.0, 1.0, 1.0]]]])
    layer = RefinedBoxes((64, 64), STAGE_WEIGHTS[1])
    with tf.GradientTape() as tape:
        tape.watch(deltas)
        boxes = layer(deltas, rois)
    # Centre (6, 10), height 10, width 40: [1, -10, 11, 30], clipped at x = 0.
    np.testing.assert_allclose(boxes[0, 0], [1, 0, 11, 30], atol=1e-4)
    np.testing.assert_allclose(boxes[0, 1], [0, 0, 0, 0], atol=1e-6)  # Empty stays empty.
    assert tape.gradient(boxes, deltas) is None
    assert RefinedBoxes.from_config(layer.get_config()).box_weights == STAGE_WEIGHTS[1]


def test_class_agnostic_box_head_has_one_set_of_deltas():
    head = BoxHead(num_classes=3, units=8, class_agnostic=True)
    logits, deltas = head(np.ones((2, 5, 2, 2, 4), np.float32))
    assert logits.shape == (2, 5, 4) and deltas.shape == (2, 5, 1, 4)
    assert BoxHead.from_config(head.get_config()).class_agnostic


def test_detections_average_the_stages_probabilities_and_share_the_last_box():
    logits = [np.zeros((1, 2, 3), np.float32) for _ in range(3)]
    logits[0][0, 0] = [0, math.log(2), 0]  # [1, 2, 1] / 4
    logits[1][0, 0] = [math.log(2), 0, 0]  # [2, 1, 1] / 4
    logits[2][0, 0] = [0, 0, math.log(6)]  # [1, 1, 6] / 8
    proposals = np.array([[[0, 0, 30, 30], [0, 0, 0, 0]]], np.float32)
    deltas = np.zeros((1, 2, 1, 4), np.float32)
    deltas[0, 0, 0] = [30 * 0.1, 0, 0, 0]  # Stage 3's weights: 3 pixels down.
    boxes, scores = DecodedDetections((64, 64), STAGE_WEIGHTS[2])(
        logits, deltas, proposals, np.array([1])
    )
    # Mean of the class columns: (2/4 + 1/4 + 1/8) / 3 and (1/4 + 1/4 + 6/8) / 3.
    np.testing.assert_allclose(scores[0, 0], [7 / 24, 10 / 24], atol=1e-6)
    np.testing.assert_array_equal(scores[0, 1], [0, 0])  # A padding proposal.
    assert boxes.shape == (1, 2, 1, 4)
    np.testing.assert_allclose(boxes[0, 0, 0], [3, 0, 33, 30], atol=1e-4)


def _iou(boxes, box):
    y0, x0 = np.maximum(boxes[:, 0], box[0]), np.maximum(boxes[:, 1], box[1])
    y1, x1 = np.minimum(boxes[:, 2], box[2]), np.minimum(boxes[:, 3], box[3])
    inter = np.maximum(y1 - y0, 0) * np.maximum(x1 - x0, 0)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (area + (box[2] - box[0]) * (box[3] - box[1]) - inter)


def _centre_size(boxes):
    return ((boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2,
            boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def _decode(deltas, rois, weights):
    cy, cx, h, w = _centre_size(rois)
    dy, dx, dh, dw = (deltas / np.array(weights, np.float32)).T
    cy, cx, h, w = cy + dy * h, cx + dx * w, h * np.exp(dh), w * np.exp(dw)
    return np.clip(np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], 1), 0, 64)


def _encode(box, rois, weights):
    cy, cx, h, w = _centre_size(rois)
    gy, gx, gh, gw = _centre_size(np.array([box], np.float32))
    deltas = np.stack([(gy - cy) / h, (gx - cx) / w, np.log(gh / h), np.log(gw / w)], 1)
    return deltas * np.array(weights, np.float32)


@pytest.fixture(scope="module")
def small_model():
    keras.utils.set_random_seed(0)
    model = CascadeRCNN(
        CascadeRCNNConfig.from_preset("small", num_classes=3, stage_loss_weights=(1, 0.5, 0.25))
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    # Stages 1 and 2 move every RoI by pixels, so that stage 2's and 3's RoIs differ
    # from the sample.
    for stage, bias in ((1, [1.0, -1.0, 0.5, 0.5]), (2, [-0.5, 1.0, -0.3, 0.3])):
        model.get_layer(f"box_head_{stage}").box_deltas.bias.assign(bias)
    return model


def test_each_stage_refines_the_previous_ones_rois_and_targets_them_at_its_iou(small_model):
    images = np.random.default_rng(2).random((2, 64, 64, 3)).astype(np.float32)
    gt = np.array([8, 16, 40, 48], np.float32)
    boxes = np.array([[gt, [0, 0, 0, 0]], np.zeros((2, 4))], np.float32)
    classes = np.array([[2, -1], [-1, -1]], np.int32)
    stages = small_model.training_outputs(images, boxes, classes, tf.constant([5, 0]))["stages"]
    assert len(stages) == 3
    filled = np.asarray(stages[0]["rois"]["class_weights"][0]) > 0
    for stage in range(3):
        sample = {key: np.asarray(value[0]) for key, value in stages[stage]["rois"].items()}
        rois = sample["rois"][filled]
        if stage > 0:
            previous = stages[stage - 1]
            expected = _decode(
                np.asarray(previous["target_deltas"][0])[filled],
                np.asarray(previous["rois"]["rois"][0])[filled], STAGE_WEIGHTS[stage - 1],
            )
            np.testing.assert_allclose(rois, expected, atol=1e-3)
            assert np.abs(rois - np.asarray(previous["rois"]["rois"][0])[filled]).max() > 1
            np.testing.assert_array_equal(sample["class_weights"], filled)
        iou = _iou(rois, gt)
        foreground = iou >= STAGE_IOUS[stage]
        np.testing.assert_array_equal(sample["box_weights"][filled], foreground)
        np.testing.assert_array_equal(sample["class_targets"][filled], np.where(foreground, 3, 0))
        np.testing.assert_allclose(
            sample["box_targets"][filled][foreground],
            _encode(gt, rois[foreground], STAGE_WEIGHTS[stage]), atol=1e-3,
        )
        assert foreground.any() and not foreground.all(), stage


def test_box_losses_weigh_the_stages(small_model):
    images = np.random.default_rng(3).random((2, 64, 64, 3)).astype(np.float32)
    targets = {
        "boxes": np.array([[[8, 16, 40, 48], [0, 0, 0, 0]], np.zeros((2, 4))], np.float32),
        "box_classes": np.array([[0, -1], [-1, -1]], np.int32),
    }
    config = small_model.config

    def loss_parts(weights):
        small_model.config = dataclasses.replace(config, stage_loss_weights=weights)
        for metric in small_model.metrics:
            metric.reset_state()
        # The same step (the optimizer's), so the same sample each time.
        loss = small_model.compute_loss(images, targets, None, None)
        parts = {name: float(tracker.result()) for name, tracker in small_model.part_trackers.items()}
        np.testing.assert_allclose(float(loss), sum(parts.values()), rtol=1e-5)
        return np.array([parts["box_class_loss"], parts["box_loss"]])

    try:
        stages = [loss_parts(weights) for weights in np.eye(3)]
        weighted = loss_parts((1, 0.5, 0.25))
    finally:
        small_model.config = config
    # Three different heads on different RoIs: three different losses.
    assert len({round(float(stage[0]), 4) for stage in stages}) == 3, stages
    np.testing.assert_allclose(weighted, stages[0] + stages[1] / 2 + stages[2] / 4, rtol=1e-4)


def test_invalid_cascade_fields_name_their_field():
    with pytest.raises(ConfigError, match=r"CascadeRCNNConfig.stage_loss_weights=\(1, 1\)"):
        CascadeRCNNConfig(stage_loss_weights=(1, 1))
    with pytest.raises(ConfigError, match="CascadeRCNNConfig.tasks"):
        CascadeRCNNConfig(tasks=("classification", "detection"))
    with pytest.raises(ConfigError, match="CascadeRCNNConfig.roi_foreground_iou=0.65"):
        CascadeRCNNConfig(roi_foreground_iou=0.65)
