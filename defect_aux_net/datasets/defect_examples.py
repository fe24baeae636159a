"""Assembling one example of the shared defect feature schema (see `features.py`)."""

from typing import Any, Sequence

import numpy as np

from defect_aux_net.datasets.annotations import boxes_from_mask


def defect_example(
    image: bytes | np.ndarray,
    image_id: str,
    height: int,
    width: int,
    num_classes: int,
    mask: np.ndarray | None = None,
    bboxes: np.ndarray | None = None,
    box_labels: np.ndarray | None = None,
    image_labels: Sequence[int] = (),
) -> dict[str, Any]:
    """Returns the feature dict of one image from whatever the source annotates.

    The multi-hot `labels` and `is_defective` are the union of the mask's classes,
    the boxes' classes and `image_labels`, so they always agree with the
    annotations. A source that annotates masks but no boxes gets the mask's
    connected components as boxes, so every masked example trains detection too.

    Args:
      image: encoded bytes or uint8 `[H, W, C]` pixels.
      image_id: the source's name of the image.
      height: image height.
      width: image width.
      num_classes: number of defect classes K.
      mask: uint8 `[H, W, K]` binary mask, None where the source has no masks.
      bboxes: float32 `[N, 4]` normalised boxes; None for the mask's connected
        components, or for no boxes where there is no mask either.
      box_labels: int64 `[N]` class indices of `bboxes`.
      image_labels: class indices of image-level labels (e.g. from a CSV).
    """
    has_mask = mask is not None
    has_boxes = has_mask or bboxes is not None
    if mask is None:
        mask = np.zeros((height, width, num_classes), dtype=np.uint8)
    if bboxes is None:
        bboxes, box_labels = boxes_from_mask(mask)
    labels = np.zeros(num_classes, dtype=np.uint8)
    labels[mask.reshape(-1, num_classes).any(axis=0)] = 1
    labels[np.asarray(box_labels, dtype=np.int64)] = 1
    labels[np.asarray(image_labels, dtype=np.int64)] = 1
    return {
        "image": image,
        "segmentation_mask": mask.astype(np.uint8),
        "objects": {"bbox": bboxes, "label": box_labels},
        "labels": labels,
        "is_defective": bool(labels.any()),
        "has_mask": has_mask,
        "has_boxes": has_boxes,
        "image_id": image_id,
    }
