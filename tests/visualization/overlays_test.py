import numpy as np
import pytest
import tensorflow as tf

from defect_aux_net.visualization.overlays import OKABE_ITO, binary_masks, draw_overlay

ORANGE, SKY_BLUE = OKABE_ITO[0], OKABE_ITO[1]


def blended(pixel, color):
    # 60 % image + 40 % class colour, rounded to the nearest integer.
    return tuple(int(np.rint(0.6 * p + 0.4 * c)) for p, c in zip(pixel, color))


def test_masked_pixels_blend_and_unmasked_pixels_stay():
    image = np.full((8, 8, 3), (100, 50, 200), np.uint8)
    masks = np.zeros((4, 4, 1), np.float32)
    masks[:2, :2, 0] = 0.9  # Top-left 4x4 pixels of the image after the 2x resize.
    masks[3, 3, 0] = 0.4  # Below the threshold.
    overlay = np.asarray(draw_overlay(image, masks=masks))

    assert blended((100, 50, 200), ORANGE) == (152, 94, 120)
    np.testing.assert_array_equal(overlay[1, 1], (152, 94, 120))  # Inside the region.
    np.testing.assert_array_equal(overlay[0, 0], (152, 94, 120))  # Image border: no outline.
    np.testing.assert_array_equal(overlay[3, 1], ORANGE)  # Region edge: outline.
    np.testing.assert_array_equal(overlay[1, 3], ORANGE)
    np.testing.assert_array_equal(overlay[4:, :], image[4:, :])
    np.testing.assert_array_equal(overlay[:, 4:], image[:, 4:])


def test_mask_threshold_and_per_class_colours():
    image = np.zeros((6, 6, 3), np.uint8)
    masks = np.zeros((6, 6, 2), np.float32)
    masks[:, :3, 0] = 0.4
    masks[:, 3:, 1] = 0.8
    colors = [(255, 0, 0), (0, 0, 250)]
    overlay = np.asarray(draw_overlay(image, masks=masks, mask_threshold=0.3, colors=colors))
    np.testing.assert_array_equal(overlay[2, 0], (102, 0, 0))  # 0.4 * 255 = 102.
    np.testing.assert_array_equal(overlay[2, 5], (0, 0, 100))
    np.testing.assert_array_equal(overlay[2, 3], (0, 0, 250))  # Outline of class 1.

    unmasked = np.asarray(draw_overlay(image, masks=masks, mask_threshold=0.5, colors=colors))
    np.testing.assert_array_equal(unmasked[:, :3], 0)


def test_masks_resize_nearest_to_any_image_size():
    image = np.zeros((10, 15, 3), np.uint8)
    masks = np.zeros((4, 6, 1), np.float32)
    masks[:, 0, 0] = 1.0
    # Nearest: image column x samples mask column floor((x + 0.5) * 6 / 15): 0, 0, 1, ...
    expected = np.zeros((10, 15), bool)
    expected[:, :2] = True
    np.testing.assert_array_equal(binary_masks(masks, (10, 15))[..., 0], expected)

    overlay = draw_overlay(image, masks=masks)
    assert overlay.size == (15, 10)
    pixels = np.asarray(overlay)
    np.testing.assert_array_equal(pixels[5, 0], blended((0, 0, 0), ORANGE))
    np.testing.assert_array_equal(pixels[5, 1], ORANGE)  # Right edge of the region.
    np.testing.assert_array_equal(pixels[:, 2:], 0)


@pytest.mark.parametrize("size", [(40, 56), (72, 48), (13, 29), (1, 1)])
def test_binary_masks_match_tensorflow_nearest_resize(size):
    # 64 -> 40 rows puts output row 7 exactly between source rows 11 and 12.
    masks = np.random.default_rng(0).random((64, 64, 2)).astype(np.float32)
    expected = tf.image.resize(masks, size, method="nearest").numpy() >= 0.3
    np.testing.assert_array_equal(binary_masks(masks, size, threshold=0.3), expected)


def test_box_edges_at_pixel_coordinates_with_label_above():
    image = np.zeros((64, 64, 3), np.uint8)
    overlay = np.asarray(
        draw_overlay(
            image,
            boxes=[[0.5, 0.25, 0.75, 0.75]],
            scores=[0.9],
            classes=[1],
            class_names=("scratch", "crack"),
        )
    )
    # Rows 32..47, columns 16..47 (the last covered pixel is 0.75 * 64 - 1).
    for y, x in [(47, 30), (32, 30), (40, 16), (40, 47), (32, 16), (47, 47)]:
        np.testing.assert_array_equal(overlay[y, x], SKY_BLUE, err_msg=f"edge pixel {(y, x)}")
    for y, x in [(40, 30), (48, 30), (40, 15), (40, 48), (33, 17), (46, 46)]:
        np.testing.assert_array_equal(overlay[y, x], 0, err_msg=f"pixel {(y, x)}")
    # The label sits on a box of the class colour just above the box.
    label = overlay[20:32, 16:]
    assert np.all(label[-1, 0] == SKY_BLUE)
    assert np.any(np.all(label == (0, 0, 0), axis=-1))  # Black text on sky blue.
    np.testing.assert_array_equal(overlay[:32, :16], 0)


def test_label_goes_inside_a_box_at_the_top_and_names_default():
    image = np.zeros((64, 64, 3), np.uint8)
    named = np.asarray(draw_overlay(image, boxes=[[0.0, 0.0, 1.0, 1.0]], classes=[2]))
    # No room above: the label is drawn inside, from the top-left corner.
    np.testing.assert_array_equal(named[1, 1], OKABE_ITO[2])
    np.testing.assert_array_equal(named[63, 63], OKABE_ITO[2])
    np.testing.assert_array_equal(named[40, 30], 0)


def test_grey_and_float_images():
    grey = np.full((5, 7), 80, np.uint8)
    masks = np.ones((5, 7, 1), np.float32)
    overlay = draw_overlay(grey, masks=masks)
    assert overlay.mode == "RGB" and overlay.size == (7, 5)
    np.testing.assert_array_equal(np.asarray(overlay)[2, 3], blended((80, 80, 80), ORANGE))

    channel = draw_overlay(grey[..., None])
    np.testing.assert_array_equal(np.asarray(channel), np.full((5, 7, 3), 80))

    floats = draw_overlay(np.full((3, 4, 3), 0.5, np.float32))
    np.testing.assert_array_equal(np.asarray(floats), np.full((3, 4, 3), 128))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(image=np.zeros((4, 4, 4), np.uint8)), "image must be"),
        (dict(image=np.zeros((4, 4), np.uint16)), "dtype uint16"),
        (dict(masks=np.zeros((4, 4))), "masks must be"),
        (dict(boxes=np.zeros((2, 3))), "boxes must be"),
        (dict(boxes=np.zeros((2, 4)), scores=[0.5]), "scores must have one value per box"),
        (dict(boxes=np.zeros((1, 4)), classes=[-1]), "classes must be"),
        (dict(masks=np.zeros((4, 4, 1)), colors=[(0, 0)]), "colors must be"),
    ],
)
def test_bad_input_names_the_argument(kwargs, message):
    kwargs = dict(image=np.zeros((4, 4, 3), np.uint8)) | kwargs
    with pytest.raises(ValueError, match=message):
        draw_overlay(**kwargs)
