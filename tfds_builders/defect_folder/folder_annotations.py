"""Readers that turn one image's annotation, of each kind `dataset.yaml` names, into features.

Each reader takes the annotation (a file, or the class indices a CSV gave the
image), the decoded image and the class count, and returns the keyword
arguments of `defect_example` that the annotation provides.
"""

import csv
import io
from typing import Any, Callable, Sequence

import numpy as np
from etils import epath

from defect_aux_net.datasets.image_files import SourceImage, read_mask
from defect_aux_net.datasets.polygons import rasterize_polygons
from defect_aux_net.datasets.voc import parse_voc_xml
from defect_aux_net.datasets.yolo import parse_yolo_detection, parse_yolo_segmentation

Annotation = dict[str, Any]
Reader = Callable[[Any, SourceImage, Sequence[str]], Annotation]


def read_index_mask(path: epath.Path, image: SourceImage, names: Sequence[str]) -> Annotation:
    """One grey or palette mask per image: 0 background, k + 1 class k."""
    values = read_mask(path, image.height, image.width)
    if values.max() > len(names):
        raise ValueError(
            f"{path}: mask value {int(values.max())} is no class; values are 0 "
            f"(background) or 1..{len(names)} (class index + 1 of {list(names)})."
        )
    mask = values[..., None] == np.arange(1, len(names) + 1, dtype=np.uint8)
    return {"mask": mask.astype(np.uint8)}


def read_voc(path: epath.Path, image: SourceImage, names: Sequence[str]) -> Annotation:
    annotation = parse_voc_xml(path.read_bytes(), names, str(path), (image.height, image.width))
    return {"bboxes": annotation.bboxes, "box_labels": annotation.labels}


def read_yolo_detection(path: epath.Path, image: SourceImage, names: Sequence[str]) -> Annotation:
    del image  # YOLO coordinates are already normalised.
    bboxes, labels = parse_yolo_detection(path.read_text(), len(names), str(path))
    return {"bboxes": bboxes, "box_labels": labels}


def read_yolo_segmentation(
    path: epath.Path, image: SourceImage, names: Sequence[str]
) -> Annotation:
    polygons = parse_yolo_segmentation(path.read_text(), len(names), str(path))
    return {"mask": rasterize_polygons(polygons, image.height, image.width, len(names))}


def read_csv_labels(labels: Sequence[int], image: SourceImage, names: Sequence[str]) -> Annotation:
    del image, names  # The CSV gave the class indices already.
    return {"image_labels": labels}


def load_label_csv(path: epath.Path, names: Sequence[str]) -> dict[str, list[int]]:
    """Reads `labels.csv` with columns `image,label` into image file name -> classes.

    An image may have several rows, or several classes in one `label` separated
    by `;`; an empty `label` marks a defect-free image.

    Raises:
      ValueError: naming the file and row, for missing columns or an unknown class.
    """
    rows = csv.DictReader(io.StringIO(path.read_text()))
    if not rows.fieldnames or not {"image", "label"} <= set(rows.fieldnames):
        raise ValueError(f"{path}: needs the columns `image,label`, got {rows.fieldnames}.")
    labels: dict[str, list[int]] = {}
    for number, row in enumerate(rows, start=2):
        image_labels = labels.setdefault(row["image"].strip(), [])
        for name in filter(None, (part.strip() for part in (row["label"] or "").split(";"))):
            if name not in names:
                raise ValueError(
                    f"{path}, row {number}: unknown class {name!r}; expected one of {list(names)}."
                )
            image_labels.append(names.index(name))
    return labels
