"""Rasterising polygon annotations into per-class binary masks."""

from typing import Iterable

import numpy as np
from PIL import Image, ImageDraw

from defect_aux_net.datasets.yolo import YoloPolygon


def rasterize_polygons(
    polygons: Iterable[YoloPolygon], height: int, width: int, num_classes: int
) -> np.ndarray:
    """Fills each polygon into its class channel of a `[height, width, K]` mask.

    Vertices are normalised `(x, y)` that map to pixel `(x * width, y * height)`.
    Pixels on a polygon's edges count as inside (PIL's fill), so the contour of a
    pixel mask, traced through pixel positions, rasterises back to that mask.

    Args:
      polygons: polygons with class indices below `num_classes`.
      height: mask height in pixels.
      width: mask width in pixels.
      num_classes: number of mask channels.

    Returns:
      uint8 `[height, width, num_classes]` mask of zeros and ones; polygons of one
      class are merged, different classes may overlap.
    """
    channels = [Image.new("L", (width, height), 0) for _ in range(num_classes)]
    scale = np.array([width, height], dtype=np.float64)
    for polygon in polygons:
        vertices = [tuple(point) for point in polygon.points * scale]
        ImageDraw.Draw(channels[polygon.label]).polygon(vertices, fill=1, outline=1)
    return np.stack([np.asarray(channel, dtype=np.uint8) for channel in channels], axis=-1)
