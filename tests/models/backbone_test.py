import keras
import numpy as np
import pytest

from defect_aux_net.models.backbone import apply_backbone, build_backbone
from defect_aux_net.models.segmentation_network_config import SegmentationNetworkConfig
from defect_aux_net.models.ssd_config import SsdConfig


@pytest.mark.parametrize(
    "depth, channels", [("resnet18", (64, 128, 256, 512)), ("resnet50", (256, 512, 1024, 2048))]
)
def test_levels_have_strides_4_to_32(depth, channels):
    backbone = build_backbone(depth, attention="none")
    features = backbone(np.zeros((1, 64, 96, 3), np.float32))
    for level, expected_channels in zip((2, 3, 4, 5), channels):
        assert tuple(features[f"C{level}"].shape) == (
            1, 64 // 2**level, 96 // 2**level, expected_channels
        )


@pytest.mark.parametrize(
    "attention, se, sa", [("none", 0, 0), ("se", 16, 0), ("sa", 0, 16), ("se+sa", 16, 16)]
)
def test_attention_in_every_residual_block(attention, se, sa):
    backbone = build_backbone("resnet50", attention=attention)
    names = [layer.name for layer in backbone.layers]
    assert sum(name.endswith("_se") for name in names) == se
    assert sum(name.endswith("_sa") for name in names) == sa


def test_se_then_sa_on_the_residual_branch():
    backbone = build_backbone("resnet18", attention="se+sa")
    sa = backbone.get_layer("conv3_block1_sa")
    # SA reads SE's output and feeds the residual addition.
    assert sa.input.name == backbone.get_layer("conv3_block1_se").output.name
    add_inputs = [tensor.name for tensor in backbone.get_layer("conv3_block1_add").input]
    assert sa.output.name in add_inputs


def test_conv_and_bn_names_and_shapes_match_keras_resnet50():
    ours = build_backbone("resnet50", attention="se+sa")
    reference = keras.applications.ResNet50(weights=None, include_top=False)
    for layer in reference.layers:
        if layer.weights:
            assert [w.shape for w in ours.get_layer(layer.name).weights] == [
                w.shape for w in layer.weights
            ], layer.name


def test_batch_norm_momentum_reaches_every_batch_norm():
    backbone = build_backbone("resnet18", attention="se+sa", batch_norm_momentum=0.9)
    norms = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 1 + 8 * 2 + 3  # stem, two per basic block, three projections
    assert {norm.momentum for norm in norms} == {0.9}


def test_apply_backbone_builds_the_configs_resnet_pads_and_adds_levels():
    # SsdConfig has no attention fields: a plain ResNet-18, the image unpadded.
    ssd = SsdConfig.from_preset("small")
    inputs = keras.Input(ssd.input_shape)
    backbone, features = apply_backbone(ssd, inputs)
    assert not any(layer.name.endswith(("_se", "_sa")) for layer in backbone.layers)
    assert tuple(features["C5"].shape) == (None, 64 // 32, 64 // 32, 512)
    # 40 x 70 padded bottom/right to multiples of 32: 64 x 96; conv1's output first.
    config = SegmentationNetworkConfig.from_preset("small", input_shape=(40, 70, 3), se_ratio=8)
    inputs = keras.Input(config.input_shape)
    backbone, features = apply_backbone(config, inputs, config.padded_size, {"C1": "conv1_relu"})
    model = keras.Model(inputs, features)
    assert model.get_layer("pad").padding == ((0, 64 - 40), (0, 96 - 70))
    assert list(features) == ["C1", "C2", "C3", "C4", "C5"]
    assert tuple(features["C1"].shape) == (None, 64 // 2, 96 // 2, 64)
    assert tuple(features["C5"].shape) == (None, 64 // 32, 96 // 32, 512)
    assert backbone.get_layer("conv2_block1_se").ratio == 8
    assert backbone.get_layer("conv2_block1_sa").kernel_size == config.spatial_attention_kernel_size
