"""RoIAlign on the feature pyramid: each RoI cropped from the level its size selects.

Level assignment is FPN's equation 1, `k = floor(k0 + log2(sqrt(w h) / 224))` with
`k0 = 4`, clipped to the pyramid (P2-P5 for Faster R-CNN): a 224-pixel RoI is cropped
from P4, a 112-pixel one from P3, a 448-pixel one from P5.

The crop is RoIAlign (Mask R-CNN): the RoI is split into `output_size x output_size`
bins, each bin averages `sampling_ratio x sampling_ratio` bilinear samples at regular
positions, with the half-pixel alignment of Detectron2's `aligned=True` (feature cell
`j` of a stride-`s` level is centred on image pixel `(j + 0.5) s`). Samples are clamped
to the feature map; proposals are clipped to the image, so only the outer half cell is
affected.

Why not `tf.image.crop_and_resize` (which samples the same points and is this module's
test reference): TensorFlow has no XLA kernel for `CropAndResize` ("No registered
'CropAndResize' OpKernel for XLA_CPU_JIT devices"), so a training step using it cannot
be compiled. The bilinear samples are gathered instead, as Model Garden's TPU
`multilevel_crop_and_resize` does: all levels are flattened into one
`[B, sum(H_l W_l), C]` tensor and each RoI's four neighbours per sample are indexed in
its own level's block, so one static-shape gather serves every level.

`tf.*` like the other two-stage pieces (`sampling.py`): batched gathers with per-box
offsets, run in the TensorFlow training and serving graphs.
"""

import tensorflow as tf

CANONICAL_LEVEL = 4
CANONICAL_SIZE = 224.0


def assign_levels(boxes, min_level: int = 2, max_level: int = 5):
    """Pyramid level of each yxyx pixel box (FPN eq. 1), int32 of the boxes' leading shape."""
    boxes = tf.cast(boxes, tf.float32)
    heights = boxes[..., 2] - boxes[..., 0]
    widths = boxes[..., 3] - boxes[..., 1]
    # Empty (padding) boxes go to the finest level instead of log(0).
    sizes = tf.sqrt(tf.maximum(heights * widths, 1e-6))
    levels = tf.floor(CANONICAL_LEVEL + tf.math.log(sizes / CANONICAL_SIZE) / tf.math.log(2.0))
    return tf.cast(tf.clip_by_value(levels, min_level, max_level), tf.int32)


def _sample_positions(starts, lengths, limits, output_size: int, sampling_ratio: int):
    """Bilinear neighbours and weights along one axis, `[B, N, output_size * ratio]` each."""
    steps = output_size * sampling_ratio
    # Regular sample positions inside each bin, in units of the RoI's length.
    fractions = (tf.range(steps, dtype=tf.float32) + 0.5) / steps
    positions = starts[..., None] + fractions * lengths[..., None]
    positions = tf.clip_by_value(positions, 0.0, limits[..., None] - 1.0)
    low = tf.floor(positions)
    high = tf.minimum(low + 1.0, limits[..., None] - 1.0)
    return tf.cast(low, tf.int32), tf.cast(high, tf.int32), positions - low


def multilevel_roi_align(features, boxes, min_level: int = 2, output_size: int = 7,
                         sampling_ratio: int = 2):
    """Crops every RoI from its assigned pyramid level.

    Args:
      features: feature maps from `min_level` up, each `[B, H_l, W_l, C]` with static
        shapes and stride `2**level`.
      boxes: float `[B, N, 4]` RoIs, yxyx pixels of the model input.
      min_level: level of `features[0]`.
      output_size: side of the output grid.
      sampling_ratio: bilinear samples per bin side.

    Returns:
      `[B, N, output_size, output_size, C]` in the features' dtype.
    """
    if output_size < 1 or sampling_ratio < 1:
        raise ValueError(
            f"output_size and sampling_ratio must be positive, got {output_size} and "
            f"{sampling_ratio}."
        )
    max_level = min_level + len(features) - 1
    heights = [int(feature.shape[1]) for feature in features]
    widths = [int(feature.shape[2]) for feature in features]
    channels = int(features[0].shape[3])
    dtype = features[0].dtype
    num_boxes = int(boxes.shape[1])
    flat = tf.concat(
        [tf.reshape(f, [tf.shape(f)[0], h * w, channels])
         for f, h, w in zip(features, heights, widths)],
        axis=1,
    )
    offsets = [sum(h * w for h, w in zip(heights[:i], widths[:i])) for i in range(len(features))]

    boxes = tf.cast(boxes, tf.float32)
    level_index = assign_levels(boxes, min_level, max_level) - min_level
    strides = tf.gather(
        tf.constant([2.0**level for level in range(min_level, max_level + 1)]), level_index
    )
    level_heights = tf.gather(tf.constant(heights, tf.float32), level_index)
    level_widths = tf.gather(tf.constant(widths, tf.float32), level_index)
    # Feature coordinates: cell j is centred on image pixel (j + 0.5) * stride.
    y_low, y_high, y_weight = _sample_positions(
        boxes[..., 0] / strides - 0.5, (boxes[..., 2] - boxes[..., 0]) / strides,
        level_heights, output_size, sampling_ratio,
    )
    x_low, x_high, x_weight = _sample_positions(
        boxes[..., 1] / strides - 0.5, (boxes[..., 3] - boxes[..., 1]) / strides,
        level_widths, output_size, sampling_ratio,
    )
    row_start = tf.gather(tf.constant(offsets), level_index)[..., None, None]
    row_length = tf.cast(level_widths, tf.int32)[..., None, None]
    steps = output_size * sampling_ratio

    def gather(rows, columns):
        # [B, N, steps, steps] flat indices -> [B, N, steps, steps, C].
        indices = row_start + rows[..., :, None] * row_length + columns[..., None, :]
        values = tf.gather(flat, tf.reshape(indices, [-1, num_boxes * steps * steps]),
                           batch_dims=1)
        return tf.reshape(values, [-1, num_boxes, steps, steps, channels])

    y_weight = tf.cast(y_weight, dtype)[..., :, None, None]
    x_weight = tf.cast(x_weight, dtype)[..., None, :, None]
    top = gather(y_low, x_low) * (1 - x_weight) + gather(y_low, x_high) * x_weight
    bottom = gather(y_high, x_low) * (1 - x_weight) + gather(y_high, x_high) * x_weight
    samples = top * (1 - y_weight) + bottom * y_weight
    bins = tf.reshape(
        samples,
        [-1, num_boxes, output_size, sampling_ratio, output_size, sampling_ratio, channels],
    )
    return tf.reduce_mean(bins, axis=[3, 5])
