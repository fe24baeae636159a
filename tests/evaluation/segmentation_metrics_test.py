import numpy as np
import pytest

from defect_aux_net.evaluation.segmentation_metrics import SegmentationMetrics


def test_dice_and_iou_of_2x2_masks_including_empty_empty():
    masks = np.array(
        [
            [[1, 1], [0, 0]],  # predicted [[1, 0], [1, 0]]: I 1, P 2, G 2
            [[0, 0], [0, 0]],  # nothing predicted: empty-empty
            [[1, 1], [1, 1]],  # has_mask false: skipped
        ]
    )[..., None]
    probabilities = np.array(
        [
            [[0.9, 0.2], [0.5, 0.1]],  # 0.5 is at the threshold: predicted
            [[0.1, 0.1], [0.1, 0.1]],
            [[0.0, 0.0], [0.0, 0.0]],
        ]
    )[..., None]
    metrics = SegmentationMetrics(["scratch"], mask_threshold=0.5)
    metrics.update(masks, probabilities, has_mask=np.array([True, True, False]))
    result = metrics.result()
    # Split: I 1, P 2, G 2. Per image: dice (0.5 + 1) / 2, IoU (1/3 + 1) / 2.
    expected = {"dice": 0.5, "iou": 1 / 3, "dice_per_image": 0.75, "iou_per_image": 2 / 3}
    # One class: the label maps are the masks. Image 0: I 1, U 3; image 1: empty-empty.
    label_maps = {"label_map_miou": (1 / 3 + 1) / 2, "label_map_miou_defective": 1 / 3}
    assert {k: v for k, v in result.items() if k != "per_class"} == pytest.approx(
        expected | label_maps
    )
    assert result["per_class"]["scratch"] == pytest.approx(expected)


def test_3x3_masks_two_classes_averaged_over_classes():
    cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    top_row = np.array([[1, 1, 1], [0, 0, 0], [0, 0, 0]])
    one_pixel = np.zeros((3, 3))
    one_pixel[2, 2] = 1
    masks = np.stack([cross, np.zeros((3, 3))], axis=-1)[None]
    probabilities = np.stack([top_row, one_pixel], axis=-1)[None].astype(float)
    metrics = SegmentationMetrics(["crack", "pit"])
    # Batches add up: the same image twice keeps every score.
    metrics.update(masks, probabilities, has_mask=np.array([True]))
    metrics.update(masks, probabilities, has_mask=np.array([True]))
    result = metrics.result()
    # crack: I 1, P 3, G 5 -> dice 2/8, IoU 1/7. pit: nothing true, one false pixel -> 0.
    assert result["per_class"]["crack"] == pytest.approx(
        {"dice": 0.25, "iou": 1 / 7, "dice_per_image": 0.25, "iou_per_image": 1 / 7}
    )
    assert result["per_class"]["pit"] == pytest.approx(
        {"dice": 0.0, "iou": 0.0, "dice_per_image": 0.0, "iou_per_image": 0.0}
    )
    assert result["dice"] == pytest.approx(0.125)
    assert result["iou_per_image"] == pytest.approx(1 / 14)


def test_split_and_per_image_scores_differ_when_areas_differ():
    # Image 1: a 4-pixel defect found exactly (IoU 1). Image 2: a 1-pixel defect missed.
    masks = np.zeros((2, 2, 2, 1))
    masks[0] = 1
    masks[1, 0, 0] = 1
    probabilities = np.zeros((2, 2, 2, 1))
    probabilities[0] = 1
    metrics = SegmentationMetrics(["scratch"])
    metrics.update(masks, probabilities, has_mask=np.array([True, True]))
    result = metrics.result()
    assert result["iou"] == pytest.approx(4 / 5)  # I 4, U 5
    assert result["iou_per_image"] == pytest.approx(0.5)  # (1 + 0) / 2


def test_no_image_with_a_mask_is_not_measured():
    metrics = SegmentationMetrics(["scratch", "pit"])
    metrics.update(np.ones((1, 2, 2, 2)), np.ones((1, 2, 2, 2)), has_mask=np.array([False]))
    result = metrics.result()
    assert result["dice"] == -1.0
    assert result["per_class"]["pit"]["iou_per_image"] == -1.0
    assert result["label_map_miou"] == result["label_map_miou_defective"] == -1.0


def test_label_map_miou_of_the_deeplabv3plus_paper_by_hand():
    # Three 2x2 images, classes (crack, pit); threshold 0.5.
    masks = np.zeros((3, 2, 2, 2))
    probabilities = np.zeros((3, 2, 2, 2))
    # Image A: crack at (0,0) and (0,1), pit at (1,1).
    masks[0, 0, :, 0] = 1
    masks[0, 1, 1, 1] = 1
    probabilities[0, 0, 0] = [0.9, 0.6]  # label crack: right -> intersection
    probabilities[0, 0, 1] = [0.3, 0.7]  # label pit on a crack: union only
    probabilities[0, 1, 0] = [0.2, 0.1]  # background on background: neither
    probabilities[0, 1, 1] = [0.4, 0.45]  # below the threshold on a pit: union only
    # Image B: defect-free, nothing predicted: empty-empty, IoU 1.
    # Image C: (0,0) in both classes' masks, (0,1) a pit.
    masks[2, 0, 0] = [1, 1]
    masks[2, 0, 1, 1] = 1
    probabilities[2, 0, 0] = [0.8, 0.9]  # label pit, one of the pixel's classes: right
    probabilities[2, 0, 1] = [0.6, 0.1]  # label crack on a pit: union only
    metrics = SegmentationMetrics(["crack", "pit"], mask_threshold=0.5)
    metrics.update(masks, probabilities, has_mask=np.array([True, True, True]))
    result = metrics.result()
    # IoUs: A 1/3, B 1, C 1/2.
    assert result["label_map_miou"] == pytest.approx((1 / 3 + 1 + 1 / 2) / 3)
    assert result["label_map_miou_defective"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    # Per class, image A's crack IoU is 1/2 (pit's 0.6 does not count against crack):
    # the label map differs from the per-class masks.
    assert result["per_class"]["crack"]["iou_per_image"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
