"""defect_folder builder: example values per annotation kind, and bad input."""

import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from .defect_folder_dataset_builder import Builder, DefectFolderConfig

_DUMMY_DATA = epath.Path(__file__).parent / "dummy_data"


def _build(dataset_yaml, data_dir) -> dict[str, dict]:
    """Builds into `data_dir` and returns the examples of all splits by image id."""
    config = DefectFolderConfig(name="under_test", dataset_yaml=str(dataset_yaml))
    builder = Builder(data_dir=data_dir, config=config)
    builder.download_and_prepare()
    return {
        example["image_id"].decode(): example
        for split in builder.info.splits
        for example in tfds.as_numpy(builder.as_dataset(split=split))
    }


def test_index_masks_give_class_channels_and_boxes(tmp_path):
    a = _build(_DUMMY_DATA / "masks" / "dataset.yaml", tmp_path)["a"]
    assert a["image"].shape == (10, 10, 1)
    # Value 1 at rows 1-3, columns 2-5 (crack); value 2 at (8, 8) (pit).
    assert a["segmentation_mask"][..., 0].sum() == 12 and a["segmentation_mask"][8, 8, 1] == 1
    np.testing.assert_allclose(
        a["objects"]["bbox"], [[0.1, 0.2, 0.4, 0.6], [0.8, 0.8, 0.9, 0.9]], rtol=1e-6
    )
    np.testing.assert_array_equal(a["objects"]["label"], [0, 1])
    assert a["has_mask"] and a["has_boxes"] and a["is_defective"]


def test_voc_boxes(tmp_path):
    p3 = _build(_DUMMY_DATA / "voc" / "dataset.yaml", tmp_path)["p3"]
    # (xmin 1, ymin 1, xmax 2, ymax 12) and (8, 6, 16, 12) in a 16 wide, 12 high image.
    np.testing.assert_allclose(
        p3["objects"]["bbox"], [[1 / 12, 1 / 16, 1, 2 / 16], [0.5, 0.5, 1, 1]], rtol=1e-6
    )
    np.testing.assert_array_equal(p3["labels"], [1, 1])
    assert p3["image"].shape == (12, 16, 3) and not p3["has_mask"]


def test_yolo_detection_and_segmentation(tmp_path):
    h1 = _build(_DUMMY_DATA / "yolo" / "dataset.yaml", tmp_path / "det")["h1"]
    np.testing.assert_allclose(h1["objects"]["bbox"], [[0.3, 0.4, 0.7, 0.6]], rtol=1e-6)
    s1 = _build(_DUMMY_DATA / "yolo_segmentation" / "dataset.yaml", tmp_path / "seg")["s1"]
    # Square of pixels 2..4 in class 1 (crack): 9 pixels, box 0.2..0.5.
    assert s1["segmentation_mask"][..., 1].sum() == 9 and not s1["segmentation_mask"][..., 0].any()
    np.testing.assert_allclose(s1["objects"]["bbox"], [[0.2, 0.2, 0.5, 0.5]], rtol=1e-6)
    np.testing.assert_array_equal(s1["labels"], [0, 1])


def test_csv_multi_labels_and_defect_free_rows(tmp_path):
    examples = _build(_DUMMY_DATA / "csv" / "dataset.yaml", tmp_path)
    np.testing.assert_array_equal(examples["v"]["labels"], [1, 1, 0])
    np.testing.assert_array_equal(examples["x"]["labels"], [1, 0, 1])
    assert not examples["w"]["is_defective"]
    assert not examples["v"]["has_mask"] and not examples["v"]["has_boxes"]


def _copy(tmp_path, kind):
    root = tmp_path / kind
    shutil.copytree(_DUMMY_DATA / kind, root)
    return root


def test_mask_value_beyond_the_classes_names_the_file(tmp_path):
    root = _copy(tmp_path, "masks")
    Image.fromarray(np.full((10, 10), 3, np.uint8)).save(root / "masks/b.png")
    with pytest.raises(ValueError, match=r"b.png: mask value 3 is no class"):
        _build(root / "dataset.yaml", tmp_path / "out")


def test_mask_of_another_size_names_the_file(tmp_path):
    root = _copy(tmp_path, "masks")
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(root / "masks/d.png")
    with pytest.raises(ValueError, match=r"d.png: mask is 10 x 12 .* image is 10 x 10"):
        _build(root / "dataset.yaml", tmp_path / "out")


def test_unknown_csv_class_names_the_row(tmp_path):
    root = _copy(tmp_path, "csv")
    (root / "labels.csv").write_text("image,label\nv.png,rust\n")
    with pytest.raises(ValueError, match=r"labels.csv, row 2: unknown class 'rust'"):
        _build(root / "dataset.yaml", tmp_path / "out")


def test_bad_yaml_names_the_key_and_value(tmp_path):
    root = _copy(tmp_path, "masks")
    (root / "dataset.yaml").write_text("names: [crack]\nannotation: polygons\n")
    with pytest.raises(ValueError, match=r"dataset.yaml: `annotation` must be one of .* 'polygons'"):
        _build(root / "dataset.yaml", tmp_path / "out")


def test_missing_yaml_and_wrong_layout_say_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="No dataset YAML at .*nowhere"):
        _build(tmp_path / "nowhere" / "dataset.yaml", tmp_path / "out")
    root = _copy(tmp_path, "voc")
    shutil.rmtree(root / "validation" / "annotations")
    with pytest.raises(FileNotFoundError, match=r"annotations does not exist; annotation 'voc'"):
        _build(root / "dataset.yaml", tmp_path / "out2")


def test_image_tensorflow_cannot_decode_stops_the_build_naming_it(tmp_path):
    root = _copy(tmp_path, "masks")
    image = root / "images/c.png"
    image.write_bytes(image.read_bytes()[:-20])  # No IEND chunk, no zlib checksum.
    with Image.open(image) as opened:
        opened.load()  # Pillow reads it in full; TensorFlow would fail in training.
    with pytest.raises(ValueError, match=r"images/c.png: corrupt or truncated image"):
        _build(root / "dataset.yaml", tmp_path / "out")
