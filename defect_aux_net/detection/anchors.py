"""Anchor boxes of the detection subnets, one set per pyramid level."""

import numpy as np


def generate_anchors(
    image_size: tuple,
    min_level: int,
    max_level: int,
    anchor_size: float = 4.0,
    scales_per_octave: int = 3,
    aspect_ratios: tuple = (0.5, 1.0, 2.0),
) -> np.ndarray:
    """Returns the anchors of every pyramid level, in the order the heads emit them.

    Anchors are static (numpy), as TPUs need: for each level from `min_level` to
    `max_level`, for each feature-map row, column, scale and aspect ratio. The
    side of an anchor at level `l` is `anchor_size * 2**l * 2**(i / scales_per_octave)`
    before the aspect ratio (width / height) stretches it at constant area.

    Args:
      image_size: `(height, width)` of the padded image, multiples of `2**max_level`.
      min_level: finest level.
      max_level: coarsest level.
      anchor_size: anchor side in multiples of the level's stride.
      scales_per_octave: scales per level.
      aspect_ratios: width / height of the anchors at each scale.

    Returns:
      float32 `[A, 4]` anchors as `ymin, xmin, ymax, xmax` in pixels.
    """
    height, width = image_size
    if height % 2**max_level or width % 2**max_level:
        raise ValueError(
            f"image_size {image_size} must be a multiple of 2**max_level = {2**max_level}."
        )
    levels = []
    for level in range(min_level, max_level + 1):
        stride = 2**level
        sides = [
            anchor_size * stride * 2 ** (scale / scales_per_octave)
            for scale in range(scales_per_octave)
        ]
        # [anchors_per_location, 2] half extents (height, width).
        half_extents = np.array(
            [
                (side / np.sqrt(ratio) / 2, side * np.sqrt(ratio) / 2)
                for side in sides
                for ratio in aspect_ratios
            ]
        )
        centers_y = (np.arange(height // stride) + 0.5) * stride
        centers_x = (np.arange(width // stride) + 0.5) * stride
        grid_y, grid_x = np.meshgrid(centers_y, centers_x, indexing="ij")
        # [rows, cols, 1, 2] centers against [anchors_per_location, 2] half extents.
        centers = np.stack([grid_y, grid_x], axis=-1)[:, :, None, :]
        boxes = np.concatenate([centers - half_extents, centers + half_extents], axis=-1)
        levels.append(boxes.reshape(-1, 4))
    return np.concatenate(levels, axis=0).astype(np.float32)


def anchors_for_config(config) -> np.ndarray:
    """Returns the anchors of a `DefectAuxNetConfig`, on its padded input size, or of
    a config that lays its own (`SsdConfig.anchors()`: SSD's default boxes)."""
    if callable(getattr(config, "anchors", None)):
        return config.anchors()
    return generate_anchors(
        config.padded_size,
        config.min_level,
        config.max_level,
        config.anchor_size,
        config.anchor_scales_per_octave,
        config.anchor_aspect_ratios,
    )
