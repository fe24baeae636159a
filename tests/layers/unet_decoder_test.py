import numpy as np

from defect_aux_net.layers.unet_decoder import UNetDecoder
from tests.layers.decoder_fixtures import (
    BN_SCALE,
    backbone_levels,
    centre_taps_only,
    relu,
    upsample_nearest,
)
from tests.tolerances import assert_close, float32_output_tolerance


def test_unet_decoder_returns_logits_at_32_times_c5_and_keeps_its_config():
    # Saving, reloading and training are the model contract test's (each MODELS entry).
    layer = UNetDecoder(num_classes=3, channels=2, batch_norm_momentum=0.9)
    restored = UNetDecoder.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()
    assert {norm.momentum for norm in restored.norms} == {0.9}
    features = backbone_levels(np.random.default_rng(0))
    assert tuple(restored(features).shape) == (2, 32, 64, 3)


def test_each_stage_concatenates_its_level_and_doubles_the_filters_of_the_next():
    layer = UNetDecoder(num_classes=3, channels=2)
    layer(backbone_levels(np.random.default_rng(0)))  # C1..C5: 2, 3, 4, 5, 6 channels.
    kernels = [tuple(conv.kernel.shape) for conv in layer.convs]
    assert kernels == [
        (3, 3, 6 + 5, 32), (3, 3, 32, 32),  # C5 upsampled + C4, at stride 16.
        (3, 3, 32 + 4, 16), (3, 3, 16, 16),  # + C3, stride 8.
        (3, 3, 16 + 3, 8), (3, 3, 8, 8),  # + C2, stride 4.
        (3, 3, 8 + 2, 4), (3, 3, 4, 4),  # + C1, stride 2.
        (3, 3, 4, 2), (3, 3, 2, 2),  # no skip, stride 1.
    ]
    assert tuple(layer.class_conv.kernel.shape) == (1, 1, 2, 3)


def test_unet_decoder_matches_its_definition_computed_in_numpy():
    rng = np.random.default_rng(1)
    features = backbone_levels(rng)
    layer = UNetDecoder(num_classes=2, channels=1)
    layer(features)
    centres = [centre_taps_only(conv, rng) for conv in layer.convs]
    class_kernel = rng.normal(size=(1, 1, 1, 2)).astype("float32")
    layer.class_conv.set_weights([class_kernel, np.array([0.5, -0.5], "float32")])

    x = features["C5"]
    for stage, skip in enumerate(("C4", "C3", "C2", "C1", None)):
        x = upsample_nearest(x)
        if skip is not None:
            x = np.concatenate([x, features[skip]], axis=-1)
        for centre in centres[2 * stage : 2 * stage + 2]:
            x = relu(x @ centre * BN_SCALE)
    expected = x @ class_kernel[0, 0] + np.array([0.5, -0.5])
    assert expected.std() > 0.05, expected.std()  # Not a map the ReLUs emptied.
    assert_close(np.asarray(layer(features, training=False)), expected,
                 float32_output_tolerance())
