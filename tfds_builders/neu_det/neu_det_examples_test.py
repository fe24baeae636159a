"""NEU-DET builder: example values from the fixture, determinism and bad input."""

import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds
from etils import epath

from . import neu_det_dataset_builder

_DUMMY_DATA = epath.Path(__file__).parent / "dummy_data"


def _build(manual_dir, data_dir) -> dict[str, list[dict]]:
    """Builds into `data_dir` and returns each split's examples in stored order."""
    builder = neu_det_dataset_builder.Builder(data_dir=data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
    )
    return {
        split: list(tfds.as_numpy(builder.as_dataset(split=split)))
        for split in builder.info.splits
    }


def _by_id(examples: dict[str, list[dict]]) -> dict[str, dict]:
    return {
        example["image_id"].decode(): example
        for split_examples in examples.values()
        for example in split_examples
    }


@pytest.fixture(scope="module")
def yolo_examples(tmp_path_factory):
    return _build(_DUMMY_DATA / "yolo", tmp_path_factory.mktemp("yolo"))


def test_yolo_boxes_labels_and_flags(yolo_examples):
    examples = _by_id(yolo_examples)
    crazing = examples["crazing_10"]
    # `0 0.5 0.5 0.5 0.25`: x 0.25..0.75, y 0.375..0.625.
    np.testing.assert_allclose(crazing["objects"]["bbox"], [[0.375, 0.25, 0.625, 0.75]])
    np.testing.assert_array_equal(crazing["objects"]["label"], [0])
    np.testing.assert_array_equal(crazing["labels"], [1, 0, 0, 0, 0, 0])
    assert crazing["is_defective"] and crazing["has_boxes"] and not crazing["has_mask"]
    assert crazing["image"].shape == (16, 16, 3)
    assert crazing["segmentation_mask"].shape == (16, 16, 6)
    assert not crazing["segmentation_mask"].any()
    patches = examples["patches_3"]
    np.testing.assert_allclose(
        patches["objects"]["bbox"], [[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]]
    )
    assert sorted(example["image_id"].decode() for example in yolo_examples["validation"]) == [
        "rolled-in_scale_2",
        "scratches_9",
    ]


def test_voc_boxes_and_seeded_split(tmp_path):
    examples = _build(_DUMMY_DATA / "voc", tmp_path)
    # Pinned: a change here would move images between every user's splits.
    assert [example["image_id"].decode() for example in examples["validation"]] == [
        "crazing_1"
    ]
    inclusion = _by_id(examples)["inclusion_1"]
    # Pixels (xmin 0, ymin 0, xmax 16, ymax 8) and (8, 8, 16, 16) of a 16 x 16 image.
    np.testing.assert_allclose(
        inclusion["objects"]["bbox"], [[0.0, 0.0, 0.5, 1.0], [0.5, 0.5, 1.0, 1.0]]
    )
    np.testing.assert_array_equal(inclusion["objects"]["label"], [1, 2])
    np.testing.assert_array_equal(inclusion["labels"], [0, 1, 1, 0, 0, 0])
    # The VOC fixture images are grey JPEGs, decoded to three equal channels.
    image = inclusion["image"]
    assert image.shape == (16, 16, 3)
    np.testing.assert_array_equal(image[..., 0], image[..., 2])


def test_building_twice_gives_the_same_examples_in_the_same_order(yolo_examples, tmp_path):
    again = _build(_DUMMY_DATA / "yolo", tmp_path)
    for split, examples in yolo_examples.items():
        assert [e["image_id"] for e in examples] == [e["image_id"] for e in again[split]]
        for first, second in zip(examples, again[split]):
            np.testing.assert_array_equal(first["image"], second["image"])
            np.testing.assert_array_equal(first["objects"]["bbox"], second["objects"]["bbox"])


def _broken_copy(tmp_path, layout="yolo"):
    manual_dir = tmp_path / "manual"
    shutil.copytree(_DUMMY_DATA / layout, manual_dir)
    return manual_dir


@pytest.mark.parametrize(
    "label_text, message",
    [
        ("7 0.5 0.5 0.1 0.1", "unknown class id 7"),
        ("0 0.5 1.5 0.1 0.1", r"must be normalised to \[0, 1\], got \[1.5\]"),
        ("", "no boxes, but every NEU-DET image shows a defect"),
    ],
)
def test_bad_yolo_labels_name_the_file(tmp_path, label_text, message):
    manual_dir = _broken_copy(tmp_path)
    (manual_dir / "labels/train/crazing_10.txt").write_text(label_text)
    with pytest.raises(ValueError, match=message) as error:
        _build(manual_dir, tmp_path / "out")
    assert "crazing_10.txt" in str(error.value)


def test_truncated_image_names_the_file(tmp_path):
    manual_dir = _broken_copy(tmp_path)
    image = manual_dir / "images/val/scratches_9.jpg"
    image.write_bytes(image.read_bytes()[:150])
    with pytest.raises(ValueError, match="scratches_9.jpg: corrupt or truncated image"):
        _build(manual_dir, tmp_path / "out")


def test_image_without_label_file_is_an_error(tmp_path):
    manual_dir = _broken_copy(tmp_path)
    (manual_dir / "labels/train/patches_3.txt").unlink()
    with pytest.raises(FileNotFoundError, match="patches_3.jpg"):
        _build(manual_dir, tmp_path / "out")


def test_voc_box_outside_the_image_names_the_file(tmp_path):
    manual_dir = _broken_copy(tmp_path, "voc")
    xml = manual_dir / "ANNOTATIONS/patches_1.xml"
    xml.write_text(xml.read_text().replace("<xmax>5</xmax>", "<xmax>17</xmax>"))
    with pytest.raises(ValueError, match="patches_1.xml: box .* outside the 16 x 16"):
        _build(manual_dir, tmp_path / "out")


def test_missing_manual_dir_prints_where_to_get_the_data(tmp_path):
    with pytest.raises(AssertionError, match="does not exist or is empty") as error:
        _build(tmp_path / "nowhere", tmp_path / "out")
    assert "ANNOTATIONS/<name>.xml" in str(error.value)
    assert "faculty.neu.edu.cn" in str(error.value)


def test_folder_in_the_wrong_layout_says_which_layouts_are_expected(tmp_path):
    (tmp_path / "manual" / "pictures").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"neither NEU-DET layout: found \['pictures'\]"):
        _build(tmp_path / "manual", tmp_path / "out")
