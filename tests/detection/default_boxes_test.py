import numpy as np

from defect_aux_net.detection.default_boxes import (
    boxes_per_location,
    default_box_scales,
    feature_map_sizes,
    generate_default_boxes,
)


def test_six_maps_have_ssds_scales_from_0_2_to_0_9_and_1_after_them():
    np.testing.assert_allclose(
        default_box_scales(6, 0.2, 0.9), [0.2, 0.34, 0.48, 0.62, 0.76, 0.9, 1.0]
    )


def test_a_two_map_toy_config_has_the_hand_computed_boxes():
    # 100x200 image (the shorter side, 100, sizes the boxes); maps of 2x4 and 1x2
    # cells; scales 0.2, 0.9 and 1 after them; ratios 1 (with its extra box) and 2.
    boxes = generate_default_boxes((100, 200), [(2, 4), (1, 2)], 0.2, 0.9, (1.0, 2.0))
    assert boxes.shape == (2 * 4 * 3 + 1 * 2 * 3, 4)
    # First map, cell (0, 0), centre (25, 25): a 20-pixel square; the extra square of
    # side sqrt(0.2 * 0.9) * 100 = 42.4264; ratio 2: 20 / sqrt(2) high, 20 * sqrt(2) wide.
    np.testing.assert_allclose(
        boxes[:3],
        [[15, 15, 35, 35],
         [25 - 21.2132, 25 - 21.2132, 25 + 21.2132, 25 + 21.2132],
         [25 - 7.0711, 25 - 14.1421, 25 + 7.0711, 25 + 14.1421]],
        atol=1e-3,
    )
    # Cell (1, 3) of the first map is centred at (75, 175): cells cover the image.
    np.testing.assert_allclose(boxes[7 * 3], [65, 165, 85, 185], atol=1e-4)
    # Second map, cell (0, 1), centre (50, 150): scale 0.9, the extra box sqrt(0.9 * 1).
    np.testing.assert_allclose(
        boxes[24 + 3 : 24 + 6],
        [[5, 105, 95, 195],
         [50 - 47.4342, 150 - 47.4342, 50 + 47.4342, 150 + 47.4342],
         [50 - 31.8198, 150 - 63.6396, 50 + 31.8198, 150 + 63.6396]],
        atol=1e-3,
    )


def test_ssd300s_maps_and_boxes_per_location():
    assert feature_map_sizes((300, 300), 3, 6) == [
        (38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (2, 2)
    ]
    assert feature_map_sizes((65, 97), 3, 2) == [(9, 13), (5, 7)]
    assert boxes_per_location((1.0, 2.0, 0.5, 3.0, 1 / 3)) == 6
    assert boxes_per_location((2.0, 0.5)) == 2
