import keras
import numpy as np

from defect_aux_net.layers.linknet_decoder import LinkNetDecoder
from tests.layers.decoder_fixtures import BN_SCALE, backbone_levels, relu
from tests.tolerances import assert_close, float32_output_tolerance


def test_linknet_decoder_returns_logits_at_32_times_c5_and_keeps_its_config():
    # Saving, reloading and training are the model contract test's (each MODELS entry).
    layer = LinkNetDecoder(num_classes=3, channels=2, batch_norm_momentum=0.9)
    restored = LinkNetDecoder.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()
    features = backbone_levels(np.random.default_rng(0))
    assert tuple(restored(features).shape) == (2, 32, 64, 3)
    assert {norm.momentum for norm in restored.norms} == {0.9}


def test_each_block_reduces_to_a_quarter_upsamples_and_expands_to_its_skip():
    layer = LinkNetDecoder(num_classes=3, channels=2)
    # C1..C5 with 4, 8, 12, 16, 20 channels.
    layer(backbone_levels(np.random.default_rng(0), channels=(4, 8, 12, 16, 20)))
    kernels = [tuple(conv.kernel.shape) for conv in layer.convs]
    # Conv2DTranspose kernels are (3, 3, out, in).
    assert kernels == [
        (1, 1, 20, 5), (3, 3, 5, 5), (1, 1, 5, 16),  # C5 -> stride 16, + C4.
        (1, 1, 16, 4), (3, 3, 4, 4), (1, 1, 4, 12),  # -> stride 8, + C3.
        (1, 1, 12, 3), (3, 3, 3, 3), (1, 1, 3, 8),  # -> stride 4, + C2.
        (1, 1, 8, 2), (3, 3, 2, 2), (1, 1, 2, 4),  # -> stride 2, + C1.
        (1, 1, 4, 1), (3, 3, 1, 1), (1, 1, 1, 2),  # -> stride 1, no skip: `channels`.
    ]
    assert [conv.strides for conv in layer.convs[1::3]] == [(2, 2)] * 5


def transposed_conv_same_stride_2(x, kernel):
    """3x3 transposed conv, stride 2, "same": the gradient of a stride-2 "same" conv,
    whose one pixel of padding goes after the image, so input pixel i spreads its
    kernel's taps k = 0, 1, 2 onto output pixels 2i + k, and outputs past 2n drop."""
    batch, height, width, _ = x.shape
    out = np.zeros((batch, 2 * height + 1, 2 * width + 1, kernel.shape[2]), "float64")
    for i in range(height):
        for j in range(width):
            for ky in range(3):
                for kx in range(3):
                    out[:, 2 * i + ky, 2 * j + kx] += x[:, i, j] @ kernel[ky, kx].T
    return out[:, : 2 * height, : 2 * width]


def test_linknet_decoder_matches_its_definition_computed_in_numpy():
    # Seeded: with 2 channels, some initial weights let the ReLUs empty the map (seed 3
    # of 0-5 did), and the comparison would then check nothing.
    keras.utils.set_random_seed(1)
    features = backbone_levels(np.random.default_rng(1), channels=(4, 4, 8, 8, 16))
    layer = LinkNetDecoder(num_classes=2, channels=2)
    layer(features)
    x = features["C5"]
    for block, skip in enumerate(("C4", "C3", "C2", "C1", None)):
        reduce, up, expand = (
            np.asarray(conv.kernel) for conv in layer.convs[3 * block : 3 * block + 3]
        )
        x = relu(x @ reduce[0, 0] * BN_SCALE)
        x = relu(transposed_conv_same_stride_2(x, up) * BN_SCALE)
        x = relu(x @ expand[0, 0] * BN_SCALE)
        if skip is not None:
            x = x + features[skip]
    kernel, bias = layer.class_conv.get_weights()
    expected = x @ kernel[0, 0] + bias
    assert expected.std() > 0.05, expected.std()  # Not a map the ReLUs emptied.
    assert_close(np.asarray(layer(features, training=False)), expected,
                 float32_output_tolerance())
