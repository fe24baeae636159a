import numpy as np

from defect_aux_net.datasets.defect_examples import defect_example


def test_labels_are_the_union_of_mask_boxes_and_image_labels():
    mask = np.zeros((2, 3, 4), np.uint8)
    mask[0, 0, 3] = 1
    example = defect_example(
        b"jpeg",
        "img",
        height=2,
        width=3,
        num_classes=4,
        mask=mask,
        bboxes=np.array([[0.0, 0.0, 0.5, 0.5]], np.float32),
        box_labels=np.array([1]),
        image_labels=[0],
    )
    np.testing.assert_array_equal(example["labels"], [1, 1, 0, 1])
    assert example["is_defective"] and example["has_mask"] and example["has_boxes"]
    assert example["image"] == b"jpeg" and example["image_id"] == "img"


def test_missing_annotations_give_zero_mask_and_no_boxes():
    example = defect_example(np.zeros((2, 3, 1), np.uint8), "free", 2, 3, num_classes=2)
    assert example["segmentation_mask"].shape == (2, 3, 2)
    assert not example["segmentation_mask"].any()
    assert example["objects"]["bbox"].shape == (0, 4)
    assert not example["has_mask"] and not example["has_boxes"]
    assert not example["is_defective"]
    np.testing.assert_array_equal(example["labels"], [0, 0])


def test_a_mask_without_boxes_gets_its_connected_components_as_boxes():
    mask = np.zeros((4, 4, 2), np.uint8)
    mask[0:2, 1, 0] = 1  # rows 0-1, column 1
    mask[3, 2:4, 1] = 1  # row 3, columns 2-3
    example = defect_example(b"png", "img", 4, 4, num_classes=2, mask=mask)
    np.testing.assert_allclose(
        example["objects"]["bbox"], [[0.0, 0.25, 0.5, 0.5], [0.75, 0.5, 1.0, 1.0]]
    )
    np.testing.assert_array_equal(example["objects"]["label"], [0, 1])
    assert example["has_mask"] and example["has_boxes"]
