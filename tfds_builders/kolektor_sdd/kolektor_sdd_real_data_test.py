"""Builds KolektorSDD from the real Ultralytics copy in `<repo>/../shared/data` (CI has it)."""

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath

from defect_aux_net.datasets.yolo import find_ultralytics_splits

from . import kolektor_sdd_dataset_builder

_DATA = epath.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "kolektorsdd"

pytestmark = pytest.mark.skipif(
    not _DATA.is_dir(), reason=f"real KolektorSDD data not found at {_DATA}"
)


def test_real_kolektor_has_masks_and_boxes_exactly_for_the_52_defective_images(tmp_path):
    builder = kolektor_sdd_dataset_builder.Builder(data_dir=tmp_path)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=_DATA))

    assert {name: split.num_examples for name, split in builder.info.splits.items()} == {
        "train": 320,
        "validation": 79,
    }
    defective_ids = {}
    for split, folder in (("train", "train"), ("validation", "val")):
        labelled = {
            path.stem for path in (_DATA / "labels" / folder).glob("*.txt") if path.read_text().strip()
        }
        dataset = builder.as_dataset(split=split).map(
            lambda example: {
                "image_id": example["image_id"],
                "mask_pixels": tf.math.count_nonzero(example["segmentation_mask"]),
                "num_boxes": tf.size(example["objects"]["label"]),
                "is_defective": example["is_defective"],
                "has_mask": example["has_mask"],
                "shape": tf.shape(example["image"]),
            }
        )
        defective = set()
        for example in tfds.as_numpy(dataset):
            image_id = example["image_id"].decode()
            assert example["has_mask"] and example["shape"][-1] == 1 and example["shape"][1] == 500
            assert (example["mask_pixels"] > 0) == (example["num_boxes"] > 0) == example["is_defective"]
            if example["is_defective"]:
                defective.add(image_id)
        assert defective == labelled
        defective_ids[split] = defective
    # The copy's label files put 42 defective images in train and 10 in val
    # (its README says 41 / 11); the total is KolektorSDD's 52.
    assert {split: len(ids) for split, ids in defective_ids.items()} == {"train": 42, "validation": 10}


def test_real_copy_folds_spread_its_defective_images_16_19_17():
    items = {
        split: kolektor_sdd_dataset_builder._yolo_items(images, labels)
        for split, (images, labels) in find_ultralytics_splits(_DATA).items()
    }
    defective = []
    for fold in (1, 2, 3):
        splits = kolektor_sdd_dataset_builder.yolo_fold_items(items, fold)
        assert (len(splits["train"]), len(splits["test"])) == (266, 133)
        defective.append(sum(bool(item[3].read_text().strip()) for item in splits["test"]))
    # The defective label files are 005, 012, ..., 123 (16 below 133), 134 ... 262 (19
    # from 133 to 265) and 267 ... 393 (17 from 266).
    assert defective == [16, 19, 17]
