import math

import numpy as np
import pytest
import tensorflow as tf

from defect_aux_net.data.weighted_augmentation import (
    OPERATIONS,
    WeightedAugmenter,
    augmentation_probability,
    check_operation_weights,
    class_proportions,
)

# Binomial counts within this many standard deviations (a miss about once in 10^5 seeds).
SIGMAS = 4.5
CROP, FLIP, ROTATION = (
    OPERATIONS.index(name) for name in ("random_crop", "vertical_flip", "rotation")
)


def example(height=8, width=10, box=(1, 2, 4, 5), labels=(1.0, 0.0), seed=0):
    """A random image, a random two-class mask, its first class's box, a padding row."""
    rng = np.random.default_rng(seed)
    masks = (rng.random((height, width, 2)) < 0.3).astype(np.float32)
    return {
        "images": rng.random((height, width, 3)).astype(np.float32),
        "segmentation_masks": masks,
        "bounding_boxes": {
            "boxes": np.array([box, (0, 0, 0, 0)], np.float32),
            "labels": np.array([0, -1], np.int32),
        },
        "labels": np.array(labels, np.float32),
    }


def augmented(augmenter, data, count, parallel=False):
    """The first `count` examples of `data` repeated, augmented at indices 0.."""
    dataset = tf.data.Dataset.from_tensors(data).repeat(count).enumerate()
    if parallel:
        dataset = dataset.map(augmenter, num_parallel_calls=4, deterministic=True)
    else:
        dataset = dataset.map(augmenter)
    return list(dataset.as_numpy_iterator())


def test_proportions_and_probabilities_of_a_tiny_label_set():
    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0], [1, 0, 1]])
    proportions = class_proportions(labels.sum(axis=0))  # counts 3, 2, 1 of 6
    np.testing.assert_allclose(proportions, [1 / 2, 1 / 3, 1 / 6], rtol=1e-6)
    # The rarest class of each image sets 1 - p; defect-free images are not augmented.
    expected = [1 / 2, 2 / 3, 2 / 3, 0.0, 5 / 6]
    actual = [float(augmentation_probability(row, proportions)) for row in labels]
    np.testing.assert_allclose(actual, expected, rtol=1e-6)


def test_operation_frequencies_match_the_weights():
    # p = 1/4 for the image's class: augmented with probability 3/4, then W = 1:2:5.
    augmenter = WeightedAugmenter(7, [0.25, 0.75], operation_weights=(1, 2, 5))
    count = 4000
    labels = tf.constant([1.0, 0.0])
    choices = (
        tf.data.Dataset.range(count)
        .map(lambda index: augmenter.operation_index(index, labels))
        .batch(count)
        .get_single_element()
        .numpy()
    )
    for choice, probability in ((-1, 1 / 4), (CROP, 3 / 32), (FLIP, 6 / 32), (ROTATION, 15 / 32)):
        expected = count * probability
        tolerance = SIGMAS * math.sqrt(count * probability * (1 - probability))
        assert abs(np.sum(choices == choice) - expected) <= tolerance, choice


def test_defect_free_images_are_left_as_they_are():
    data = example(labels=(0.0, 0.0))
    for out in augmented(WeightedAugmenter(0, [0.5, 0.5]), data, 6):
        np.testing.assert_array_equal(out["images"], data["images"])
        np.testing.assert_array_equal(out["segmentation_masks"], data["segmentation_masks"])


def test_vertical_flip_moves_image_mask_and_box_together():
    # p = 0 for the image's class: always augmented; only the flip has weight.
    data = example()
    augmenter = WeightedAugmenter(0, [0.0, 1.0], operation_weights=(0, 1, 0))
    for out in augmented(augmenter, data, 3):
        np.testing.assert_array_equal(out["images"], data["images"][::-1])
        np.testing.assert_array_equal(out["segmentation_masks"], data["segmentation_masks"][::-1])
        # Rows 1-3 of 8 become rows 4-6: y -> 8 - y. The padding row stays padding.
        np.testing.assert_array_equal(out["bounding_boxes"]["boxes"], [[4, 2, 7, 5], [0] * 4])
        np.testing.assert_array_equal(out["bounding_boxes"]["labels"], [0, -1])


def upsample_2x(values, axis):
    """Bilinear 2x with half-pixel centres by hand: output 2i and 2i + 1 are 3/4 of
    input i and 1/4 of its neighbour before or after (the edge pixel repeated)."""
    values = np.moveaxis(values, axis, 0)
    before = np.concatenate([values[:1], values[:-1]])
    after = np.concatenate([values[1:], values[-1:]])
    out = np.empty((2 * len(values),) + values.shape[1:], values.dtype)
    out[0::2] = 0.75 * values + 0.25 * before
    out[1::2] = 0.75 * values + 0.25 * after
    return np.moveaxis(out, 0, axis)


def test_random_crop_moves_image_mask_and_box_together():
    # Half of 8x10 is a 4x5 window, resized 2x back; masks nearest (each pixel doubled).
    data = example()
    augmenter = WeightedAugmenter(0, [0.0, 1.0], operation_weights=(1, 0, 0))
    offsets = set()
    for out in augmented(augmenter, data, 12):
        windows = [
            (top, left)
            for top in range(5)
            for left in range(6)
            if np.array_equal(
                out["segmentation_masks"],
                data["segmentation_masks"][top : top + 4, left : left + 5]
                .repeat(2, axis=0)
                .repeat(2, axis=1),
            )
        ]
        assert windows, "the mask is not a window of the mask, doubled"
        top, left = windows[0]
        offsets.add((top, left))
        window = data["images"][top : top + 4, left : left + 5]
        np.testing.assert_allclose(
            out["images"], upsample_2x(upsample_2x(window, 0), 1), atol=1e-6
        )
        # Box rows 1-3, columns 2-4: edges move by -offset, times 2, clipped to 8x10.
        y0, x0, y1, x1 = 1, 2, 4, 5
        box = np.clip([(y0 - top) * 2, (x0 - left) * 2, (y1 - top) * 2, (x1 - left) * 2],
                      0, [8, 10, 8, 10])
        if min(box[2] - box[0], box[3] - box[1]) > 0:
            np.testing.assert_allclose(out["bounding_boxes"]["boxes"][0], box)
            assert out["bounding_boxes"]["labels"][0] == 0
        else:  # The window missed the box: it is dropped.
            assert out["bounding_boxes"]["labels"][0] == -1
    assert len(offsets) > 1  # The window moves.


def test_rotation_box_encloses_the_rotated_mask():
    # A filled square rotated by any angle: the box is the box around the rotated
    # square's corners, so it holds the rotated mask snugly.
    data = example(height=32, width=32, box=(10, 12, 20, 22))
    data["segmentation_masks"] = np.zeros((32, 32, 2), np.float32)
    data["segmentation_masks"][10:20, 12:22, 0] = 1
    augmenter = WeightedAugmenter(0, [0.0, 1.0], operation_weights=(0, 0, 1))
    rotated = 0
    for out in augmented(augmenter, data, 6):
        rows, cols = np.nonzero(out["segmentation_masks"][..., 0])
        extent = np.array([rows.min(), cols.min(), rows.max() + 1, cols.max() + 1])
        box = out["bounding_boxes"]["boxes"][0]
        # The box holds the mask: pixels whose centres fall in the rotated square, each
        # reaching half a pixel beyond its centre.
        assert (box[:2] <= extent[:2] + 0.5).all() and (box[2:] >= extent[2:] - 0.5).all()
        # And is tight: a 90-degree corner holds a disc of radius sqrt(2)/2 (which holds
        # a pixel centre) 1 pixel from its tip, and that pixel reaches half a pixel
        # further: each side within 1 + sqrt(2)/2 - 1/2 of the mask's extent.
        np.testing.assert_allclose(box, extent, atol=0.5 + math.sqrt(2) / 2 + 1e-4)
        rotated += not np.array_equal(out["segmentation_masks"], data["segmentation_masks"])
    assert rotated == 6


def test_same_seed_same_examples_in_every_pass_and_in_parallel():
    data = example(labels=(1.0, 1.0))
    first = augmented(WeightedAugmenter(3, [0.2, 0.8]), data, 8)
    again = augmented(WeightedAugmenter(3, [0.2, 0.8]), data, 8, parallel=True)
    other = augmented(WeightedAugmenter(4, [0.2, 0.8]), data, 8)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a["images"], b["images"])
        np.testing.assert_array_equal(a["segmentation_masks"], b["segmentation_masks"])
        np.testing.assert_array_equal(a["bounding_boxes"]["boxes"], b["bounding_boxes"]["boxes"])
    assert any(not np.array_equal(a["images"], b["images"]) for a, b in zip(first, other))


def test_bad_values_are_named():
    with pytest.raises(ValueError, match="at least one defect"):
        class_proportions([0, 0])
    with pytest.raises(ValueError, match="operation weights"):
        check_operation_weights((1, -1, 1))
    with pytest.raises(ValueError, match="operation weights"):
        check_operation_weights((1, 1))
    with pytest.raises(ValueError, match="crop_fraction"):
        WeightedAugmenter(0, [1.0], crop_fraction=0.0)
    with pytest.raises(ValueError, match="'labels'"):
        WeightedAugmenter(0, [1.0])(0, {"images": tf.zeros((2, 2, 1))})
