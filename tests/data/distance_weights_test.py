import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from defect_aux_net.data.distance_weights import (
    distance_transform_weights,
    euclidean_distance_transform,
)
from defect_aux_net.data.pipeline import training_inputs
from defect_aux_net.models.segdec_config import SegDecConfig

# A 3x3 block in a 5x5 image: its centre is 2 pixels from the background, the other
# 8 pixels 1. Normalised: 1 and 1/2; with w = 3, p = 2: 3 and 0.75; background 1.
BLOCK_WEIGHTS = np.ones((5, 5))
BLOCK_WEIGHTS[1:4, 1:4] = 0.75
BLOCK_WEIGHTS[2, 2] = 3.0


def scipy_distances(mask):
    """scipy's exact EDT per class, outside the image as background (padding of zeros)."""
    padded = np.pad(mask, [(1, 1), (1, 1), (0, 0)])
    return np.stack(
        [ndimage.distance_transform_edt(padded[..., k]) for k in range(mask.shape[-1])], axis=-1
    )[1:-1, 1:-1]


def reference_weights(mask, positive_weight, power):
    """The two-stage authors' weights, per class: edt / max, to the power p, times w; 1 outside."""
    distances = scipy_distances(mask)
    largest = distances.max(axis=(0, 1), keepdims=True)
    relative = np.divide(distances, largest, out=np.zeros_like(distances), where=largest > 0)
    return np.where(mask > 0, positive_weight * relative**power, 1.0)


@pytest.mark.parametrize(
    "shape, density",
    [((7, 9, 1), 0.7), ((40, 50, 3), 0.8), ((33, 17, 2), 0.95), ((16, 96, 4), 0.5)],
)
def test_distances_and_weights_match_scipy_on_random_masks(shape, density):
    mask = (np.random.default_rng(sum(shape)).random(shape) < density).astype(np.float32)
    np.testing.assert_allclose(euclidean_distance_transform(mask), scipy_distances(mask), atol=1e-5)
    for positive_weight, power in [(1.0, 1.0), (3.0, 2.0), (20.0, 0.5)]:
        np.testing.assert_allclose(
            distance_transform_weights(mask, positive_weight, power),
            reference_weights(mask, positive_weight, power),
            rtol=1e-5,
            atol=1e-5,
        )


def test_blob_and_thin_scratch_match_scipy():
    # Distances far larger than the column distances would suggest, and the reverse.
    mask = np.zeros((64, 80, 2), np.float32)
    mask[10:50, 5:45, 0] = 1.0  # a 40x40 blob: distances up to 20
    mask[2:62, 60:62, 1] = 1.0  # a 60x2 vertical scratch: distance 1 everywhere
    np.testing.assert_allclose(euclidean_distance_transform(mask), scipy_distances(mask), atol=1e-5)
    weights = distance_transform_weights(mask, 2.0, 1.0).numpy()
    np.testing.assert_allclose(weights[..., 1][mask[..., 1] > 0], 2.0)


def test_hand_computed_weights():
    mask = np.zeros((5, 5, 1), np.float32)
    mask[1:4, 1:4] = 1.0
    np.testing.assert_allclose(distance_transform_weights(mask, 3.0, 2.0)[..., 0], BLOCK_WEIGHTS)


def test_weights_of_the_dilated_masks():
    # One pixel dilated by a 3x3 kernel is the 3x3 block; undilated it weighs w = 3.
    mask = np.zeros((5, 5, 1), np.float32)
    mask[2, 2] = 1.0
    np.testing.assert_allclose(
        distance_transform_weights(mask, 3.0, 2.0, dilation=3)[..., 0], BLOCK_WEIGHTS
    )
    expected = np.ones((5, 5))
    expected[2, 2] = 3.0
    np.testing.assert_allclose(distance_transform_weights(mask, 3.0, 2.0)[..., 0], expected)


def test_the_pipeline_weighs_the_segmentation_decision_networks_dilated_masks():
    # The reference dilates its labels (DILATE) before the distance transform.
    masks = np.zeros((128, 128, 1), np.float32)
    masks[62, 62] = 1.0
    example = {
        "images": np.zeros((128, 128, 1), np.float32),
        "masks": masks,
        "labels": np.ones(1, np.float32),
        "has_mask": np.float32(1),
    }
    config = SegDecConfig.from_preset("small", dilation=3)
    _, targets, _ = training_inputs(example, config, None, (3.0, 2.0))
    np.testing.assert_allclose(targets["segmentation_weights"][60:65, 60:65, 0], BLOCK_WEIGHTS)
    np.testing.assert_array_equal(targets["segmentation"], masks)


def test_empty_class_weighs_one_everywhere():
    mask = np.zeros((6, 8, 2), np.float32)
    mask[2:4, 2:6, 1] = 1.0
    weights = distance_transform_weights(mask, 5.0, 2.0).numpy()
    np.testing.assert_array_equal(weights[..., 0], 1.0)
    assert weights[..., 1].max() == 5.0


def test_full_mask_measures_distances_to_the_border():
    # Outside the image is background: on a 4x6 full mask a pixel's distance is
    # min(y + 1, 4 - y, x + 1, 6 - x).
    mask = np.ones((4, 6, 1), np.float32)
    rows, cols = np.mgrid[0:4, 0:6]
    expected = np.minimum(np.minimum(rows + 1, 4 - rows), np.minimum(cols + 1, 6 - cols))
    np.testing.assert_allclose(euclidean_distance_transform(mask)[..., 0], expected)
    np.testing.assert_allclose(euclidean_distance_transform(mask), scipy_distances(mask))
    np.testing.assert_allclose(distance_transform_weights(mask, 1.0, 1.0)[..., 0], expected / 2.0)


def test_runs_in_tf_data_with_static_shapes():
    masks = np.zeros((3, 128, 200, 4), np.float32)
    masks[0, 20:90, 30:150, 2] = 1.0
    dataset = tf.data.Dataset.from_tensor_slices(masks).map(
        lambda mask: distance_transform_weights(mask, 1.0, 2.0)
    )
    assert dataset.element_spec == tf.TensorSpec((128, 200, 4), tf.float32)
    weights = list(dataset.as_numpy_iterator())
    np.testing.assert_allclose(weights[0], reference_weights(masks[0], 1.0, 2.0), atol=1e-5)
    np.testing.assert_array_equal(weights[1], 1.0)


def test_bad_arguments_are_named():
    mask = np.ones((4, 4, 1), np.float32)
    with pytest.raises(ValueError, match="positive_weight must be positive, got 0"):
        distance_transform_weights(mask, 0.0, 1.0)
    with pytest.raises(ValueError, match="power must be non-negative, got -1"):
        distance_transform_weights(mask, 1.0, -1.0)
    with pytest.raises(ValueError, match="dilation must be an integer >= 1, got 0"):
        distance_transform_weights(mask, 1.0, 1.0, dilation=0)
    with pytest.raises(ValueError, match=r"mask must be \[H, W, K\], got shape \(4, 4\)"):
        euclidean_distance_transform(np.ones((4, 4), np.float32))
