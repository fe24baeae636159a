import dataclasses

import keras
import numpy as np
import pytest

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.losses.label_map import label_map_loss, label_map_targets
from defect_aux_net.losses.segmentation import SEGMENTATION_LOSS_FUNCTIONS
from defect_aux_net.models.deeplab_backbones import copy_weights
from defect_aux_net.models.deeplab_config import DeepLabV3PlusConfig
from defect_aux_net.models.deeplab_v3_plus import DeepLabV3Plus
from tests import tolerances

SMALL = DeepLabV3PlusConfig.from_preset("small", num_classes=2, input_shape=(64, 64, 3))


@pytest.fixture(scope="module")
def softmax_model():
    keras.utils.set_random_seed(0)
    return DeepLabV3Plus(dataclasses.replace(SMALL, output="softmax"))


def images(size=2, seed=0):
    return np.random.default_rng(seed).random((size, 64, 64, 3)).astype(np.float32)


@pytest.mark.parametrize(
    "overrides, field, match",
    [
        ({"backbone": "resnet50"}, "backbone", "'resnet50' is unknown.*efficientnetb1"),
        ({"backbone_weights": "w.h5"}, "backbone_weights", 'None or "imagenet"'),
        ({"backbone_weights": "imagenet"}, "backbone_weights", "not for backbone='resnet18'"),
        ({"input_shape": (64, 72, 3)}, "input_shape", "multiples of 16"),
        ({"backbone": "densenet201", "input_shape": (64, 64, 1)}, "input_shape", "3 channels"),
        ({"input_normalization": "torch", "input_shape": (64, 64, 1)}, "input_normalization",
         "3 input channels"),
        ({"output": "argmax"}, "output", "sigmoid, softmax"),
        ({"aspp_rates": (6, 0)}, "aspp_rates", "positive integers"),
        ({"low_level_channels": 0}, "low_level_channels", ">= 1"),
        ({"tasks": ("classification",)}, "tasks", "segmentation"),
        ({"batch_norm_momentum": 1.0}, "batch_norm_momentum", r"\[0, 1\)"),
    ],
)
def test_bad_values_raise_config_errors_naming_the_field(overrides, field, match):
    with pytest.raises(ConfigError, match=match) as error:
        dataclasses.replace(SMALL, **overrides)
    assert error.value.field == f"DeepLabV3PlusConfig.{field}"


def test_each_backbone_resolves_to_the_normalisation_of_its_weights():
    resolved = {
        preset: DeepLabV3PlusConfig.from_preset(preset).resolved_input_normalization
        for preset in DeepLabV3PlusConfig.presets
    }
    assert resolved == {
        "severstal_resnet101": "caffe",
        "severstal_densenet201": "torch",
        "severstal_efficientnetb1": "raw",
        "severstal_bare_bone": "caffe",
        "small": "min_max",
    }
    assert DeepLabV3PlusConfig.from_preset("severstal_resnet101").input_shape == (256, 256, 3)
    assert not DeepLabV3PlusConfig.from_preset("severstal_bare_bone").aspp


def test_label_map_targets_add_the_background_and_split_overlaps_by_hand():
    # Three pixels, K = 2: defect-free, class 2 only, both classes.
    masks = np.array([[[[0, 0], [0, 1], [1, 1]]]], np.float32)
    expected = np.array([[[[1, 0, 0], [0, 0, 1], [0, 0.5, 0.5]]]], np.float32)
    np.testing.assert_array_equal(np.asarray(label_map_targets(masks)), expected)


def test_label_map_loss_is_the_weighted_cross_entropy_by_hand():
    masks = np.array([[[[0, 0], [0, 1], [1, 1]]], [[[1, 0], [0, 0], [0, 0]]]], np.float32)
    logits = np.random.default_rng(3).normal(size=(2, 1, 3, 3)).astype(np.float32)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    class_weights = np.full((2, 1, 3, 2), 2.0, np.float32)
    class_weights[0, 0, 2, 0] = 4.0  # The overlap pixel: (4 + 2) / 2 = 3.
    # Example 1 has no mask (weight 0); example 0's pixels weigh 1 (background), 2, 3.
    cross_entropy = [
        -log_p[0, 0, 0, 0], -log_p[0, 0, 1, 2], -(log_p[0, 0, 2, 1] + log_p[0, 0, 2, 2]) / 2
    ]
    expected = (1 * cross_entropy[0] + 2 * cross_entropy[1] + 3 * cross_entropy[2]) / 6
    loss = label_map_loss(masks, logits, np.array([1.0, 0.0]), class_weights)
    tolerances.assert_close(float(loss), expected, 16 * tolerances.FLOAT32_UNIT_ROUNDOFF)


def test_softmax_output_is_the_label_map_softmax_without_background(softmax_model):
    outputs = softmax_model(images(), training=False)
    assert {name: tuple(value.shape) for name, value in outputs.items()} == {
        "segmentation": (2, 64, 64, 2),
        "segmentation_logits": (2, 64, 64, 3),
    }
    logits = np.asarray(outputs["segmentation_logits"], np.float64)
    softmax = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    tolerances.assert_close(
        np.asarray(outputs["segmentation"]), softmax[..., 1:], tolerances.float32_output_tolerance()
    )
    assert softmax_model.anchors is None and not softmax_model.supports_gated_inference


def test_softmax_compute_loss_skips_examples_without_masks(softmax_model):
    masks = np.zeros((2, 64, 64, 2), np.float32)
    masks[0, 10:30, 20:40, 1] = 1
    outputs = softmax_model(images(), training=False)
    loss = softmax_model.compute_loss(
        y={"segmentation": masks},
        y_pred=outputs,
        sample_weight={"segmentation": np.array([1.0, 0.0])},
    )
    first = label_map_loss(masks[:1], outputs["segmentation_logits"][:1], np.ones(1))
    tolerances.assert_close(float(loss), float(first), 64 * tolerances.FLOAT32_UNIT_ROUNDOFF)


def test_sigmoid_outputs_and_loss_of_the_config_on_masked_examples():
    keras.utils.set_random_seed(0)
    model = DeepLabV3Plus(dataclasses.replace(SMALL, aspp=False, segmentation_loss="dice"))
    outputs = model(images(), training=False)
    assert {name: tuple(value.shape) for name, value in outputs.items()} == {
        "segmentation": (2, 64, 64, 2)
    }
    assert "aspp" not in [layer.name for layer in model.layers]
    masks = np.zeros((2, 64, 64, 2), np.float32)
    masks[1, 5:20, 5:50, 0] = 1
    weights = np.full((2, 64, 64, 2), 3.0, np.float32)
    loss = model.compute_loss(
        y={"segmentation": masks, "segmentation_weights": weights},
        y_pred=outputs,
        sample_weight={"segmentation": np.array([0.0, 1.0])},
    )
    # Example 0 has no mask: the loss is the Dice of example 1 alone, weights 3.
    alone = SEGMENTATION_LOSS_FUNCTIONS["dice"](masks[1:], outputs["segmentation"][1:], weights[1:])
    tolerances.assert_close(float(loss), float(alone), 64 * tolerances.FLOAT32_UNIT_ROUNDOFF)


def test_copy_weights_folds_the_imagenet_rescaling_into_the_normalization():
    # keras.applications' EfficientNet stem with ImageNet weights (a per-channel
    # Rescaling after the Normalization) and without them (no such layer).
    def stem(with_rescaling):
        inputs = keras.Input((2, 2, 3))
        x = keras.layers.Normalization(axis=-1)(keras.layers.Rescaling(1 / 255)(inputs))
        if with_rescaling:
            x = keras.layers.Rescaling([0.5, 2.0, 4.0])(x)
        return keras.Model(inputs, keras.layers.Conv2D(2, 1)(x))

    source, target = stem(True), stem(False)
    norm = next(layer for layer in source.layers if isinstance(layer, keras.layers.Normalization))
    norm.set_weights([np.array([0.1, 0.2, 0.3]), np.array([0.04, 0.09, 0.25]), np.array(1)])
    norm.finalize_state()
    copy_weights(source, target)
    pixels = np.random.default_rng(4).integers(0, 256, (1, 2, 2, 3)).astype(np.float32)
    normalised = (pixels / 255 - [0.1, 0.2, 0.3]) / np.sqrt([0.04, 0.09, 0.25]) * [0.5, 2, 4]
    conv = source.layers[-1]
    kernel, bias = (np.asarray(weight) for weight in conv.weights)
    expected = normalised @ kernel[0, 0] + bias
    # Normalised values reach 1 / 0.2 * 4 = 20 and the conv sums three of them: a few
    # roundoffs at a scale of 64. Without the fold, channels would be off by 2x to 4x.
    tolerances.assert_close(
        np.asarray(target(pixels)), expected, 8 * 64 * tolerances.FLOAT32_UNIT_ROUNDOFF
    )


@pytest.mark.slow(seconds=70)
def test_the_papers_backbones_at_strides_4_and_16():
    # keras.applications networks without weights (no download in tests): ResNet101's
    # stage 5 dilated to stride 16 (2048 channels), DenseNet201 and EfficientNetB1
    # tapped at the ends of their stride-4 and stride-16 stages.
    expected = {
        "resnet101": ((16, 16, 256), (4, 4, 2048)),
        "densenet201": ((16, 16, 256), (4, 4, 1792)),
        "efficientnetb1": ((16, 16, 144), (4, 4, 672)),
    }
    for backbone, (low, high) in expected.items():
        config = DeepLabV3PlusConfig(num_classes=4, input_shape=(64, 64, 3), backbone=backbone)
        model = DeepLabV3Plus(config)
        features = model.get_layer(backbone).output
        assert (tuple(features["low"].shape[1:]), tuple(features["high"].shape[1:])) == (low, high)
        assert tuple(model(images(1), training=False)["segmentation"].shape) == (1, 64, 64, 4)
        assert model.get_layer("input_normalization").mode == config.resolved_input_normalization
        if backbone == "resnet101":
            conv = model.get_layer(backbone).get_layer("conv5_block3_2_conv")
            assert tuple(conv.dilation_rate) == (2, 2)
