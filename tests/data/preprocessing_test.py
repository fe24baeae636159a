import numpy as np
import pytest

from defect_aux_net.data import preprocessing


def test_prepare_image_min_max_normalises_each_image():
    image = np.array([[[10], [20]], [[30], [50]]], np.uint8)  # 2x2 grey
    prepared = preprocessing.prepare_image(image, (2, 2), channels=1).numpy()
    np.testing.assert_allclose(prepared[..., 0], [[0.0, 0.25], [0.5, 1.0]], atol=1e-6)


def test_prepare_image_repeats_grey_to_three_channels():
    image = np.array([[[0], [255]]], np.uint8)
    prepared = preprocessing.prepare_image(image, (1, 2), channels=3).numpy()
    np.testing.assert_allclose(prepared, [[[0, 0, 0], [1, 1, 1]]], atol=1e-6)


def test_prepare_image_converts_rgb_to_luma_grey():
    image = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 0]]], np.float32)
    prepared = preprocessing.prepare_image(image, (1, 3), channels=1).numpy()[0, :, 0]
    # ITU-R 601 luma: red 0.2989, green 0.587, black 0; min-max then maps green to 1.
    np.testing.assert_allclose(prepared, [0.2989 / 0.587, 1.0, 0.0], atol=1e-3)


def test_prepare_image_constant_image_is_zero_not_nan():
    prepared = preprocessing.prepare_image(np.full((4, 4, 3), 7, np.uint8), (8, 8), 3)
    assert prepared.shape == (8, 8, 3)
    np.testing.assert_array_equal(prepared.numpy(), 0.0)


def test_prepare_image_for_imagenet_weights_keeps_absolute_intensities():
    # Min-max would stretch 10..50 to 0..1; ImageNet weights were trained on 0-255
    # values, so the image is only scaled (the model's first layer does the rest).
    image = np.array([[[10], [20]], [[30], [50]]], np.uint8)
    prepared = preprocessing.prepare_image(image, (2, 2), 3, normalization="caffe").numpy()
    np.testing.assert_allclose(prepared[..., 0], [[10, 20], [30, 50]] / np.float32(255), atol=1e-7)
    np.testing.assert_array_equal(prepared[..., 0], prepared[..., 2])


def test_prepare_image_rejects_unknown_normalization():
    with pytest.raises(ValueError, match="'tf'.*min_max, caffe, torch, raw"):
        preprocessing.prepare_image(np.zeros((4, 4, 3), np.uint8), (4, 4), 3, "tf")


def test_prepare_image_rejects_unsupported_channels():
    with pytest.raises(ValueError, match="4 channels"):
        preprocessing.prepare_image(np.zeros((4, 4, 4), np.uint8), (4, 4), 3)


def test_prepare_mask_resizes_nearest_and_stays_binary():
    mask = np.zeros((2, 2, 1), np.uint8)
    mask[0, 1, 0] = 1
    prepared = preprocessing.prepare_mask(mask, (4, 4)).numpy()[..., 0]
    expected = np.zeros((4, 4))
    expected[0:2, 2:4] = 1.0
    np.testing.assert_array_equal(prepared, expected)


def test_pad_boxes_scales_to_pixels_and_pads_with_minus_one():
    boxes, classes = preprocessing.pad_boxes(
        np.array([[0.0, 0.5, 0.5, 1.0]], np.float32), np.array([2]), (100, 200), max_boxes=3
    )
    np.testing.assert_allclose(boxes.numpy(), [[0, 100, 50, 200], [0, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(classes.numpy(), [2, -1, -1])


def test_pad_boxes_keeps_the_largest_when_there_are_too_many():
    normalized = np.array(
        [[0, 0, 0.1, 0.1], [0, 0, 0.5, 0.5], [0, 0, 0.2, 0.2]], np.float32
    )
    boxes, classes = preprocessing.pad_boxes(normalized, np.array([0, 1, 2]), (10, 10), 2)
    np.testing.assert_array_equal(classes.numpy(), [1, 2])
    np.testing.assert_allclose(boxes.numpy(), [[0, 0, 5, 5], [0, 0, 2, 2]])
