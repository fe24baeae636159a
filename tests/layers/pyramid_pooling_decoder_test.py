import keras
import numpy as np
import pytest

from defect_aux_net.layers.pyramid_pooling_decoder import (
    PyramidPoolingDecoder,
    adaptive_average_pool,
)
from tests.layers.decoder_fixtures import BN_SCALE, backbone_levels, relu
from tests.tolerances import assert_close, float32_output_tolerance

# A 5x5 map whose pixel (r, c) is 5r + c: a bin's average is 5 x its rows' mean plus its
# columns' mean.
GRID = np.arange(25, dtype="float32").reshape(1, 5, 5, 1)


@pytest.mark.parametrize(
    "bins, pixel_means",
    [
        (1, [2.0]),  # The whole side, 0..4.
        (2, [1.0, 3.0]),  # Pixels 0..2 and 2..4: 5 / 2 bins overlap at pixel 2.
        (3, [0.5, 2.0, 3.5]),  # Pixels 0..1, 1..3, 3..4.
        (5, [0.0, 1.0, 2.0, 3.0, 4.0]),  # One pixel each.
    ],
)
def test_adaptive_average_pool_averages_each_bin(bins, pixel_means):
    means = np.array(pixel_means)
    expected = (5 * means[:, None] + means[None, :])[None, :, :, None]
    assert_close(np.asarray(adaptive_average_pool(GRID, bins)), expected, 1e-6)


def test_a_side_shorter_than_the_bins_repeats_its_pixels():
    image = np.array([[1.0, 2.0], [3.0, 4.0]], "float32").reshape(1, 2, 2, 1)
    # 6 bins on 2 pixels: bins 0..2 cover pixel 0, bins 3..5 pixel 1.
    expected = image.repeat(3, axis=1).repeat(3, axis=2)
    assert_close(np.asarray(adaptive_average_pool(image, 6)), expected, 1e-6)


def test_pyramid_pooling_decoder_returns_logits_at_32_times_c5_and_keeps_its_config():
    # Saving, reloading and training are the model contract test's (each MODELS entry).
    layer = PyramidPoolingDecoder(num_classes=3, bins=(1, 2), batch_norm_momentum=0.9)
    restored = PyramidPoolingDecoder.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()
    features = backbone_levels(np.random.default_rng(0), c5_size=(2, 3), channels=(2, 3, 4, 5, 8))
    assert tuple(restored(features).shape) == (2, 64, 96, 3)
    # Each bin and the merge reduce C5's 8 channels to 8 / 4.
    assert [tuple(conv.kernel.shape) for conv in restored.bin_convs] == [(1, 1, 8, 2)] * 2
    assert tuple(restored.merge_conv.kernel.shape) == (3, 3, 8 + 2 * 2, 2)
    assert {norm.momentum for norm in [*restored.bin_norms, restored.merge_norm]} == {0.9}


def test_bad_bins_are_refused():
    with pytest.raises(ValueError, match=r"bins must be positive integers, got \(1, 0\)"):
        PyramidPoolingDecoder(num_classes=1, bins=(1, 0))


def test_pyramid_pooling_decoder_on_a_one_pixel_c5_by_hand():
    # On a 1x1 C5 every bin's average is the pixel itself, a bilinear resize of a 1x1 map
    # is constant, and a 3x3 "same" conv sees only its centre tap: with all-ones kernels
    # each map is the ReLU of its input's channel sum over sqrt(1 + epsilon).
    c5 = np.array([0.5, -0.25, 1.0, 0.75], "float32").reshape(1, 1, 1, 4)
    layer = PyramidPoolingDecoder(num_classes=1, bins=(1, 2, 3))
    layer({"C5": c5})
    for conv in [*layer.bin_convs, layer.merge_conv]:
        conv.kernel.assign(np.ones(conv.kernel.shape, "float32"))
    layer.class_conv.set_weights([np.ones((1, 1, 1, 1), "float32"), np.array([0.1], "float32")])
    total = c5.sum()  # 2.0
    bin_map = relu(total * BN_SCALE)  # Each bin: one channel (4 / 4).
    merged = relu((total + 3 * bin_map) * BN_SCALE)
    logits = np.asarray(layer({"C5": c5}, training=False))
    assert logits.shape == (1, 32, 32, 1)
    assert_close(logits, np.full((1, 32, 32, 1), merged + 0.1), float32_output_tolerance())


def bilinear_matrix(size_out, size_in):
    """`[size_out, size_in]` weights of a bilinear resize with half-pixel centres: output
    pixel y samples input position (y + 0.5) * size_in / size_out - 0.5, clamped."""
    matrix = np.zeros((size_out, size_in))
    for y in range(size_out):
        position = min(max((y + 0.5) * size_in / size_out - 0.5, 0.0), size_in - 1.0)
        low = int(np.floor(position))
        high = min(low + 1, size_in - 1)
        matrix[y, low] += 1 - (position - low)
        matrix[y, high] += position - low
    return matrix


def test_pyramid_pooling_decoder_matches_its_definition_computed_in_numpy():
    # A 4x4 C5, bins 1 and 2 (one channel each): block means, resized back bilinearly,
    # concatenated after C5, merged (centre taps only), and the logits upsampled 32x.
    rng = np.random.default_rng(0)
    c5 = rng.normal(size=(1, 4, 4, 4)).astype("float32")
    keras.utils.set_random_seed(0)  # The bin convs keep their initial weights.
    layer = PyramidPoolingDecoder(num_classes=1, bins=(1, 2))
    layer({"C5": c5})
    merge = np.zeros((3, 3, 6, 1), "float32")
    merge[1, 1] = rng.normal(size=(6, 1))
    layer.merge_conv.kernel.assign(merge)
    layer.class_conv.set_weights([np.ones((1, 1, 1, 1), "float32"), np.zeros(1, "float32")])
    maps = [c5]
    for side, conv in zip((1, 2), layer.bin_convs):
        block = 4 // side
        pooled = c5.reshape(1, side, block, side, block, 4).mean(axis=(2, 4))
        pooled = relu(pooled @ np.asarray(conv.kernel)[0, 0] * BN_SCALE)[0, :, :, 0]
        resize = bilinear_matrix(4, side)
        maps.append((resize @ pooled @ resize.T)[None, :, :, None])
    merged = relu(np.concatenate(maps, axis=-1) @ merge[1, 1] * BN_SCALE)[0, :, :, 0]
    upsample = bilinear_matrix(128, 4)
    expected = (upsample @ merged @ upsample.T)[None, :, :, None]
    assert expected.std() > 0.05, expected.std()  # Not a map the ReLUs emptied.
    assert_close(np.asarray(layer({"C5": c5}, training=False)), expected,
                 float32_output_tolerance())
