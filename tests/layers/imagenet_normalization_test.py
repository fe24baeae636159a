import keras
import numpy as np
import pytest

from defect_aux_net.layers.imagenet_normalization import ImageNetNormalization
from tests import tolerances
from tests.layer_harness import check_layer


def test_caffe_mode_is_bgr_minus_the_imagenet_mean_by_hand():
    # One pixel, RGB (255, 0, 51) in [0, 1]: BGR (51, 0, 255) minus (103.939, 116.779, 123.68).
    pixel = np.array([[[[1.0, 0.0, 0.2]]]], np.float32)
    np.testing.assert_allclose(
        np.asarray(ImageNetNormalization("caffe")(pixel))[0, 0, 0],
        [51 - 103.939, 0 - 116.779, 255 - 123.68],
        atol=1e-4,
    )


def test_caffe_mode_equals_keras_resnet_preprocess_input_of_0_255_images():
    images = np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3)).astype(np.float32)
    expected = keras.applications.resnet.preprocess_input(images.copy())
    ours = np.asarray(ImageNetNormalization("caffe")(images / 255.0))
    # x / 255 * 255 rounds twice at the scale of 255.
    tolerances.assert_close(ours, expected, 2 * 255 * tolerances.FLOAT32_UNIT_ROUNDOFF)


def test_torch_mode_equals_keras_densenet_preprocess_input_of_0_255_images():
    images = np.random.default_rng(2).integers(0, 256, (2, 5, 7, 3)).astype(np.float32)
    expected = keras.applications.densenet.preprocess_input(images.copy())
    ours = np.asarray(ImageNetNormalization("torch")(images / 255.0))
    # Both round x / 255 and the mean subtraction at unit scale (four roundoffs), and
    # the division by std >= 0.224 magnifies them.
    tolerances.assert_close(ours, expected, 4 * tolerances.FLOAT32_UNIT_ROUNDOFF / 0.224)


def test_torch_mode_by_hand_and_raw_mode_gives_0_255_pixels():
    # RGB (255, 0, 51): ((1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (0.2 - 0.406) / 0.225).
    pixel = np.array([[[[1.0, 0.0, 0.2]]]], np.float32)
    np.testing.assert_allclose(
        np.asarray(ImageNetNormalization("torch")(pixel))[0, 0, 0],
        [0.515 / 0.229, -0.456 / 0.224, -0.206 / 0.225],
        rtol=1e-5,
    )
    # keras.applications.efficientnet.preprocess_input passes 0-255 pixels through.
    np.testing.assert_allclose(
        np.asarray(ImageNetNormalization("raw")(pixel))[0, 0, 0], [255.0, 0.0, 51.0], rtol=1e-6
    )


def test_layer_harness(tmp_path):
    images = np.random.default_rng(1).uniform(0, 1, (2, 4, 4, 3)).astype(np.float32)
    check_layer(lambda: ImageNetNormalization("caffe"), images, tmp_path, (2, 4, 4, 3))


def test_float32_under_a_mixed_policy_and_unknown_modes_are_named():
    assert ImageNetNormalization("caffe", dtype="mixed_bfloat16").compute_dtype == "float32"
    with pytest.raises(ValueError, match="'tf'.*caffe, torch, raw"):
        ImageNetNormalization("tf")

