"""TFDS harness tests of the KolektorSDD builder: each layout's default split and a fold."""

from etils import epath
import tensorflow_datasets as tfds

from . import kolektor_sdd_dataset_builder


_DUMMY_DATA = epath.Path(__file__).parent / "dummy_data"


class KolektorSddOriginalLayoutTest(tfds.testing.DatasetBuilderTestCase):
    """Five `kosNN` folders; seed 0 puts kos02 (one part) in validation."""

    DATASET_CLASS = kolektor_sdd_dataset_builder.Builder
    EXAMPLE_DIR = _DUMMY_DATA / "original"
    BUILDER_CONFIG_NAMES_TO_TEST = [""]
    SPLITS = {"train": 7, "validation": 1}


class KolektorSddOriginalLayoutFoldTest(tfds.testing.DatasetBuilderTestCase):
    """Fold 1 of 5 folders cut 2 / 2 / 1: kos01 and kos02 (3 parts) tested, 5 trained."""

    DATASET_CLASS = kolektor_sdd_dataset_builder.Builder
    EXAMPLE_DIR = _DUMMY_DATA / "original"
    BUILDER_CONFIG_NAMES_TO_TEST = ["fold1"]
    SPLITS = {"train": 5, "test": 3}


class KolektorSddYoloLayoutTest(tfds.testing.DatasetBuilderTestCase):
    """The Ultralytics copy: its own split, `val` becoming `validation`."""

    DATASET_CLASS = kolektor_sdd_dataset_builder.Builder
    EXAMPLE_DIR = _DUMMY_DATA / "yolo"
    BUILDER_CONFIG_NAMES_TO_TEST = [""]
    SPLITS = {"train": 2, "validation": 3}


class KolektorSddYoloLayoutFoldTest(tfds.testing.DatasetBuilderTestCase):
    """Fold 3 of the pooled 000-004 cut 2 / 2 / 1: 004 tested, 000-003 trained."""

    DATASET_CLASS = kolektor_sdd_dataset_builder.Builder
    EXAMPLE_DIR = _DUMMY_DATA / "yolo"
    BUILDER_CONFIG_NAMES_TO_TEST = ["fold3"]
    SPLITS = {"train": 4, "test": 1}


if __name__ == "__main__":
    tfds.testing.test_main()
