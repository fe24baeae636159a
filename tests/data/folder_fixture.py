"""`defect_folder/train_test`: 100 grey 32x32 images with image labels, split 80/20 train/test.

A dataset without a validation split, as DAGM, the builders' seeded 80/20 splits and
most users' folders are. Tests build it with `build_train_test_folder` from a fixture
of their own (`shared_across_workers` where subprocesses read it).
"""

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from defect_aux_net.data import datasets

NAME = "defect_folder/train_test"
CLASS_NAMES = ("crack", "pit")


def image_classes(index: int) -> tuple:
    """The classes of image `index`: 20 % crack, 20 % pit, 10 % both, half none."""
    return _CLASSES.get(index % 10, ())


_CLASSES = {0: ("crack",), 5: ("crack",), 1: ("pit",), 6: ("pit",), 2: ("crack", "pit")}


def defect_folder_classes() -> tuple:
    """`(Builder, DefectFolderConfig)` of the registered defect_folder builder.

    Its module may be imported already under another name (pytest imports the
    builder's own tests as `defect_folder.*`); importing it as
    `tfds_builders.defect_folder.*` too would register the dataset twice.
    """
    datasets._import_our_builder("defect_folder")
    builder = tfds.builder_cls("defect_folder")
    return builder, type(builder.BUILDER_CONFIGS[0])


def build_train_test_folder(folder) -> str:
    """Writes the images and `dataset.yaml` under `folder`, builds them; returns the data_dir."""
    Builder, DefectFolderConfig = defect_folder_classes()
    root = folder / "images_root"
    (root / "images").mkdir(parents=True)
    (root / "dataset.yaml").write_text(
        f"names: [{', '.join(CLASS_NAMES)}]\nannotation: csv\nchannels: 1\n"
        "split: {train: 0.8, test: 0.2}\n"
    )
    rng = np.random.default_rng(0)
    rows = ["image,label"]
    for index in range(100):
        name = f"part{index:03d}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(root / "images" / name)
        rows += [f"{name},{label}" for label in image_classes(index)] or [f"{name},"]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    data_dir = folder / "tfds"
    config = DefectFolderConfig(name=NAME.split("/")[1], dataset_yaml=str(root / "dataset.yaml"))
    Builder(data_dir=str(data_dir), config=config).download_and_prepare()
    return str(data_dir)
