import keras
import numpy as np
import pytest

from defect_aux_net import DefectAuxNetConfig, build_defect_aux_net
from defect_aux_net.models.backbone import build_backbone
from defect_aux_net.models.backbone_weights import load_backbone_weights


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
