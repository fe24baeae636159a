import numpy as np

from defect_aux_net.datasets.polygons import rasterize_polygons
from defect_aux_net.datasets.yolo import YoloPolygon


def test_triangle_pixel_count_includes_its_edges():
    # Right triangle with legs of 4 pixels from the corner of a 10 x 10 mask:
    # rows 0..4 hold 5, 4, 3, 2, 1 pixels (edges inside) = 15.
    triangle = YoloPolygon(0, np.array([[0.0, 0.0], [0.4, 0.0], [0.0, 0.4]], np.float32))
    mask = rasterize_polygons([triangle], height=10, width=10, num_classes=1)
    assert mask.shape == (10, 10, 1) and mask.dtype == np.uint8
    assert mask.sum() == 15
    np.testing.assert_array_equal(mask[:5, :5, 0].sum(axis=1), [5, 4, 3, 2, 1])


def test_polygons_go_to_their_class_channel_and_may_overlap():
    # A 3 x 2 rectangle (x 1..3, y 2..3 inclusive) in class 1 and a full square in class 0,
    # on a mask twice as wide as high: x scales by 8, y by 4.
    rectangle = YoloPolygon(
        1, np.array([[1 / 8, 2 / 4], [3 / 8, 2 / 4], [3 / 8, 3 / 4], [1 / 8, 3 / 4]], np.float32)
    )
    square = YoloPolygon(0, np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32))
    mask = rasterize_polygons([rectangle, square], height=4, width=8, num_classes=2)
    assert mask[..., 0].sum() == 32
    expected = np.zeros((4, 8), np.uint8)
    expected[2:4, 1:4] = 1
    np.testing.assert_array_equal(mask[..., 1], expected)


def test_no_polygons_give_an_empty_mask():
    assert not rasterize_polygons([], 3, 5, 2).any()
