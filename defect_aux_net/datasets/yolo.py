"""Ultralytics YOLO label files: detection (`class cx cy w h`) and segmentation lines.

Both kinds hold one object per line with normalised coordinates. A detection line
is `class_id cx cy w h`; a segmentation line is `class_id x1 y1 x2 y2 ... xn yn`,
the outer contour of one region. An empty file means an image without objects.
"""

import dataclasses

import numpy as np
from etils import epath

# Ultralytics split folder names and the TFDS split each becomes.
ULTRALYTICS_SPLITS = {"train": "train", "val": "validation", "test": "test"}

# Labels written with six decimals can put a box edge a rounding error past the
# image border; such edges are clipped, anything further out is an error.
_EDGE_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True)
class YoloPolygon:
    """One segmentation line: a class index and its contour.

    Attributes:
      label: class index.
      points: float32 `[P, 2]` contour vertices as normalised `(x, y)`.
    """

    label: int
    points: np.ndarray


def _split_lines(text: str) -> list[tuple[int, list[str]]]:
    """Returns `(line_number, fields)` of the non-blank lines of `text`."""
    return [
        (number, line.split())
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


def _parse_values(
    fields: list[str], num_classes: int, source: str, number: int
) -> tuple[int, np.ndarray]:
    """Parses and checks the class id and coordinates of one line."""
    where = f"{source}, line {number}"
    try:
        label = int(fields[0])
        values = np.asarray([float(value) for value in fields[1:]], dtype=np.float64)
    except ValueError as error:
        raise ValueError(
            f"{where}: not a YOLO label line {' '.join(fields)!r} ({error})."
        ) from error
    if not 0 <= label < num_classes:
        raise ValueError(
            f"{where}: unknown class id {label}; the dataset has {num_classes} "
            f"classes (ids 0..{num_classes - 1})."
        )
    outside = values[(values < 0) | (values > 1) | ~np.isfinite(values)]
    if outside.size:
        raise ValueError(
            f"{where}: coordinates must be normalised to [0, 1], got {outside.tolist()}."
        )
    return label, values


def parse_yolo_detection(
    text: str, num_classes: int, source: str
) -> tuple[np.ndarray, np.ndarray]:
    """Parses a YOLO detection label file.

    Args:
      text: the file's content.
      num_classes: number of classes; ids must lie in `0..num_classes - 1`.
      source: the file's name, for error messages.

    Returns:
      `(bboxes, labels)`: float32 `[N, 4]` normalised `ymin, xmin, ymax, xmax`
      (TFDS `BBoxFeature` order) and int64 `[N]` class ids, in file order.

    Raises:
      ValueError: naming `source`, the line and the bad value, for a line without
        exactly five fields, an unknown class id, coordinates outside [0, 1], an
        empty box or a box reaching outside the image.
    """
    boxes, labels = [], []
    for number, fields in _split_lines(text):
        if len(fields) != 5:
            raise ValueError(
                f"{source}, line {number}: a detection line has 5 fields "
                f"`class_id cx cy w h`, got {len(fields)}: {' '.join(fields)!r}."
            )
        label, (cx, cy, width, height) = _parse_values(fields, num_classes, source, number)
        if width <= 0 or height <= 0:
            raise ValueError(
                f"{source}, line {number}: empty box, width {width} height {height}."
            )
        edges = np.array(
            [cy - height / 2, cx - width / 2, cy + height / 2, cx + width / 2]
        )
        if edges.min() < -_EDGE_TOLERANCE or edges.max() > 1 + _EDGE_TOLERANCE:
            raise ValueError(
                f"{source}, line {number}: box ymin, xmin, ymax, xmax "
                f"{edges.round(6).tolist()} reaches outside the image [0, 1]."
            )
        boxes.append(np.clip(edges, 0.0, 1.0))
        labels.append(label)
    return (
        np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        np.asarray(labels, dtype=np.int64),
    )


def parse_yolo_segmentation(text: str, num_classes: int, source: str) -> list[YoloPolygon]:
    """Parses a YOLO segmentation label file.

    Args:
      text: the file's content.
      num_classes: number of classes; ids must lie in `0..num_classes - 1`.
      source: the file's name, for error messages.

    Returns:
      One `YoloPolygon` per line, in file order.

    Raises:
      ValueError: naming `source`, the line and the bad value, for an odd number
        of coordinates, fewer than three vertices, an unknown class id or
        coordinates outside [0, 1].
    """
    polygons = []
    for number, fields in _split_lines(text):
        label, values = _parse_values(fields, num_classes, source, number)
        if values.size % 2 or values.size < 6:
            raise ValueError(
                f"{source}, line {number}: a segmentation line needs `class_id` and "
                f"at least three `x y` pairs, got {values.size} coordinates."
            )
        polygons.append(YoloPolygon(label, values.reshape(-1, 2).astype(np.float32)))
    return polygons


def find_ultralytics_splits(root: epath.PathLike) -> dict[str, tuple[epath.Path, epath.Path]]:
    """Finds `images/<split>/` and `labels/<split>/` folders of an Ultralytics dataset.

    Args:
      root: the dataset folder (the one holding `images/` and `labels/`).

    Returns:
      TFDS split name (`train`, `validation`, `test`) to `(images_dir,
      labels_dir)`, for each of `train`, `val`, `test` present under `images/`.

    Raises:
      FileNotFoundError: naming the folder, where `images/` has none of those
        split folders or a split has images but no labels folder.
    """
    root = epath.Path(root)
    splits = {}
    for folder, split in ULTRALYTICS_SPLITS.items():
        images, labels = root / "images" / folder, root / "labels" / folder
        if not images.is_dir():
            continue
        if not labels.is_dir():
            raise FileNotFoundError(f"{images} has no matching labels folder {labels}.")
        splits[split] = (images, labels)
    if not splits:
        raise FileNotFoundError(
            f"{root / 'images'} has none of the Ultralytics split folders "
            f"{list(ULTRALYTICS_SPLITS)}."
        )
    return splits
