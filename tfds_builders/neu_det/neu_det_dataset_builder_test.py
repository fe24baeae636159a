"""TFDS harness tests of the NEU-DET builder, one per accepted layout."""

from etils import epath
import tensorflow_datasets as tfds

from . import neu_det_dataset_builder


_DUMMY_DATA = epath.Path(__file__).parent / "dummy_data"


class NeuDetVocLayoutTest(tfds.testing.DatasetBuilderTestCase):
    """The VOC release: five images, split 80/20 by the builder's seed."""

    DATASET_CLASS = neu_det_dataset_builder.Builder
    EXAMPLE_DIR = _DUMMY_DATA / "voc"
    SPLITS = {"train": 4, "validation": 1}


class NeuDetYoloLayoutTest(tfds.testing.DatasetBuilderTestCase):
    """The Ultralytics copy: its own split, `val` becoming `validation`."""

    DATASET_CLASS = neu_det_dataset_builder.Builder
    EXAMPLE_DIR = _DUMMY_DATA / "yolo"
    SPLITS = {"train": 3, "validation": 2}


if __name__ == "__main__":
    tfds.testing.test_main()
