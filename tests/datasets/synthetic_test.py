"""Tests of the procedural defect generator (no TFDS involved)."""

import numpy as np
import pytest
import scipy.ndimage

from defect_aux_net.datasets import synthetic
from defect_aux_net.datasets.annotations import boxes_from_mask


@pytest.fixture(scope="module")
def first_examples():
    """The first 60 training examples of the default spec (about half a second)."""
    return [synthetic.generate_example(index) for index in range(60)]


def test_same_seed_split_and_index_give_identical_examples_in_any_order():
    before = synthetic.generate_example(5, "train")
    for index in (9, 0, 3):
        synthetic.generate_example(index, "train")
    after = synthetic.generate_example(5, "train")

    np.testing.assert_array_equal(before["image"], after["image"])
    np.testing.assert_array_equal(before["segmentation_mask"], after["segmentation_mask"])
    np.testing.assert_array_equal(before["objects"]["bbox"], after["objects"]["bbox"])


def test_split_and_seed_change_the_example():
    train = synthetic.generate_example(4, "train")
    test = synthetic.generate_example(4, "test")
    reseeded = synthetic.generate_example(4, "train", synthetic.SyntheticSpec(seed=1))

    assert not np.array_equal(train["image"], test["image"])
    assert not np.array_equal(train["image"], reseeded["image"])
    assert test["image_id"] == "test_000004"


@pytest.mark.parametrize(
    "fraction, expected", [(0.0, 0), (0.3, 9), (0.5, 15), (0.9, 27), (1.0, 30)]
)
def test_defect_free_count_matches_the_fraction(fraction, expected):
    spec = synthetic.SyntheticSpec(height=32, width=32, defect_free_fraction=fraction)
    examples = [synthetic.generate_example(index, "validation", spec) for index in range(30)]

    defect_free = [example for example in examples if not example["is_defective"]]
    assert len(defect_free) == expected
    for example in defect_free:
        assert not example["segmentation_mask"].any() and not example["labels"].any()
        assert example["objects"]["bbox"].shape == (0, 4)


def test_boxes_and_labels_are_those_of_the_mask(first_examples):
    for example in first_examples:
        bboxes, labels = boxes_from_mask(example["segmentation_mask"])
        np.testing.assert_array_equal(example["objects"]["bbox"], bboxes)
        np.testing.assert_array_equal(example["objects"]["label"], labels)
        np.testing.assert_array_equal(
            example["labels"], example["segmentation_mask"].any(axis=(0, 1))
        )
        assert example["is_defective"] == bool(example["labels"].any())


def test_masks_are_binary_small_and_non_empty_on_defective_images(first_examples):
    defective = [example for example in first_examples if example["is_defective"]]

    assert len(defective) == 30  # default fraction 0.5
    for example in defective:
        mask = example["segmentation_mask"]
        assert set(np.unique(mask)) <= {0, 1}
        for class_index in np.flatnonzero(example["labels"]):
            assert mask[..., class_index].sum() >= 2  # not a lone stray pixel
        assert mask.any(axis=-1).mean() < 0.25  # defects are local, never the whole image


def test_every_class_appears_and_classes_can_share_an_image(first_examples):
    labels = np.stack([example["labels"] for example in first_examples])

    assert labels.sum(axis=0).min() >= 3
    assert (labels.sum(axis=1) >= 2).any()


def test_defects_have_low_contrast_against_the_texture(first_examples):
    """Defects must be subtle: their mean shift is at most a few texture deviations."""
    for example in first_examples:
        image = example["image"][..., 0].astype(np.float64)
        background = image[~example["segmentation_mask"].any(axis=-1)]
        assert background.std() > 4.0  # a textured, not a flat, surface
        for class_index in np.flatnonzero(example["labels"]):
            defect = image[example["segmentation_mask"][..., class_index] > 0]
            assert abs(defect.mean() - background.mean()) < 5.0 * background.std()


def test_images_have_the_spec_shape_and_dtype():
    grey = synthetic.generate_example(1)
    rgb_spec = synthetic.SyntheticSpec(height=48, width=80, channels=3)
    rgb = synthetic.generate_example(1, spec=rgb_spec)

    assert grey["image"].shape == (128, 128, 1) and grey["image"].dtype == np.uint8
    assert grey["segmentation_mask"].shape == (128, 128, len(synthetic.CLASS_NAMES))
    assert rgb["image"].shape == (48, 80, 3)
    # The colour cast makes the channels differ.
    assert not np.array_equal(rgb["image"][..., 0], rgb["image"][..., 1])


def test_defect_contrast_strengthens_defects_only():
    stronger = synthetic.SyntheticSpec(defect_contrast=3.0)
    for index in (0, 2, 4, 6):
        plain = synthetic.generate_example(index, "train")
        strong = synthetic.generate_example(index, "train", stronger)
        mask = plain["segmentation_mask"].any(axis=-1)
        np.testing.assert_array_equal(plain["segmentation_mask"], strong["segmentation_mask"])
        np.testing.assert_array_equal(plain["objects"]["bbox"], strong["objects"]["bbox"])
        # Soft edges reach a pixel past the mask and pit rims a few more; the rest
        # of the surface, distractors included, does not change.
        distance_to_defects = scipy.ndimage.distance_transform_edt(~mask)
        changed = plain["image"][..., 0] != strong["image"][..., 0]
        assert changed.any() and distance_to_defects[changed].max() <= 8
        near_defects = distance_to_defects <= 3
        # Defect pixels lie about 3x as far from the surrounding surface's mean (less
        # where the texture's own spread, which does not grow, dominates).
        ring = (distance_to_defects <= 6) & ~near_defects

        def contrast(image):
            pixels = image[..., 0].astype(np.float64)
            return np.abs(pixels[mask] - pixels[ring].mean()).mean()

        assert contrast(strong["image"]) > 2.2 * contrast(plain["image"])


def test_default_contrast_and_thickness_keep_the_images():
    spec = synthetic.SyntheticSpec(defect_contrast=1.0, defect_thickness=1.0)
    for index in (0, 1, 2):  # Odd indices are defect-free.
        explicit = synthetic.generate_example(index, "train", spec)
        np.testing.assert_array_equal(explicit["image"], synthetic.generate_example(index)["image"])


def test_defect_thickness_widens_the_thin_defects():
    thicker = synthetic.SyntheticSpec(defect_thickness=2.0)
    areas = {name: [0, 0] for name in synthetic.CLASS_NAMES}
    for index in range(0, 60, 2):  # Even indices have defects.
        for column, spec in enumerate((synthetic.SyntheticSpec(), thicker)):
            mask = synthetic.generate_example(index, "train", spec)["segmentation_mask"]
            for name, class_mask in zip(synthetic.CLASS_NAMES, np.moveaxis(mask, -1, 0)):
                areas[name][column] += int(class_mask.sum())
    # Twice the stroke width at least doubles a line's area (more for one-pixel
    # cracks, whose masks then reach the neighbouring pixels); twice the radius
    # quadruples a pit's (less where pits of a cluster merge).
    assert areas["scratch"][1] / areas["scratch"][0] > 1.8
    assert areas["crack"][1] / areas["crack"][0] > 1.8
    assert areas["pit"][1] / areas["pit"][0] > 3.0
    assert areas["blotch"][1] >= areas["blotch"][0]


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"height": 16}, "at least 32x32, got 16x128"),
        ({"channels": 2}, "channels must be 1 or 3, got 2"),
        ({"defect_free_fraction": 1.5}, r"in \[0, 1\], got 1.5"),
        ({"defect_contrast": 0.0}, "defect_contrast must be > 0, got 0.0"),
        ({"defect_thickness": -1.0}, "defect_thickness must be > 0, got -1.0"),
    ],
)
def test_bad_specs_are_rejected(arguments, message):
    with pytest.raises(ValueError, match=message):
        synthetic.SyntheticSpec(**arguments)


def test_negative_index_is_rejected():
    with pytest.raises(ValueError, match="non-negative, got -1"):
        synthetic.generate_example(-1)
