"""SSD's default boxes (Liu et al. 2016, section 2.2): a set of scales per feature map."""

import math

import numpy as np


def default_box_scales(num_maps: int, min_scale: float, max_scale: float) -> list:
    """SSD's scales `s_k = s_min + (s_max - s_min) (k - 1) / (m - 1)`, `k = 1..m`, and
    `s_{m+1} = 1` for the extra box of the last map (as TF Object Detection's SSD
    anchors), in fractions of the image's shorter side."""
    if num_maps == 1:
        return [min_scale, 1.0]
    step = (max_scale - min_scale) / (num_maps - 1)
    return [min_scale + step * k for k in range(num_maps)] + [1.0]


def feature_map_sizes(image_size: tuple, first_level: int, num_maps: int) -> list:
    """`(rows, cols)` of the maps at strides `2**first_level` and up, each half the last.

    The ResNet's stride-2 layers and SSD's extra layers pad ("same"), so each level is
    `ceil` of half the one before, which is `ceil(size / stride)`.
    """
    return [
        tuple(math.ceil(size / 2**level) for size in image_size)
        for level in range(first_level, first_level + num_maps)
    ]


def boxes_per_location(aspect_ratios: tuple) -> int:
    """One box per aspect ratio, and the extra square box when 1 is among them."""
    return len(aspect_ratios) + (1.0 in aspect_ratios)


def generate_default_boxes(
    image_size: tuple,
    map_sizes: list,
    min_scale: float = 0.2,
    max_scale: float = 0.9,
    aspect_ratios: tuple = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0),
) -> np.ndarray:
    """The default boxes of every feature map, in the order the predictors emit them.

    For map k of `(rows, cols)`, for each row, column and box: centred at
    `((i + 0.5) / rows * height, (j + 0.5) / cols * width)`, with width
    `s_k * sqrt(a) * side` and height `s_k / sqrt(a) * side` for each aspect ratio
    `a` (width / height), where `side` is the image's shorter side (so that `a` is
    the box's shape in pixels on images that are not square); after the box of ratio
    1, the extra square box of scale `sqrt(s_k * s_{k+1})`.

    Args:
      image_size: `(height, width)` of the model input.
      map_sizes: `(rows, cols)` of each feature map, finest first.
      min_scale, max_scale: `s_min`, `s_max` of `default_box_scales`.
      aspect_ratios: width / height of the boxes at each location.

    Returns:
      float32 `[A, 4]` boxes as `ymin, xmin, ymax, xmax` in pixels.
    """
    height, width = image_size
    side = min(height, width)
    scales = default_box_scales(len(map_sizes), min_scale, max_scale)
    maps = []
    for k, (rows, cols) in enumerate(map_sizes):
        half_extents = []  # (height, width) / 2 of each box at a location.
        for ratio in aspect_ratios:
            box_side = scales[k] * side
            half_extents.append((box_side / math.sqrt(ratio) / 2, box_side * math.sqrt(ratio) / 2))
            if ratio == 1.0:
                extra = math.sqrt(scales[k] * scales[k + 1]) * side
                half_extents.append((extra / 2, extra / 2))
        centers_y = (np.arange(rows) + 0.5) / rows * height
        centers_x = (np.arange(cols) + 0.5) / cols * width
        grid_y, grid_x = np.meshgrid(centers_y, centers_x, indexing="ij")
        centers = np.stack([grid_y, grid_x], axis=-1)[:, :, None, :]
        half_extents = np.array(half_extents)
        boxes = np.concatenate([centers - half_extents, centers + half_extents], axis=-1)
        maps.append(boxes.reshape(-1, 4))
    return np.concatenate(maps, axis=0).astype(np.float32)
