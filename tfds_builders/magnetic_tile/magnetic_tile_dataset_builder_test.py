"""Tests of the magnetic tile builder: layout, threshold, stratified split, bad input."""

import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from . import magnetic_tile_dataset_builder


_DUMMY_DATA = epath.Path(__file__).parent / "dummy_data"


class MagneticTileTest(tfds.testing.DatasetBuilderTestCase):
    """18 images in six folders, split 80/20 within each folder."""

    DATASET_CLASS = magnetic_tile_dataset_builder.Builder
    SPLITS = {"train": 15, "test": 3}


def _build(manual_dir, data_dir):
    builder = magnetic_tile_dataset_builder.Builder(data_dir=data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    )
    return builder


@pytest.fixture(scope="module")
def examples_by_split(tmp_path_factory):
    builder = _build(_DUMMY_DATA, tmp_path_factory.mktemp("data"))
    return {
        split: {
            example["image_id"].decode(): example
            for example in tfds.as_numpy(builder.as_dataset(split=split))
        }
        for split in ("train", "test")
    }


def test_split_is_stratified_by_folder(examples_by_split):
    def folders(split):
        return sorted(image_id.split("/")[0] for image_id in examples_by_split[split])

    assert folders("test") == ["MT_Blowhole", "MT_Crack", "MT_Free"]
    assert folders("train").count("MT_Blowhole") == 4
    assert folders("train").count("MT_Free") == 4


def test_folder_decides_the_class_and_the_mask_is_thresholded_at_128(examples_by_split):
    examples = {**examples_by_split["train"], **examples_by_split["test"]}
    example = examples["MT_Crack/exp1_num_1001"]  # mask core at rows 4-7, cols 6-11
    mask = example["segmentation_mask"]

    assert example["image"].shape == (28, 34, 1)
    np.testing.assert_array_equal(example["labels"], [0, 0, 1, 0, 0])
    assert not mask[..., [0, 1, 3, 4]].any()
    # The 128 ring is defect, the 127 ring around it is not: 6 x 8 pixels.
    assert mask[3:9, 5:13, 2].all() and mask[..., 2].sum() == 48
    np.testing.assert_allclose(
        example["objects"]["bbox"], [[3 / 28, 5 / 34, 9 / 28, 13 / 34]], rtol=1e-6
    )
    np.testing.assert_array_equal(example["objects"]["label"], [2])
    for image_id, example in examples.items():
        assert example["is_defective"] == (not image_id.startswith("MT_Free"))
        assert example["has_mask"] and example["has_boxes"]


def test_image_sizes_vary_and_free_images_have_empty_masks(examples_by_split):
    examples = {**examples_by_split["train"], **examples_by_split["test"]}

    assert len({example["image"].shape for example in examples.values()}) == 5
    for image_id, example in examples.items():
        if image_id.startswith("MT_Free"):
            assert not example["segmentation_mask"].any() and not example["labels"].any()


def _broken_copy(tmp_path):
    manual_dir = tmp_path / "manual"
    shutil.copytree(_DUMMY_DATA, manual_dir)
    return manual_dir


def test_a_mask_of_another_size_is_named(tmp_path):
    manual_dir = _broken_copy(tmp_path)
    mask_path = manual_dir / "MT_Break" / "Imgs" / "exp0_num_1000.png"
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(mask_path)

    expected = "exp0_num_1000.png: mask is 10 x 10 .* image is 24 x 32"
    with pytest.raises(ValueError, match=expected):
        _build(manual_dir, tmp_path / "data")


def test_a_corrupt_image_is_named(tmp_path):
    manual_dir = _broken_copy(tmp_path)
    (manual_dir / "MT_Fray" / "Imgs" / "exp0_num_1000.jpg").write_bytes(b"not a jpeg")

    expected = "MT_Fray/Imgs/exp0_num_1000.jpg: corrupt or truncated"
    with pytest.raises(ValueError, match=expected):
        _build(manual_dir, tmp_path / "data")


def test_a_defect_in_a_free_mask_is_refused(tmp_path):
    manual_dir = _broken_copy(tmp_path)
    mask = np.zeros((24, 32), dtype=np.uint8)
    mask[1, 1] = 200
    Image.fromarray(mask).save(manual_dir / "MT_Free" / "Imgs" / "exp0_num_1000.png")

    expected = r"exp0_num_1000.png: 1 mask pixel\(s\) >= 128, but MT_Free"
    with pytest.raises(ValueError, match=expected):
        _build(manual_dir, tmp_path / "data")


def test_an_image_without_mask_is_named(tmp_path):
    manual_dir = _broken_copy(tmp_path)
    (manual_dir / "MT_Uneven" / "Imgs" / "exp1_num_1001.png").unlink()

    with pytest.raises(FileNotFoundError, match="no annotation file .*exp1_num_1001.jpg"):
        _build(manual_dir, tmp_path / "data")


def test_a_missing_class_folder_shows_the_expected_layout(tmp_path):
    manual_dir = _broken_copy(tmp_path)
    shutil.rmtree(manual_dir / "MT_Uneven")

    expected = r"lacks \['MT_Uneven/Imgs'\](.|\n)*MT_Free/Imgs"
    with pytest.raises(FileNotFoundError, match=expected):
        _build(manual_dir, tmp_path / "data")


def test_a_manual_dir_with_the_builder_name_appended_is_found(tmp_path):
    shutil.copytree(_DUMMY_DATA, tmp_path / "manual" / "magnetic_tile")

    builder = _build(tmp_path / "manual", tmp_path / "data")

    assert builder.info.splits["test"].num_examples == 3


def test_a_missing_manual_dir_says_where_to_get_the_data(tmp_path):
    with pytest.raises(AssertionError, match="does not exist or is empty(.|\n)*abin24"):
        _build(tmp_path / "nowhere", tmp_path / "data")
