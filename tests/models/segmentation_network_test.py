import keras
import numpy as np
import pytest

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.models.model_builders import build_model, model_config, model_name
from defect_aux_net.models.segmentation_network import SegmentationNetwork
from defect_aux_net.models.segmentation_network_config import (
    DECODERS,
    SegmentationNetworkConfig,
)
from tests.tolerances import assert_close

# 40x72 is no multiple of 32: the model pads to 64x96 and crops the masks back.
INPUT_SHAPE = (40, 72, 3)


@pytest.fixture(scope="module")
def small_models():
    """The small network of each decoder, 2 classes at `INPUT_SHAPE`, built once."""
    keras.utils.set_random_seed(0)
    return {
        name: build_model(model_config(name, "small", num_classes=2, input_shape=INPUT_SHAPE))
        for name in DECODERS
    }


@pytest.mark.parametrize("name", DECODERS)
def test_each_model_name_builds_its_decoder_with_masks_at_the_input_size(name, small_models):
    model = small_models[name]
    assert type(model) is SegmentationNetwork
    assert (model.config.decoder, model_name(model.config)) == (name, name)
    assert model.get_layer(f"{name}_decoder").output.shape == (None, 64, 96, 2)
    masks = model(np.random.default_rng(0).random((1, *INPUT_SHAPE)).astype("float32"))
    assert set(masks) == {"segmentation"}
    masks = np.asarray(masks["segmentation"])
    assert masks.shape == (1, 40, 72, 2) and masks.dtype == np.float32
    assert 0 < masks.min() and masks.max() < 1
    assert (model.anchors, model.supports_gated_inference) == (None, False)


def test_the_loss_is_the_configured_dice_over_the_annotated_images(small_models):
    model = small_models["pspnet"]
    assert model.config.segmentation_loss == "dice"
    rng = np.random.default_rng(0)
    images = rng.random((2, *INPUT_SHAPE)).astype("float32")
    masks = (rng.random((2, 40, 72, 2)) > 0.8).astype("float32")
    predictions = model(images)
    # The second image has no mask: only the first one's pixels count.
    loss = model.compute_loss(
        y={"segmentation": masks}, y_pred=predictions,
        sample_weight={"segmentation": np.array([1.0, 0.0], "float32")},
    )
    p, y = np.asarray(predictions["segmentation"][0], "float64"), masks[0]
    # Paper eq. 3 per class, smoothed by 1, averaged over the classes.
    dice = (2 * (y * p).sum(axis=(0, 1)) + 1) / (y.sum(axis=(0, 1)) + p.sum(axis=(0, 1)) + 1)
    assert_close(float(loss), np.mean(1 - dice), 1e-5)
    assert float(model.segmentation_loss_tracker.result()) == pytest.approx(float(loss))


def test_outputs_stay_float32_under_mixed_bfloat16():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_model(model_config("linknet", "small"))
        masks = model(np.zeros((1, 64, 64, 3), "float32"))["segmentation"]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert masks.dtype == "float32"
    assert model.get_layer("linknet_decoder").compute_dtype == "bfloat16"


def test_the_paper_presets_are_resnet50_with_se_and_sa_at_tables_ii_sizes():
    tekerreka = model_config("unet", "tekerreka")
    assert (tekerreka.backbone, tekerreka.attention) == ("resnet50", "se+sa")
    assert (tekerreka.num_classes, tekerreka.input_shape) == (1, (600, 600, 3))
    assert tekerreka.padded_size == (608, 608)
    severstal = model_config("pspnet", "severstal")
    assert (severstal.num_classes, severstal.input_shape) == (4, (128, 800, 3))
    assert severstal.decoder == "pspnet"


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"decoder": "deeplab"}, "decoder"),
        ({"backbone": "resnet152"}, "backbone"),
        ({"attention": "cbam"}, "attention"),
        ({"segmentation_loss": "focal"}, "segmentation_loss"),
        ({"tasks": ("classification", "segmentation")}, "tasks"),
        ({"input_shape": (16, 64, 3)}, "input_shape"),
        ({"input_shape": (64, 64)}, "input_shape"),
        ({"num_classes": 0}, "num_classes"),
        ({"decoder_channels": 0}, "decoder_channels"),
        ({"batch_norm_momentum": 1.0}, "batch_norm_momentum"),
        ({"input_normalization": "zscore"}, "input_normalization"),
        ({"backbone_weights": "imagenet", "backbone": "resnet18"}, "backbone_weights"),
        ({"input_normalization": "caffe", "input_shape": (64, 64, 1)}, "input_normalization"),
        ({"input_normalization": "torch", "input_shape": (64, 64, 1)}, "input_normalization"),
    ],
)
def test_bad_fields_raise_config_errors_naming_them(fields, field):
    with pytest.raises(ConfigError) as error:
        SegmentationNetworkConfig.from_preset("small", **fields)
    assert error.value.field == f"SegmentationNetworkConfig.{field}"
    assert str(error.value).startswith(f"SegmentationNetworkConfig.{field}=")


def test_the_saved_config_never_downloads_weights_and_keeps_their_normalisation():
    config = model_config("unet", "small", backbone="resnet50", backbone_weights="imagenet")
    assert config.resolved_input_normalization == "caffe"
    # get_config of a model built from it, without building (and downloading) it.
    saved = SegmentationNetwork.get_config(
        type("Built", (), {"config": config, "name": "m", "trainable": True})()
    )["config"]
    assert (saved["backbone_weights"], saved["input_normalization"]) == (None, "caffe")
    assert SegmentationNetworkConfig(**saved).resolved_input_normalization == "caffe"
