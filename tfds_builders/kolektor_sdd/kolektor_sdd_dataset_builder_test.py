"""TFDS harness tests of the KolektorSDD builder, one per accepted layout."""

from etils import epath
import tensorflow_datasets as tfds

from . import kolektor_sdd_dataset_builder


_DUMMY_DATA = epath.Path(__file__).parent / "dummy_data"


class KolektorSddOriginalLayoutTest(tfds.testing.DatasetBuilderTestCase):
    """Five `kosNN` folders; seed 0 puts kos02 (one part) in validation."""

    DATASET_CLASS = kolektor_sdd_dataset_builder.Builder
    EXAMPLE_DIR = _DUMMY_DATA / "original"
    SPLITS = {"train": 7, "validation": 1}


class KolektorSddYoloLayoutTest(tfds.testing.DatasetBuilderTestCase):
    """The Ultralytics copy: its own split, `val` becoming `validation`."""

    DATASET_CLASS = kolektor_sdd_dataset_builder.Builder
    EXAMPLE_DIR = _DUMMY_DATA / "yolo"
    SPLITS = {"train": 2, "validation": 3}


if __name__ == "__main__":
    tfds.testing.test_main()
