"""NEU surface defect database (NEU-DET): hot-rolled steel strip, six classes, boxes."""

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
)
from defect_aux_net.datasets.seeded_splits import seeded_split
from defect_aux_net.datasets.voc import parse_voc_xml
from defect_aux_net.datasets.yolo import find_ultralytics_splits, parse_yolo_detection

CLASS_NAMES = (
    "crazing",
    "inclusion",
    "patches",
    "pitted_surface",
    "rolled-in_scale",
    "scratches",
)
# The original VOC release has no split; this one is fixed by its seed.
VOC_SPLIT_FRACTIONS = {"train": 0.8, "validation": 0.2}
VOC_SPLIT_SEED = 0

ReadBoxes = Callable[[epath.Path, SourceImage], tuple[np.ndarray, np.ndarray]]


def _read_voc_boxes(path: epath.Path, image: SourceImage) -> tuple[np.ndarray, np.ndarray]:
    annotation = parse_voc_xml(
        path.read_bytes(), CLASS_NAMES, str(path), (image.height, image.width)
    )
    return annotation.bboxes, annotation.labels


def _read_yolo_boxes(path: epath.Path, image: SourceImage) -> tuple[np.ndarray, np.ndarray]:
    del image  # YOLO coordinates are already normalised.
    return parse_yolo_detection(path.read_text(), len(CLASS_NAMES), str(path))


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for NEU-DET, from its VOC release or an Ultralytics YOLO copy."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: VOC and Ultralytics YOLO layouts."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download NEU-DET from the NEU surface defect database page
    (http://faculty.neu.edu.cn/songkechen/zh_CN/zdylm/263270/list/index.htm) and
    pass the folder to `--manual_dir`. Either layout is accepted:

    * VOC release (split 80/20 here, seed 0):
        IMAGES/<name>.jpg  and  ANNOTATIONS/<name>.xml
    * Ultralytics YOLO detection copy (its own split):
        images/{train,val}/<name>.jpg  and  labels/{train,val}/<name>.txt
      with lines `class_id cx cy w h`, class ids 0-5 in the order crazing,
      inclusion, patches, pitted_surface, rolled-in_scale, scratches.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=defect_features(CLASS_NAMES, channels=3, image_encoding="jpeg"),
            homepage="http://faculty.neu.edu.cn/songkechen/zh_CN/zdylm/263270/list/index.htm",
            supervised_keys=None,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = dl_manager.manual_dir
        # Checked before `labels`: on case-insensitive file systems `IMAGES`
        # and `images` are the same folder.
        if (root / "ANNOTATIONS").is_dir():
            pairs = pair_with_annotations(
                list_images(root / "IMAGES"), (root / "ANNOTATIONS").iterdir(), ".xml"
            )
            by_name = {image.name: (image, xml) for image, xml in pairs}
            names = seeded_split(list(by_name), VOC_SPLIT_FRACTIONS, VOC_SPLIT_SEED)
            return {
                split: self._generate_examples(
                    [by_name[name] for name in split_names], _read_voc_boxes
                )
                for split, split_names in names.items()
            }
        if (root / "labels").is_dir():
            return {
                split: self._generate_examples(
                    pair_with_annotations(list_images(images), labels.iterdir(), ".txt"),
                    _read_yolo_boxes,
                )
                for split, (images, labels) in find_ultralytics_splits(root).items()
            }
        raise FileNotFoundError(
            f"{root} is in neither NEU-DET layout: found "
            f"{sorted(path.name for path in root.iterdir())[:10]}.\n"
            f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}"
        )

    def _generate_examples(
        self, pairs: list[tuple[epath.Path, epath.Path]], read_boxes: ReadBoxes
    ) -> Iterator[tuple[str, dict]]:
        """Yields one example per `(image, annotation)` pair, keyed by file name."""
        for image_path, annotation_path in pairs:
            image = read_image(image_path, channels=3)
            bboxes, labels = read_boxes(annotation_path, image)
            if not labels.size:
                raise ValueError(
                    f"{annotation_path}: no boxes, but every NEU-DET image shows a defect."
                )
            yield image_path.name, defect_example(
                image.feature_value("jpeg"),
                image_id=image_path.stem,
                height=image.height,
                width=image.width,
                num_classes=len(CLASS_NAMES),
                bboxes=bboxes,
                box_labels=labels,
            )
