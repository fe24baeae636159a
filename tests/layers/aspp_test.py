import numpy as np

from defect_aux_net.layers.aspp import ASPP
from tests import tolerances
from tests.layer_harness import check_layer

# Branch order: 1x1, one per rate, image pooling.
RATES = (2, 3)


def _aspp_with_one_branch(input_channels, channels, branch, branch_kernel):
    """An ASPP whose output is `branch` alone: every other kernel zero, the projection
    passes that branch's channels through. Batch norms keep their initial statistics
    (mean 0, variance 1), so each divides by sqrt(1 + epsilon) at inference."""
    aspp = ASPP(RATES, channels)
    aspp.build((None, None, None, input_channels))
    for conv in aspp.branch_convs:
        conv.kernel.assign(np.zeros(conv.kernel.shape, np.float32))
    aspp.branch_convs[branch].kernel.assign(branch_kernel)
    projection = np.zeros(aspp.projection_conv.kernel.shape, np.float32)
    projection[0, 0, branch * channels : (branch + 1) * channels] = np.eye(channels)
    aspp.projection_conv.kernel.assign(projection)
    norm_scale = 1.0 / (1.0 + aspp.projection_norm.epsilon)  # Two norms on the path.
    return aspp, norm_scale


def test_layer_harness(tmp_path):
    features = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype(np.float32)
    check_layer(lambda: ASPP(RATES, 4), features, tmp_path, (2, 6, 6, 4))


def test_atrous_branch_puts_its_taps_rate_pixels_apart_by_hand():
    # A delta at the centre of an 11x11 image through a 3x3 kernel of ones dilated by 3:
    # ones at the centre and 3 pixels away along each axis and diagonal.
    delta = np.zeros((1, 11, 11, 1), np.float32)
    delta[0, 5, 5, 0] = 1.0
    rate_index = 1 + RATES.index(3)
    aspp, scale = _aspp_with_one_branch(1, 1, rate_index, np.ones((3, 3, 1, 1), np.float32))
    expected = np.zeros((11, 11), np.float32)
    for row in (2, 5, 8):
        for column in (2, 5, 8):
            expected[row, column] = scale
    output = np.asarray(aspp(delta, training=False))[0, ..., 0]
    tolerances.assert_close(output, expected, 4 * tolerances.FLOAT32_UNIT_ROUNDOFF)


def test_image_pooling_branch_is_the_broadcast_mean_by_hand():
    features = np.random.default_rng(1).uniform(0, 1, (2, 4, 5, 2)).astype(np.float32)
    pooling_index = 1 + len(RATES)
    identity = np.eye(2, dtype=np.float32).reshape(1, 1, 2, 2)
    aspp, scale = _aspp_with_one_branch(2, 2, pooling_index, identity)
    means = features.mean(axis=(1, 2), keepdims=True)
    expected = np.broadcast_to(means * scale, (2, 4, 5, 2))
    output = np.asarray(aspp(features, training=False))
    # A mean of 20 values in [0, 1] rounds about sqrt(20) times at unit scale.
    tolerances.assert_close(output, expected, 4 * np.sqrt(20) * tolerances.FLOAT32_UNIT_ROUNDOFF)


def test_one_by_one_branch_and_concatenation_order_by_hand():
    # The 1x1 branch with kernel [[1, -1]]: relu(x0 - x1) per pixel, the first branch.
    features = np.random.default_rng(2).normal(size=(1, 3, 3, 2)).astype(np.float32)
    aspp, scale = _aspp_with_one_branch(2, 1, 0, np.array([1, -1], np.float32).reshape(1, 1, 2, 1))
    expected = np.maximum(features[..., 0] - features[..., 1], 0) * scale
    output = np.asarray(aspp(features, training=False))[..., 0]
    tolerances.assert_close(output, expected, 8 * tolerances.FLOAT32_UNIT_ROUNDOFF)
