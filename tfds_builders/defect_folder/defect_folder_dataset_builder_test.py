"""TFDS harness tests of the defect_folder builder, one per annotation kind."""

import pytest
from etils import epath
import tensorflow_datasets as tfds

from . import defect_folder_dataset_builder
from .defect_folder_dataset_builder import DefectFolderConfig


_DUMMY_DATA = epath.Path(__file__).parent / "dummy_data"


def _config(kind: str) -> DefectFolderConfig:
    return DefectFolderConfig(name=kind, dataset_yaml=str(_DUMMY_DATA / kind / "dataset.yaml"))


class _FolderTestCase(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = defect_folder_dataset_builder.Builder
    EXAMPLE_DIR = _DUMMY_DATA


class DefectFolderExampleConfigTest(_FolderTestCase):
    """The bundled `example` config: index masks, five images split 80/20."""

    SPLITS = {"train": 4, "validation": 1}


class DefectFolderVocTest(_FolderTestCase):
    BUILDER_CONFIG_NAMES_TO_TEST = [_config("voc")]
    SPLITS = {"train": 2, "validation": 1}


class DefectFolderYoloDetectionTest(_FolderTestCase):
    BUILDER_CONFIG_NAMES_TO_TEST = [_config("yolo")]
    SPLITS = {"train": 2, "test": 1}


class DefectFolderYoloSegmentationTest(_FolderTestCase):
    BUILDER_CONFIG_NAMES_TO_TEST = [_config("yolo_segmentation")]
    SPLITS = {"train": 1, "validation": 1}


class DefectFolderCsvTest(_FolderTestCase):
    """Image-level labels with the YAML's own 60/20/20 split."""

    BUILDER_CONFIG_NAMES_TO_TEST = [_config("csv")]
    SPLITS = {"train": 3, "validation": 1, "test": 1}


del _FolderTestCase  # A base, not a test: pytest would run it with no splits.

if __name__ == "__main__":
    tfds.testing.test_main()
