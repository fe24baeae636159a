"""KolektorSDD: commutator surfaces with cracks, pixel masks, one defect class."""

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

CLASS_NAMES = ("defect",)
# The original release has no split. Whole `kosNN` folders (the parts of one
# commutator) go to one split, so no commutator is seen in training and validation.
FOLDER_SPLIT_FRACTIONS = {"train": 0.8, "validation": 0.2}
FOLDER_SPLIT_SEED = 0
_LABEL_SUFFIX = "_label.bmp"

# (key, image_id, image file, annotation file)
Item = tuple[str, str, epath.Path, epath.Path]
ReadMask = Callable[[epath.Path, SourceImage], np.ndarray]


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


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for KolektorSDD, from its original release or an Ultralytics copy."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: original and Ultralytics YOLO layouts."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download KolektorSDD from https://www.vicos.si/resources/kolektorsdd/ (licence
    CC BY-NC-SA 4.0), extract it and pass the folder to `--manual_dir`. Either
    layout is accepted:

    * Original release (split 80/20 by folder here, seed 0):
        kos01/ ... kos50/, each with PartK.jpg and PartK_label.bmp
        (a label pixel > 0 is defect).
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
        folders = sorted(
            path for path in root.iterdir() if path.is_dir() and path.name.startswith("kos")
        )
        if folders:
            by_folder = {folder.name: folder for folder in folders}
            names = seeded_split(list(by_folder), FOLDER_SPLIT_FRACTIONS, FOLDER_SPLIT_SEED)
            return {
                split: self._generate_examples(
                    [item for name in split_names for item in _original_items(by_folder[name])],
                    _read_label_bitmap,
                )
                for split, split_names in names.items()
            }
        if (root / "labels").is_dir():
            return {
                split: self._generate_examples(
                    [
                        (image.name, image.stem, image, label)
                        for image, label in pair_with_annotations(
                            list_images(images), labels.iterdir(), ".txt"
                        )
                    ],
                    _read_polygons,
                )
                for split, (images, labels) in find_ultralytics_splits(root).items()
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
