import numpy as np

from defect_aux_net.datasets.annotations import boxes_from_mask


def test_boxes_from_mask_one_box_per_component_and_class():
    mask = np.zeros((10, 20, 2), dtype=np.uint8)
    mask[1:3, 2:5, 0] = 1  # rows 1-2, cols 2-4
    mask[6, 10, 0] = 1  # single pixel
    mask[7, 11, 0] = 1  # diagonal neighbour: same 8-connected component
    mask[0:10, 19, 1] = 1  # full-height column of class 1

    bboxes, labels = boxes_from_mask(mask)

    np.testing.assert_allclose(
        bboxes,
        [
            [0.1, 0.1, 0.3, 0.25],
            [0.6, 0.5, 0.8, 0.6],
            [0.0, 0.95, 1.0, 1.0],
        ],
        rtol=1e-6,
    )
    np.testing.assert_array_equal(labels, [0, 0, 1])


def test_boxes_from_empty_mask():
    bboxes, labels = boxes_from_mask(np.zeros((4, 4, 3), dtype=bool))
    assert bboxes.shape == (0, 4) and labels.shape == (0,)
