import pytest

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.experiments import ExperimentConfig
from defect_aux_net.models.image_classifier_config import ImageClassifierConfig
from defect_aux_net.models.model_builders import model_config, model_name

CLASSIFIERS = ("resnet50", "se_resnet50", "efficientnet_b0")


@pytest.mark.parametrize("name", CLASSIFIERS)
@pytest.mark.parametrize("preset", ("tekerreka", "severstal", "small"))
def test_each_name_makes_its_network_from_every_preset(name, preset):
    config = model_config(name, preset)
    assert model_name(config) == name
    assert config.tasks == ("classification",)
    resnet = "resnet18" if preset == "small" else "resnet50"
    assert config.backbone == ("efficientnet_b0" if name == "efficientnet_b0" else resnet)


def test_the_paper_presets_are_table_threes_inputs():
    assert model_config("se_resnet50", "tekerreka").input_shape == (600, 600, 3)
    severstal = model_config("efficientnet_b0", "severstal")
    assert (severstal.num_classes, severstal.input_shape) == (4, (128, 800, 3))


@pytest.mark.parametrize(
    "fields, normalization",
    [
        ({}, "min_max"),  # The paper's, without pretrained weights.
        ({"backbone": "resnet50", "backbone_weights": "imagenet"}, "caffe"),
        ({"backbone": "efficientnet_b0", "attention": None}, "min_max"),
        ({"backbone": "efficientnet_b0", "attention": None, "backbone_weights": "w.h5"}, "raw"),
        ({"backbone": "resnet50", "backbone_weights": "w.h5", "input_normalization": "min_max"},
         "min_max"),
    ],
)
def test_the_input_normalization_is_what_the_weights_expect_unless_given(fields, normalization):
    assert ImageClassifierConfig.from_preset("small", **fields).resolved_input_normalization == (
        normalization
    )


@pytest.mark.parametrize(
    "fields, field, message",
    [
        ({"backbone": "vgg16"}, "backbone", "'vgg16' is unknown"),
        ({"backbone": "efficientnet_b0"}, "attention", "takes no attention: None"),
        ({"attention": None}, "attention", "None is unknown for a ResNet"),
        ({"attention": "se+sa"}, "attention", "allowed values: none, se"),
        ({"num_classes": 0}, "num_classes", "integer >= 1"),
        ({"input_shape": (16, 64, 3)}, "input_shape", "at least 32 pixels"),
        ({"input_shape": (64, 64)}, "input_shape", "(height, width, channels)"),
        ({"tasks": ("classification", "segmentation")}, "tasks", "classification head only"),
        ({"se_ratio": 0}, "se_ratio", "integer >= 1"),
        ({"batch_norm_momentum": 1.0}, "batch_norm_momentum", r"in \[0, 1\)"),
        ({"input_normalization": "raw"}, "input_normalization", "does not suit backbone='resnet18'"),
        ({"backbone": "efficientnet_b0", "attention": None, "input_normalization": "caffe"},
         "input_normalization", "allowed values: None, min_max, raw"),
        ({"backbone_weights": "imagenet"}, "backbone_weights", "not for backbone='resnet18'"),
        ({"backbone": "resnet50", "backbone_weights": "imagenet", "input_shape": (64, 64, 1)},
         "backbone_weights", "RGB images: they need 3 input channels"),
        ({"input_normalization": "caffe", "input_shape": (64, 64, 1)}, "input_normalization",
         "ImageNet means: it needs 3 input channels"),
    ],
)
def test_bad_configs_name_their_field(fields, field, message):
    with pytest.raises(ConfigError, match=message) as error:
        ImageClassifierConfig.from_preset("small", **fields)
    assert error.value.field == f"ImageClassifierConfig.{field}"


def test_an_experiment_refuses_a_model_config_of_another_name():
    # `--model=resnet50 --attention=se` would train an SE-ResNet recorded as resnet50.
    model = model_config("resnet50", "small", attention="se")
    with pytest.raises(ConfigError, match="describes 'se_resnet50'") as error:
        ExperimentConfig(model=model, dataset="neu_det", model_name="resnet50")
    assert error.value.field == "ExperimentConfig.model_name"
    assert ExperimentConfig(model=model, dataset="neu_det", model_name="se_resnet50").model is model
