import numpy as np
import pytest

from defect_aux_net.datasets.yolo import (
    find_ultralytics_splits,
    parse_yolo_detection,
    parse_yolo_segmentation,
)


def test_detection_line_becomes_ymin_xmin_ymax_xmax():
    bboxes, labels = parse_yolo_detection(
        "2 0.5 0.25 0.2 0.1\n\n0 0.1 0.9 0.2 0.2\n", num_classes=3, source="a.txt"
    )
    # cx 0.5 w 0.2 -> x 0.4..0.6; cy 0.25 h 0.1 -> y 0.2..0.3.
    np.testing.assert_allclose(bboxes, [[0.2, 0.4, 0.3, 0.6], [0.8, 0.0, 1.0, 0.2]], atol=1e-7)
    np.testing.assert_array_equal(labels, [2, 0])
    assert bboxes.dtype == np.float32 and labels.dtype == np.int64


def test_empty_detection_file_has_no_boxes():
    bboxes, labels = parse_yolo_detection("", num_classes=1, source="empty.txt")
    assert bboxes.shape == (0, 4) and labels.shape == (0,)


def test_edge_a_rounding_error_outside_is_clipped():
    bboxes, _ = parse_yolo_detection("0 0.9995 0.5 0.002 0.5", 1, "a.txt")
    assert bboxes[0, 3] == 1.0


@pytest.mark.parametrize(
    "line, message",
    [
        ("6 0.5 0.5 0.1 0.1", "unknown class id 6"),
        ("0 1.5 0.5 0.1 0.1", r"\[1.5\]"),
        ("0 0.5 0.5 0.1", "5 fields"),
        ("0 0.9 0.5 0.4 0.1", "reaches outside"),
        ("0 0.5 0.5 0 0.1", "empty box"),
        ("x 0.5 0.5 0.1 0.1", "not a YOLO label line"),
    ],
)
def test_bad_detection_lines_name_file_line_and_value(line, message):
    with pytest.raises(ValueError, match=message) as error:
        parse_yolo_detection("0 0.5 0.5 0.1 0.1\n" + line, 6, "labels/img.txt")
    assert "labels/img.txt, line 2" in str(error.value)


def test_segmentation_line_becomes_xy_vertices():
    polygons = parse_yolo_segmentation("1 0.1 0.2 0.3 0.4 0.5 0.6\n", 2, "s.txt")
    assert len(polygons) == 1 and polygons[0].label == 1
    np.testing.assert_allclose(polygons[0].points, [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], rtol=1e-6)


@pytest.mark.parametrize(
    "line, message",
    [
        ("0 0.1 0.2 0.3 0.4", "at least three"),
        ("0 0.1 0.2 0.3 0.4 0.5", "at least three"),
        ("0 0.1 0.2 0.3 -0.4 0.5 0.6", r"\[-0.4\]"),
        ("3 0.1 0.2 0.3 0.4 0.5 0.6", "unknown class id 3"),
    ],
)
def test_bad_segmentation_lines(line, message):
    with pytest.raises(ValueError, match=message):
        parse_yolo_segmentation(line, 1, "s.txt")


def test_ultralytics_splits_map_val_to_validation(tmp_path):
    for folder in ("images/train", "labels/train", "images/val", "labels/val"):
        (tmp_path / folder).mkdir(parents=True)
    splits = find_ultralytics_splits(tmp_path)
    assert sorted(splits) == ["train", "validation"]
    assert splits["validation"] == (tmp_path / "images/val", tmp_path / "labels/val")


def test_ultralytics_split_without_labels_is_an_error(tmp_path):
    (tmp_path / "images/train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no matching labels folder"):
        find_ultralytics_splits(tmp_path)
    (tmp_path / "images/train").rmdir()
    with pytest.raises(FileNotFoundError, match="none of the Ultralytics split folders"):
        find_ultralytics_splits(tmp_path)
