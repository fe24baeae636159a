import numpy as np
import pytest
import tensorflow_datasets as tfds

from defect_aux_net.config import DefectAuxNetConfig
from defect_aux_net.data.mixed_supervision import segmented_image_ids
from defect_aux_net.data.pipeline import InputOptions, make_dataset

from .synthetic_fixture import synthetic_small_builder

CONFIG = DefectAuxNetConfig.from_preset("small", input_shape=(64, 64, 3))
SPLIT = "validation[:40]"  # few images: decoding is the cost


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    return synthetic_small_builder(tmp_path_factory)


@pytest.fixture(scope="module")
def stored(builder):
    """(image_id, is_defective, has_mask) of the split's examples, in file order."""
    return [
        (example["image_id"].decode(), bool(example["is_defective"]), bool(example["has_mask"]))
        for example in tfds.as_numpy(builder.as_dataset(split=SPLIT, shuffle_files=False))
    ]


def test_the_chosen_share_of_defective_images_is_seeded_and_nested(builder, stored):
    candidates = {image_id for image_id, defective, has_mask in stored if defective and has_mask}
    assert len(candidates) > 8  # enough to choose from
    quarter = segmented_image_ids(builder, SPLIT, 0.25, seed=0)
    assert quarter <= candidates
    assert len(quarter) == int(0.25 * len(candidates) + 0.5)
    assert segmented_image_ids(builder, SPLIT, 0.25, seed=0) == quarter
    assert segmented_image_ids(builder, SPLIT, 0.25, seed=1) != quarter
    assert quarter <= segmented_image_ids(builder, SPLIT, 0.5, seed=0)
    assert segmented_image_ids(builder, SPLIT, 1.0, seed=0) == candidates
    assert segmented_image_ids(builder, SPLIT, 0.0, seed=0) == frozenset()


def test_only_the_chosen_defective_images_keep_their_masks(builder, stored):
    chosen = segmented_image_ids(builder, SPLIT, 0.25, seed=3)
    options = InputOptions(
        len(stored), training=False, seed=3, ground_truth=True, segmentation_label_fraction=0.25
    )
    _, truth = next(iter(make_dataset(builder, SPLIT, CONFIG, options)))
    # Read in file order (evaluation reads do not shuffle), as `stored`.
    expected = [
        has_mask and (not defective or image_id in chosen)
        for image_id, defective, has_mask in stored
    ]
    np.testing.assert_array_equal(truth["has_mask"], expected)
    assert sum(expected) < sum(has_mask for _, _, has_mask in stored)
    masks = np.asarray(truth["masks"])
    label_only = ~np.asarray(expected) & np.array([defective for _, defective, _ in stored])
    assert masks[label_only].max() == 0  # The dropped masks reach no loss.
    assert masks[~label_only & np.asarray(expected)].max() == 1
    # Image labels stay: the decision / classification loss still trains on them.
    assert np.asarray(truth["labels"])[label_only].max(axis=1).min() == 1
