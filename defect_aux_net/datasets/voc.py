"""Pascal VOC XML annotations: one `<object>` with `<name>` and `<bndbox>` per box."""

import dataclasses
import xml.etree.ElementTree as ElementTree
from typing import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class VocAnnotation:
    """The boxes of one VOC XML file.

    Attributes:
      height: image height the boxes were normalised by.
      width: image width the boxes were normalised by.
      bboxes: float32 `[N, 4]` normalised `ymin, xmin, ymax, xmax`.
      labels: int64 `[N]` class indices.
    """

    height: int
    width: int
    bboxes: np.ndarray
    labels: np.ndarray


def _child_text(element: ElementTree.Element, tag: str, source: str) -> str:
    """Returns the stripped text of `element`'s child `tag`, or raises naming it."""
    child = element.find(tag)
    if child is None or not (child.text or "").strip():
        raise ValueError(f"{source}: <{element.tag}> has no <{tag}>.")
    return child.text.strip()


def _number(element: ElementTree.Element, tag: str, source: str) -> float:
    text = _child_text(element, tag, source)
    try:
        return float(text)
    except ValueError as error:
        raise ValueError(f"{source}: <{tag}> is not a number: {text!r}.") from error


def _image_size(root: ElementTree.Element, source: str) -> tuple[int | None, int | None]:
    size = root.find("size")
    if size is None:
        return None, None
    height, width = _number(size, "height", source), _number(size, "width", source)
    if height <= 0 or width <= 0:
        raise ValueError(f"{source}: <size> must be positive, got {height} x {width}.")
    return int(height), int(width)


def parse_voc_xml(
    text: str,
    class_names: Sequence[str],
    source: str,
    image_size: tuple[int, int] | None = None,
) -> VocAnnotation:
    """Parses a VOC XML annotation into normalised boxes.

    Pixel coordinates are divided by the image size as TFDS's own `voc` builder
    does (`xmin / width`, `xmax / width`).

    Args:
      text: the XML file's content.
      class_names: class names in class-index order; `<name>` must be one of them.
      source: the file's name, for error messages.
      image_size: `(height, width)` of the decoded image. Required where the XML
        has no `<size>`; where it has one, both must agree.

    Returns:
      The annotation, boxes in file order.

    Raises:
      ValueError: naming `source` and the bad value, for malformed XML, an unknown
        class name, a `<size>` that differs from `image_size`, or a box that is
        empty or reaches outside the image.
    """
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as error:
        raise ValueError(f"{source}: not valid VOC XML ({error}).") from error
    height, width = _image_size(root, source)
    if image_size is not None:
        if height is not None and (height, width) != tuple(image_size):
            raise ValueError(
                f"{source}: <size> says {height} x {width} (height x width) but the "
                f"image is {image_size[0]} x {image_size[1]}."
            )
        height, width = image_size
    if height is None:
        raise ValueError(f"{source}: no <size> and no image size given.")

    boxes, labels = [], []
    for element in root.iter("object"):
        name = _child_text(element, "name", source)
        if name not in class_names:
            raise ValueError(
                f"{source}: unknown class name {name!r}; expected one of {list(class_names)}."
            )
        bndbox = element.find("bndbox")
        if bndbox is None:
            raise ValueError(f"{source}: <object> {name!r} has no <bndbox>.")
        xmin, ymin, xmax, ymax = (
            _number(bndbox, tag, source) for tag in ("xmin", "ymin", "xmax", "ymax")
        )
        if not (0 <= xmin < xmax <= width and 0 <= ymin < ymax <= height):
            raise ValueError(
                f"{source}: box xmin, ymin, xmax, ymax {[xmin, ymin, xmax, ymax]} of "
                f"{name!r} is empty or outside the {width} x {height} (width x height) image."
            )
        boxes.append([ymin / height, xmin / width, ymax / height, xmax / width])
        labels.append(list(class_names).index(name))
    return VocAnnotation(
        height=height,
        width=width,
        bboxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        labels=np.asarray(labels, dtype=np.int64),
    )
