import math

import keras
import numpy as np
import pytest

from defect_aux_net import DefectAuxNetConfig, build_defect_aux_net
from defect_aux_net.data.preprocessing import prepare_image
from defect_aux_net.models.backbone import build_backbone
from defect_aux_net.models.backbone_weights import load_backbone_weights
from tests import tolerances


@pytest.fixture(scope="module")
def resnet50_reference():
    keras.utils.set_random_seed(3)
    return keras.applications.ResNet50(weights=None, include_top=False)


@pytest.mark.parametrize("filename", ["resnet50.weights.h5", "resnet50_notop.h5"])
def test_keras_resnet50_weights_load_by_name(resnet50_reference, tmp_path, filename):
    path = str(tmp_path / filename)
    if filename.endswith(".weights.h5"):
        resnet50_reference.save_weights(path)
    else:  # The legacy HDF5 layout of the file Keras downloads for "imagenet".
        resnet50_reference.save(path)
    config = DefectAuxNetConfig.from_preset(
        "small", backbone="resnet50", input_shape=(64, 64, 3), backbone_weights=path
    )
    model = build_defect_aux_net(config)
    backbone = model.get_layer("resnet50_se_sa")
    for name in ("conv1_conv", "conv2_block1_0_conv", "conv4_block6_2_bn", "conv5_block3_3_conv"):
        for ours, theirs in zip(
            backbone.get_layer(name).get_weights(), resnet50_reference.get_layer(name).get_weights()
        ):
            np.testing.assert_array_equal(ours, theirs)
    # Attention layers keep their own initialisation.
    assert backbone.get_layer("conv2_block1_se").count_params() > 0
    # Saved configs drop backbone_weights (no download on reload) and keep the input
    # normalisation those weights were trained with.
    assert backbone.get_layer("input_normalization").mode == "caffe"
    saved = model.get_config()["config"]
    assert (saved["backbone_weights"], saved["input_normalization"]) == (None, "caffe")


def test_every_reference_layer_is_copied(resnet50_reference, tmp_path):
    path = str(tmp_path / "resnet50.weights.h5")
    resnet50_reference.save_weights(path)
    copied = load_backbone_weights(build_backbone("resnet50", "none"), "resnet50", path)
    assert copied == sum(1 for layer in resnet50_reference.layers if layer.weights)


def test_offline_imagenet_download_fails_with_instructions(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- "
                        "[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.src.utils.file_utils, "get_file", offline)
    with pytest.raises(RuntimeError, match="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        load_backbone_weights(build_backbone("resnet50", "none"), "resnet50", "imagenet")


def test_missing_weights_file_is_named(tmp_path):
    missing = str(tmp_path / "nope.h5")
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        load_backbone_weights(build_backbone("resnet50", "none"), "resnet50", missing)


# Bottleneck ResNet-50 on the path to C5: conv1, 16 blocks of 3 convs and their batch norms.
RESNET50_LAYERS = 1 + 16 * 3


def c5_tolerance(scale: float) -> float:
    """Two float32 paths through ResNet-50 to C5, relative to the output's scale.

    The tests/tolerances.py rule (sqrt(n) unit roundoffs per reordered sum of up to
    3 * 3 * 512 terms, added over the layers, times its margin) with ResNet-50's depth;
    the images go in as 0-255 values minus the mean on both paths, and the one extra
    rounding of ours (x / 255 * 255) is a single unit roundoff of the input.
    """
    return (
        tolerances.MARGIN
        * math.sqrt(tolerances.LARGEST_SUM * RESNET50_LAYERS)
        * tolerances.FLOAT32_UNIT_ROUNDOFF
        * scale
    )


@pytest.fixture(scope="module")
def random_resnet50_file(tmp_path_factory):
    """A keras.applications ResNet50 with random weights and batch-norm statistics
    (ImageNet's cannot be downloaded here), and its weights file."""
    keras.utils.set_random_seed(7)
    reference = keras.applications.ResNet50(
        weights=None, include_top=False, input_shape=(None, None, 3)
    )
    rng = np.random.default_rng(7)
    for layer in reference.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            size = layer.get_weights()[0].shape
            layer.set_weights([
                rng.uniform(0.5, 1.5, size), rng.normal(0, 0.1, size),
                rng.normal(0, 0.1, size), rng.uniform(0.5, 1.5, size),
            ])
    path = str(tmp_path_factory.mktemp("weights") / "resnet50.weights.h5")
    reference.save_weights(path)
    return reference, path


@pytest.mark.parametrize("source_channels", [3, 1])
def test_with_keras_weights_our_backbone_sees_what_keras_resnet50_sees(
    random_resnet50_file, source_channels
):
    reference, path = random_resnet50_file
    config = DefectAuxNetConfig(
        backbone="resnet50", attention="none", backbone_weights=path, input_shape=(64, 96, 3)
    )
    assert config.resolved_input_normalization == "caffe"
    backbone = build_backbone(
        config.backbone, config.attention, input_normalization=config.resolved_input_normalization
    )
    load_backbone_weights(backbone, config.backbone, path)
    # A colour image whose channels differ, so that RGB fed as BGR would show.
    rng = np.random.default_rng(source_channels)
    image = rng.integers(20, 230, (64, 96, source_channels)).astype(np.uint8)
    image[..., 0] //= 2

    ours = backbone(prepare_image(image, (64, 96), 3, config.resolved_input_normalization)[None])
    rgb = np.repeat(image, 3, axis=-1) if source_channels == 1 else image
    expected = reference(keras.applications.resnet.preprocess_input(rgb[None].astype("float32")))

    expected = np.asarray(expected)
    tolerance = c5_tolerance(np.abs(expected).max())
    tolerances.assert_close(np.asarray(ours["C5"]), expected, tolerance, "C5")
    # The paper's min-max input, as before the weights chose the normalisation: far off.
    min_max_backbone = build_backbone(config.backbone, config.attention)
    load_backbone_weights(min_max_backbone, config.backbone, path)
    min_max = min_max_backbone(prepare_image(image, (64, 96), 3, "min_max")[None])["C5"]
    assert np.abs(np.asarray(min_max) - expected).max() > 100 * tolerance
