"""Builds NEU-DET from the real Ultralytics copy in `<repo>/../shared/data` (CI has it)."""

import numpy as np
import pytest
import tensorflow_datasets as tfds
from etils import epath

from . import neu_det_dataset_builder

_DATA = epath.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "neu_det"

pytestmark = pytest.mark.skipif(
    not _DATA.is_dir(), reason=f"real NEU-DET data not found at {_DATA}"
)


def test_real_neu_det_builds_with_the_expected_splits_and_boxes(tmp_path):
    builder = neu_det_dataset_builder.Builder(data_dir=tmp_path)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=_DATA))

    assert {name: split.num_examples for name, split in builder.info.splits.items()} == {
        "train": 1440,
        "validation": 360,
    }
    assert builder.info.features["objects"]["label"].names == list(
        neu_det_dataset_builder.CLASS_NAMES
    )
    for split, folder in (("train", "train"), ("validation", "val")):
        expected_boxes = sum(
            sum(1 for line in path.read_text().splitlines() if line.strip())
            for path in (_DATA / "labels" / folder).glob("*.txt")
        )
        dataset = builder.as_dataset(split=split).map(
            lambda example: {
                "image_id": example["image_id"],
                "box_labels": example["objects"]["label"],
                "labels": example["labels"],
                "flags": [example["is_defective"], example["has_boxes"], example["has_mask"]],
            }
        )
        num_boxes = 0
        for example in tfds.as_numpy(dataset):
            # File names start with the class of the image, e.g. `pitted_surface_12`.
            class_name = example["image_id"].decode().rsplit("_", 1)[0]
            class_index = neu_det_dataset_builder.CLASS_NAMES.index(class_name)
            assert example["labels"][class_index] == 1
            np.testing.assert_array_equal(np.flatnonzero(example["labels"]), np.unique(example["box_labels"]))
            assert example["flags"].tolist() == [True, True, False]
            num_boxes += len(example["box_labels"])
        assert num_boxes == expected_boxes
