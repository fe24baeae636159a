"""Tests of the Severstal builder: both CSV layouts, all classes per image, bad input."""

import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds
from etils import epath

from defect_aux_net.datasets.seeded_splits import seeded_split

from . import severstal_dataset_builder


_DUMMY_DATA = epath.Path(__file__).parent / "dummy_data"


class SeverstalCurrentLayoutTest(tfds.testing.DatasetBuilderTestCase):
    """`ImageId,ClassId,EncodedPixels`: ten images split 70/10/20 by the seed."""

    DATASET_CLASS = severstal_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["split_70_10_20"]
    EXAMPLE_DIR = str(_DUMMY_DATA / "current")
    SPLITS = {"train": 7, "validation": 1, "test": 2}


class SeverstalOlderLayoutTest(tfds.testing.DatasetBuilderTestCase):
    """`ImageId_ClassId,EncodedPixels` with four rows per image, empty where absent, in
    the DeepLabV3+ paper's 80/10/10 config: of ten images, round(8), round(9) - 8, 10 - 9."""

    DATASET_CLASS = severstal_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["split_80_10_10"]
    EXAMPLE_DIR = str(_DUMMY_DATA / "older")
    SPLITS = {"train": 8, "validation": 1, "test": 1}


def _build(manual_dir, data_dir, config=None):
    builder = severstal_dataset_builder.Builder(data_dir=data_dir, config=config)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    )
    return builder


def _image_ids(builder) -> dict[str, list[str]]:
    return {
        split: [example["image_id"].decode() for example in tfds.as_numpy(examples)]
        for split, examples in builder.as_dataset().items()
    }


def test_the_default_config_is_the_70_10_20_split_and_80_10_10_has_all_12568_images():
    assert severstal_dataset_builder.Builder.BUILDER_CONFIGS[0].name == "split_70_10_20"
    config = severstal_dataset_builder.Builder.builder_configs["split_80_10_10"]
    names = [f"{index:09x}.jpg" for index in range(12_568)]
    splits = seeded_split(names, dict(config.split_fractions), severstal_dataset_builder.SPLIT_SEED)

    # round(0.8 * 12568) = round(10054.4) = 10054, round(0.9 * 12568) = 11311: 1257 each.
    assert [len(splits[name]) for name in ("train", "validation", "test")] == [10054, 1257, 1257]
    assert len(set().union(*map(set, splits.values()))) == 12_568


def _all_examples(builder) -> dict[str, dict]:
    return {
        example["image_id"].decode(): example
        for split in ("train", "validation", "test")
        for example in tfds.as_numpy(builder.as_dataset(split=split))
    }


@pytest.fixture(scope="module")
def current_examples(tmp_path_factory):
    return _all_examples(_build(_DUMMY_DATA / "current", tmp_path_factory.mktemp("data")))


def test_an_image_with_two_classes_keeps_both(current_examples):
    example = current_examples["000000000.jpg"]
    mask = example["segmentation_mask"]

    np.testing.assert_array_equal(example["labels"], [1, 0, 1, 0])
    assert mask[2:6, 3:11, 0].all() and mask[..., 0].sum() == 4 * 8
    assert mask[4:13, 8:21, 2].all() and mask[..., 2].sum() == 9 * 13
    assert mask[4, 8, 0] and mask[4, 8, 2]  # the classes overlap there
    np.testing.assert_array_equal(example["objects"]["label"], [0, 2])
    np.testing.assert_allclose(
        example["objects"]["bbox"],
        [[2 / 32, 3 / 64, 6 / 32, 11 / 64], [4 / 32, 8 / 64, 13 / 32, 21 / 64]],
        rtol=1e-6,
    )


def test_masks_labels_and_flags_of_every_image(current_examples):
    assert len(current_examples) == 10
    expected_labels = {
        "000000001.jpg": [0, 1, 0, 0],
        "000000002.jpg": [0, 0, 0, 1],
        "000000003.jpg": [1, 1, 0, 1],
    }
    for name, example in current_examples.items():
        assert example["image"].shape == (32, 64, 3)
        assert example["has_mask"] and example["has_boxes"]
        if name in expected_labels:
            np.testing.assert_array_equal(example["labels"], expected_labels[name])
            assert example["is_defective"]
        elif name != "000000000.jpg":
            assert not example["is_defective"] and not example["segmentation_mask"].any()
            assert example["objects"]["label"].size == 0
    # Two separate regions of class 2 give two boxes.
    assert current_examples["000000001.jpg"]["objects"]["label"].tolist() == [1, 1]
    # The run ending on the last pixel fills the bottom-right corner.
    assert current_examples["000000002.jpg"]["segmentation_mask"][30:, 60:, 3].all()


def test_both_layouts_and_both_splits_give_the_same_examples(current_examples, tmp_path):
    older = _build(_DUMMY_DATA / "older", tmp_path, "split_80_10_10")
    older_examples = _all_examples(older)

    assert sorted(older_examples) == sorted(current_examples)
    # 80/10/10 is a partition: every image in exactly one split.
    ids = _image_ids(older)
    assert {split: len(names) for split, names in ids.items()} == {
        "train": 8, "validation": 1, "test": 1
    }
    assert sorted(name for names in ids.values() for name in names) == sorted(current_examples)
    for name, example in older_examples.items():
        np.testing.assert_array_equal(
            example["segmentation_mask"], current_examples[name]["segmentation_mask"]
        )


def test_a_manual_dir_with_the_builder_name_appended_is_found(tmp_path):
    shutil.copytree(_DUMMY_DATA / "current", tmp_path / "manual" / "severstal")

    builder = _build(tmp_path / "manual", tmp_path / "data")

    assert builder.info.splits["train"].num_examples == 7


def _broken_copy(tmp_path, csv_text=None):
    """Copies the current fixture to `tmp_path/manual`, optionally with another CSV."""
    manual_dir = tmp_path / "manual"
    shutil.copytree(_DUMMY_DATA / "current", manual_dir)
    if csv_text is not None:
        (manual_dir / "train.csv").write_text(csv_text)
    return manual_dir


_HEADER = "ImageId,ClassId,EncodedPixels\n"


@pytest.mark.parametrize(
    "csv_text, message",
    [
        (_HEADER + "000000001.jpg,1,2040 20\n", r"line 2 \(000000001.jpg, class id 1\).*past"),
        (_HEADER + "000000001.jpg,1,5 1 7\n", "line 2.*odd number of tokens"),
        (_HEADER + "000000001.jpg,1,5 x\n", "line 2.*not an integer: 'x'"),
        (_HEADER + "000000001.jpg,5,5 1\n", "line 2: class id '5' is not one of 1..4"),
        (_HEADER + "000000001.jpg,2,5 1\n000000001.jpg,2,9 1\n", "line 3: a second mask"),
        ("Image,Class,Pixels\n", "header .* is neither"),
        (_HEADER + "00000000f.jpg,2,5 1\n", "line 2: image 00000000f.jpg is not in"),
    ],
)
def test_bad_csv_rows_name_the_file_line_and_problem(tmp_path, csv_text, message):
    manual_dir = _broken_copy(tmp_path, csv_text)

    with pytest.raises((ValueError, FileNotFoundError), match=f"train.csv.*{message}"):
        _build(manual_dir, tmp_path / "data")


def test_a_truncated_image_is_named(tmp_path):
    manual_dir = _broken_copy(tmp_path)
    image = manual_dir / "train_images" / "000000004.jpg"
    image.write_bytes(image.read_bytes()[:300])

    with pytest.raises(ValueError, match="000000004.jpg: corrupt or truncated image"):
        _build(manual_dir, tmp_path / "data")


def test_a_folder_in_the_wrong_layout_shows_the_expected_one(tmp_path):
    (tmp_path / "manual" / "images").mkdir(parents=True)

    expected = "has no train.csv(.|\n)*train_images/<ImageId>.jpg"
    with pytest.raises(FileNotFoundError, match=expected):
        _build(tmp_path / "manual", tmp_path / "data")


def test_a_missing_manual_dir_says_where_to_get_the_data(tmp_path):
    with pytest.raises(AssertionError, match="does not exist or is empty(.|\n)*kaggle.com"):
        _build(tmp_path / "nowhere", tmp_path / "data")
