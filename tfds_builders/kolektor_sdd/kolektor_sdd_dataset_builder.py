"""KolektorSDD: commutator surfaces with cracks, pixel masks, one defect class."""

import dataclasses
from typing import Callable, Iterator

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from defect_aux_net.datasets.defect_examples import defect_example
from defect_aux_net.datasets.features import defect_features
from defect_aux_net.datasets.image_files import (
    SourceImage,
    list_images,
    pair_with_annotations,
    read_image,
    read_mask,
)
from defect_aux_net.datasets.polygons import rasterize_polygons
from defect_aux_net.datasets.seeded_splits import seeded_split
from defect_aux_net.datasets.yolo import find_ultralytics_splits, parse_yolo_segmentation

from . import kolektor_sdd_folds

CLASS_NAMES = ("defect",)
# The original release has no split. Whole `kosNN` folders (the parts of one
# commutator) go to one split, so no commutator is seen in training and validation.
FOLDER_SPLIT_FRACTIONS = {"train": 0.8, "validation": 0.2}
FOLDER_SPLIT_SEED = 0
_LABEL_SUFFIX = "_label.bmp"

# (key, image_id, image file, annotation file)
Item = tuple[str, str, epath.Path, epath.Path]
ReadMask = Callable[[epath.Path, SourceImage], np.ndarray]


@dataclasses.dataclass(eq=False)
class KolektorSddConfig(tfds.core.BuilderConfig):
    """The default split, or one fold of the papers' 3-fold cross-validation.

    Attributes:
      fold: 1..3: `test` is that fold, `train` the other two; None: the default
        `train` / `validation` split.
    """

    fold: int | None = None


def _read_label_bitmap(path: epath.Path, image: SourceImage) -> np.ndarray:
    """Original masks: any non-zero pixel is defect."""
    values = read_mask(path, image.height, image.width)
    return (values > 0).astype(np.uint8)[..., None]


def _read_polygons(path: epath.Path, image: SourceImage) -> np.ndarray:
    """Ultralytics masks: outer contours, rasterised back to pixels."""
    polygons = parse_yolo_segmentation(path.read_text(), len(CLASS_NAMES), str(path))
    return rasterize_polygons(polygons, image.height, image.width, len(CLASS_NAMES))


def _original_items(folder: epath.Path) -> list[Item]:
    """Pairs `PartK.jpg` with `PartK_label.bmp` in one `kosNN` folder."""
    images = [path for path in list_images(folder) if not path.name.endswith(_LABEL_SUFFIX)]
    return [
        (f"{folder.name}/{image.name}", f"{folder.name}/{image.stem}", image, label)
        for image, label in pair_with_annotations(images, folder.iterdir(), _LABEL_SUFFIX)
    ]


def _yolo_items(images: epath.Path, labels: epath.Path) -> list[Item]:
    return [
        (image.name, image.stem, image, label)
        for image, label in pair_with_annotations(list_images(images), labels.iterdir(), ".txt")
    ]


def original_fold_folders(root: epath.Path, folders: list[str], fold: int) -> dict:
    """`{"train": folders, "test": folders}` of `fold` (1-based) in the original layout:
    the reference's `split.pyb` when `root` holds it, else `contiguous_folds`."""
    split_file = root / kolektor_sdd_folds.SPLIT_FILE
    if split_file.exists():
        folds = kolektor_sdd_folds.read_reference_folds(split_file, folders)
    else:
        folds = kolektor_sdd_folds.contiguous_folds(folders)
    test = folds[fold - 1]
    return {"train": [name for name in sorted(folders) if name not in test], "test": test}


def yolo_fold_items(items_by_split: dict, fold: int) -> dict:
    """`{"train": items, "test": items}` of `fold` (1-based) in the Ultralytics layout: the
    copy's splits pooled, its images cut by `contiguous_folds` of their file names."""
    items = {item[0]: item for split_items in items_by_split.values() for item in split_items}
    names = [item[0] for split_items in items_by_split.values() for item in split_items]
    if len(items) != len(names):
        repeated = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(
            f"Image names {repeated[:5]} occur in several split folders: the folds pool "
            "the splits and need distinct names."
        )
    test = set(kolektor_sdd_folds.contiguous_folds(list(items))[fold - 1])
    return {
        "train": [items[name] for name in sorted(items) if name not in test],
        "test": [items[name] for name in sorted(test)],
    }


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for KolektorSDD, from its original release or an Ultralytics copy."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: original and Ultralytics YOLO layouts."}
    # The default config's name is empty so that its data stays where the builder
    # without configs put it (`<data_dir>/kolektor_sdd/1.0.0`): `kolektor_sdd` is what
    # it was, and copies built before the folds existed keep loading.
    BUILDER_CONFIGS = [
        KolektorSddConfig(
            name="", description="train / validation: the copy's own, or 80/20 by folder."
        ),
        *(
            KolektorSddConfig(
                name=f"fold{fold}",
                description=f"3-fold cross-validation: test = fold {fold}, train = the others.",
                fold=fold,
            )
            for fold in range(1, kolektor_sdd_folds.NUM_FOLDS + 1)
        ),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download KolektorSDD from https://www.vicos.si/resources/kolektorsdd/ (licence
    CC BY-NC-SA 4.0), extract it and pass the folder to `--manual_dir`. Either
    layout is accepted:

    * Original release (split 80/20 by folder here, seed 0):
        kos01/ ... kos50/, each with PartK.jpg and PartK_label.bmp
        (a label pixel > 0 is defect). For the papers' folds (configs fold1..3),
        put `split.pyb` from KolektorSDD-training-splits.zip beside the folders.
    * Ultralytics YOLO segmentation copy (its own split):
        images/{train,val}/NNN.jpg  and  labels/{train,val}/NNN.txt
      with lines `0 x1 y1 ... xn yn` (normalised outer contours); an empty
      label file marks a defect-free image.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=defect_features(CLASS_NAMES, channels=1, image_encoding="jpeg"),
            homepage="https://www.vicos.si/resources/kolektorsdd/",
            supervised_keys=None,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = dl_manager.manual_dir
        fold = self.builder_config.fold
        folders = sorted(
            path for path in root.iterdir() if path.is_dir() and path.name.startswith("kos")
        )
        if folders:
            by_folder = {folder.name: folder for folder in folders}
            if fold is None:
                names = seeded_split(list(by_folder), FOLDER_SPLIT_FRACTIONS, FOLDER_SPLIT_SEED)
            else:
                names = original_fold_folders(root, list(by_folder), fold)
            return {
                split: self._generate_examples(
                    [item for name in split_names for item in _original_items(by_folder[name])],
                    _read_label_bitmap,
                )
                for split, split_names in names.items()
            }
        if (root / "labels").is_dir():
            items = {
                split: _yolo_items(images, labels)
                for split, (images, labels) in find_ultralytics_splits(root).items()
            }
            if fold is not None:
                items = yolo_fold_items(items, fold)
            return {
                split: self._generate_examples(split_items, _read_polygons)
                for split, split_items in items.items()
            }
        raise FileNotFoundError(
            f"{root} is in neither KolektorSDD layout: found "
            f"{sorted(path.name for path in root.iterdir())[:10]}.\n"
            f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}"
        )

    def _generate_examples(
        self, items: list[Item], read_defect_mask: ReadMask
    ) -> Iterator[tuple[str, dict]]:
        """Yields one example per image; boxes are the mask's connected components."""
        for key, image_id, image_path, annotation_path in items:
            image = read_image(image_path, channels=1)
            mask = read_defect_mask(annotation_path, image)
            yield key, defect_example(
                image.feature_value("jpeg"),
                image_id=image_id,
                height=image.height,
                width=image.width,
                num_classes=len(CLASS_NAMES),
                mask=mask,
            )
