import numpy as np
import pytest

from defect_aux_net import DefectAuxNetConfig
from defect_aux_net.detection.anchors import anchors_for_config, generate_anchors


def test_anchors_of_one_level_by_hand():
    # Level 3 (stride 8) on a 16x8 image: 2 rows x 1 column, one scale, ratios 1 and 4.
    anchors = generate_anchors((16, 8), 3, 3, anchor_size=2.0, scales_per_octave=1,
                               aspect_ratios=(1.0, 4.0))
    # Side 2 * 8 = 16; ratio 4 (width/height) gives 8 high, 32 wide.
    np.testing.assert_allclose(
        anchors,
        [
            [4 - 8, 4 - 8, 4 + 8, 4 + 8],
            [4 - 4, 4 - 16, 4 + 4, 4 + 16],
            [12 - 8, 4 - 8, 12 + 8, 4 + 8],
            [12 - 4, 4 - 16, 12 + 4, 4 + 16],
        ],
    )


def test_anchor_count_and_scales_per_level():
    anchors = generate_anchors((128, 256), 3, 7)
    per_location = 9
    expected = sum((128 // 2**l) * (256 // 2**l) * per_location for l in range(3, 8))
    assert anchors.shape == (expected, 4)
    # The first anchors of level 3: side 32 * 2^(i/3), ratio 1 at index 1, 4, 7.
    heights = anchors[:9, 2] - anchors[:9, 0]
    widths = anchors[:9, 3] - anchors[:9, 1]
    np.testing.assert_allclose(heights * widths, np.repeat(32.0**2 * 2 ** (2 * np.arange(3) / 3), 3),
                               rtol=1e-5)


def test_anchors_follow_padded_size():
    config = DefectAuxNetConfig(input_shape=(600, 600, 3))
    assert config.padded_size == (640, 640)
    anchors = anchors_for_config(config)
    assert anchors.shape[0] == 9 * sum((640 // 2**l) ** 2 for l in range(3, 8))


def test_image_size_must_divide():
    with pytest.raises(ValueError, match="multiple of 2\\*\\*max_level"):
        generate_anchors((100, 128), 3, 7)
