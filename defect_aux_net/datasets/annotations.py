"""Conversions between annotation kinds: masks to boxes."""

import numpy as np
import scipy.ndimage


def boxes_from_mask(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns one box per 8-connected component of each class channel of `mask`.

    Args:
      mask: `[H, W, K]` binary mask (bool or 0/1 integers), one channel per class.

    Returns:
      `(bboxes, labels)`: float32 `[N, 4]` boxes as normalised `ymin, xmin, ymax,
      xmax` (TFDS `BBoxFeature`; the max edges are exclusive, so a one-pixel
      component at row r spans `r / H .. (r + 1) / H`) and int64 `[N]` class
      indices, ordered by class, then by `ymin`, then by `xmin`.
    """
    if mask.ndim != 3:
        raise ValueError(f"mask must be [H, W, K], got shape {mask.shape}.")
    height, width, num_classes = mask.shape
    boxes, labels = [], []
    eight_connected = np.ones((3, 3), dtype=bool)
    for class_index in range(num_classes):
        components, _ = scipy.ndimage.label(mask[..., class_index] > 0, eight_connected)
        class_boxes = [
            (rows.start / height, cols.start / width, rows.stop / height, cols.stop / width)
            for rows, cols in scipy.ndimage.find_objects(components)
        ]
        class_boxes.sort()
        boxes.extend(class_boxes)
        labels.extend([class_index] * len(class_boxes))
    return (
        np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        np.asarray(labels, dtype=np.int64),
    )
