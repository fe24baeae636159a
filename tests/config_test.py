import dataclasses
import re

import pytest

from defect_aux_net import DefectAuxNetConfig
from defect_aux_net.config_errors import ConfigError


@pytest.mark.parametrize(
    "overrides, field, allowed",
    [
        ({"backbone": "resnet51"}, "backbone", "resnet18, resnet34, resnet50, resnet101"),
        ({"attention": "cbam"}, "attention", "none, se, sa, se+sa"),
        ({"segmentation_loss": "focal"}, "segmentation_loss", "dice, bce, jaccard"),
        ({"input_normalization": "tf"}, "input_normalization", "min_max, caffe, torch, raw"),
    ],
)
def test_unknown_names_list_allowed_values(overrides, field, allowed):
    message = f"DefectAuxNetConfig.{field}=.*{re.escape(allowed)}"
    with pytest.raises(ConfigError, match=message) as error:
        DefectAuxNetConfig(**overrides)
    assert error.value.field == f"DefectAuxNetConfig.{field}"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"num_classes": 0}, "num_classes must be an integer >= 1, got 0"),
        ({"input_shape": (0, 600, 3)}, "input_shape must be .* positive integers"),
        ({"input_shape": (600, 600)}, "input_shape must be"),
        ({"input_shape": (16, 600, 3)}, "too small.*at least 32"),
        ({"tasks": ()}, "tasks must be a non-empty subset"),
        ({"tasks": ("segmentation", "counting")}, "tasks must be a non-empty subset"),
        ({"loss_weights": (1, 1)}, "loss_weights must be three"),
        ({"backbone_weights": "imagenet", "input_shape": (128, 128, 1)}, "3 input channels"),
        ({"backbone_weights": "imagenet", "backbone": "resnet18"}, "not for backbone='resnet18'"),
        ({"input_normalization": "caffe", "input_shape": (64, 64, 1)}, "caffe.*3 input channels"),
        ({"input_normalization": "torch", "input_shape": (64, 64, 1)}, "torch.*3 input channels"),
        ({"backbone_weights": "w.h5", "input_shape": (64, 64, 1)}, "RGB images.*3 input channels"),
        ({"backbone_weights": "w.h5", "backbone": "resnet18"}, "not for backbone='resnet18'"),
        ({"min_level": 1}, "min_level"),
        ({"positive_iou": 0.3, "negative_iou": 0.4}, "negative_iou <= positive_iou"),
        ({"batch_norm_momentum": 1.0}, r"batch_norm_momentum must be in \[0, 1\), got 1.0"),
    ],
)
def test_invalid_values_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message) as error:
        DefectAuxNetConfig(**overrides)
    # The field is the first one changed; the weights' or the normalisation's where they
    # need 3 channels.
    field = "input_normalization" if "3 input channels" in message else next(iter(overrides))
    if "backbone_weights" in overrides:
        field = "backbone_weights"
    field = {"positive_iou": "negative_iou"}.get(field, field)
    assert error.value.field == f"DefectAuxNetConfig.{field}"


def test_presets_and_overrides():
    config = DefectAuxNetConfig.from_preset("severstal", attention="se")
    assert config.input_shape == (128, 800, 3)
    assert config.num_classes == 4 and config.attention == "se"
    assert config.padded_size == (128, 896)
    with pytest.raises(ConfigError, match="Unknown DefectAuxNetConfig preset 'kaggle'") as error:
        DefectAuxNetConfig.from_preset("kaggle")
    assert error.value.field == "preset"


def test_lists_become_tuples_so_configs_round_trip():
    config = DefectAuxNetConfig(input_shape=[64, 64, 1], tasks=["segmentation"])
    assert DefectAuxNetConfig(**config.to_dict()) == config


def test_input_normalization_follows_the_backbone_weights_unless_given():
    config = DefectAuxNetConfig()
    assert config.resolved_input_normalization == "min_max"
    # Replacing the weights changes what they expect: the field stays open (None).
    imagenet = dataclasses.replace(config, backbone_weights="imagenet")
    assert imagenet.resolved_input_normalization == "caffe"
    weights_file = dataclasses.replace(config, backbone_weights="resnet50_notop.h5")
    assert weights_file.resolved_input_normalization == "caffe"
    given = dataclasses.replace(imagenet, input_normalization="min_max")
    assert given.resolved_input_normalization == "min_max"
