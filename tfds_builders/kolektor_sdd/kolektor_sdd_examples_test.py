"""KolektorSDD builder: masks and derived boxes from the fixture, and bad input."""

import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from . import kolektor_sdd_dataset_builder

_DUMMY_DATA = epath.Path(__file__).parent / "dummy_data"


def _build(manual_dir, data_dir) -> dict[str, dict]:
    """Builds into `data_dir` and returns the examples of all splits by image id."""
    builder = kolektor_sdd_dataset_builder.Builder(data_dir=data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
    )
    return {
        example["image_id"].decode(): example
        for split in builder.info.splits
        for example in tfds.as_numpy(builder.as_dataset(split=split))
    }


def test_original_layout_masks_boxes_and_defect_free_parts(tmp_path):
    examples = _build(_DUMMY_DATA / "original", tmp_path)
    assert len(examples) == 8
    crack = examples["kos01/Part0"]
    # Label pixels at rows 2-4, columns 1-3 of a 12 x 8 image.
    assert crack["segmentation_mask"].shape == (12, 8, 1)
    assert crack["segmentation_mask"].sum() == 9
    np.testing.assert_allclose(crack["objects"]["bbox"], [[2 / 12, 1 / 8, 5 / 12, 4 / 8]])
    np.testing.assert_array_equal(crack["labels"], [1])
    assert crack["is_defective"] and crack["has_mask"] and crack["has_boxes"]
    assert crack["image"].shape == (12, 8, 1)
    np.testing.assert_allclose(examples["kos03/Part1"]["objects"]["bbox"], [[0, 7 / 8, 1, 1]])
    free = examples["kos01/Part1"]
    assert not free["segmentation_mask"].any() and free["objects"]["bbox"].shape == (0, 4)
    assert not free["is_defective"] and free["has_mask"] and free["has_boxes"]


def test_yolo_polygons_are_rasterised_and_boxed_per_component(tmp_path):
    examples = _build(_DUMMY_DATA / "yolo", tmp_path)
    square = examples["000"]
    # Vertices x 0.25..0.5 -> pixels 2..4 of 8, y 0.25..0.5 -> pixels 3..6 of 12.
    assert square["segmentation_mask"].sum() == 3 * 4
    np.testing.assert_allclose(square["objects"]["bbox"], [[3 / 12, 2 / 8, 7 / 12, 5 / 8]])
    # Triangle (0, 0), (2, 0), (0, 3) in pixels: rows 0-3, columns 0-2.
    # Triangle (7, 11), (5, 11), (7, 9): rows 9-11, columns 5-7 (row 11 holds 3).
    np.testing.assert_allclose(
        examples["002"]["objects"]["bbox"],
        [[0, 0, 4 / 12, 3 / 8], [9 / 12, 5 / 8, 1, 1]],
        rtol=1e-6,
    )
    assert not examples["003"]["is_defective"]


def _broken_copy(tmp_path, layout):
    manual_dir = tmp_path / "manual"
    shutil.copytree(_DUMMY_DATA / layout, manual_dir)
    return manual_dir


def test_mask_of_another_size_names_the_file(tmp_path):
    manual_dir = _broken_copy(tmp_path, "original")
    Image.new("L", (8, 10)).save(manual_dir / "kos02/Part0_label.bmp")
    with pytest.raises(ValueError, match=r"Part0_label.bmp: mask is 10 x 8 .* image is 12 x 8"):
        _build(manual_dir, tmp_path / "out")


def test_polygon_outside_the_image_names_the_file(tmp_path):
    manual_dir = _broken_copy(tmp_path, "yolo")
    (manual_dir / "labels/val/003.txt").write_text("0 0.1 0.1 1.2 0.1 0.1 0.2\n")
    with pytest.raises(ValueError, match=r"003.txt, line 1: .* got \[1.2\]"):
        _build(manual_dir, tmp_path / "out")


def test_folder_in_the_wrong_layout_says_which_layouts_are_expected(tmp_path):
    (tmp_path / "manual" / "Part0.jpg").parent.mkdir()
    (tmp_path / "manual" / "Part0.jpg").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="neither KolektorSDD layout") as error:
        _build(tmp_path / "manual", tmp_path / "out")
    assert "kos01/ ... kos50/" in str(error.value)
