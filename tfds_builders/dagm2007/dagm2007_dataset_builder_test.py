"""Tests of the DAGM 2007 builder: per-class configs, label-file rule, bad input."""

import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from . import dagm2007_dataset_builder


_DUMMY_DATA = epath.Path(__file__).parent / "dummy_data"


class Dagm2007Test(tfds.testing.DatasetBuilderTestCase):
    """Class1 and Class10: four train images (two defective), three test (one)."""

    DATASET_CLASS = dagm2007_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["class1", "class10"]
    SPLITS = {"train": 4, "test": 3}


def _build(manual_dir, data_dir, config="class1"):
    builder = dagm2007_dataset_builder.Builder(data_dir=data_dir, config=config)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    )
    return builder


def _examples(builder, split):
    return {
        example["image_id"].decode(): example
        for example in tfds.as_numpy(builder.as_dataset(split=split))
    }


@pytest.fixture(scope="module")
def class10_train(tmp_path_factory):
    return _examples(_build(_DUMMY_DATA, tmp_path_factory.mktemp("data"), "class10"), "train")


def test_an_image_is_defective_exactly_when_its_label_file_exists(class10_train):
    defective = sorted(name for name, example in class10_train.items() if example["is_defective"])

    assert sorted(class10_train) == [f"Class10/Train/000{index}" for index in range(1, 5)]
    assert defective == ["Class10/Train/0002", "Class10/Train/0004"]
    for name, example in class10_train.items():
        assert example["image"].shape == (32, 32, 1)
        assert example["segmentation_mask"].any() == (name in defective)
        assert example["labels"].tolist() == [int(name in defective)]
        assert example["has_mask"] and example["has_boxes"]


def test_the_ellipse_mask_and_its_box(class10_train):
    # Ellipse centred at row 10, column 12 with radii 3 (rows) and 5 (columns).
    example = class10_train["Class10/Train/0002"]
    mask = example["segmentation_mask"][..., 0]

    assert mask[10, 12] and mask[10, 7] and mask[10, 17] and mask[7, 12] and mask[13, 12]
    assert not mask[10, 6] and not mask[10, 18] and not mask[6, 12] and not mask[14, 12]
    np.testing.assert_allclose(
        example["objects"]["bbox"], [[7 / 32, 7 / 32, 14 / 32, 18 / 32]], rtol=1e-6
    )
    np.testing.assert_array_equal(example["objects"]["label"], [0])


def test_configs_are_the_ten_classes():
    configs = dagm2007_dataset_builder.Builder.BUILDER_CONFIGS

    assert [config.name for config in configs] == [f"class{n}" for n in range(1, 11)]
    assert [config.folder for config in configs][9] == "Class10"


def _broken_copy(tmp_path):
    manual_dir = tmp_path / "manual"
    shutil.copytree(_DUMMY_DATA, manual_dir)
    return manual_dir


def test_a_label_of_another_size_is_named(tmp_path):
    manual_dir = _broken_copy(tmp_path)
    label = manual_dir / "Class1" / "Test" / "Label" / "0003_label.PNG"
    Image.fromarray(np.zeros((16, 32), dtype=np.uint8)).save(label)

    with pytest.raises(ValueError, match="0003_label.PNG: mask is 16 x 32 .* image is 32 x 32"):
        _build(manual_dir, tmp_path / "data")


def test_a_truncated_image_is_named(tmp_path):
    manual_dir = _broken_copy(tmp_path)
    image = manual_dir / "Class1" / "Train" / "0003.PNG"
    image.write_bytes(image.read_bytes()[:100])

    with pytest.raises(ValueError, match="Train/0003.PNG: corrupt or truncated image"):
        _build(manual_dir, tmp_path / "data")


def test_a_label_without_image_is_named(tmp_path):
    manual_dir = _broken_copy(tmp_path)
    (manual_dir / "Class1" / "Train" / "0004.PNG").unlink()

    with pytest.raises(FileNotFoundError, match="have no image .*0004_label.PNG"):
        _build(manual_dir, tmp_path / "data")


def test_a_missing_split_folder_shows_the_expected_layout(tmp_path):
    manual_dir = _broken_copy(tmp_path)
    shutil.rmtree(manual_dir / "Class1" / "Test")

    with pytest.raises(FileNotFoundError, match="Class1/Test does not exist(.|\n)*_label.PNG"):
        _build(manual_dir, tmp_path / "data")


def test_a_missing_class_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no folder Class2(.|\n)*ClassN/Train"):
        _build(_DUMMY_DATA, tmp_path / "data", config="class2")


def test_a_manual_dir_with_the_builder_name_appended_is_found(tmp_path):
    shutil.copytree(_DUMMY_DATA, tmp_path / "manual" / "dagm2007")

    builder = _build(tmp_path / "manual", tmp_path / "data")

    assert builder.info.splits["test"].num_examples == 3


def test_a_missing_manual_dir_says_where_to_get_the_data(tmp_path):
    with pytest.raises(AssertionError, match="does not exist or is empty(.|\n)*uni-heidelberg"):
        _build(tmp_path / "nowhere", tmp_path / "data")
