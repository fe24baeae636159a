"""Distance-transform weights of positive mask pixels (Bozic et al. 2021, section III-C).

Region annotations (boxes, rough outlines) are surest at their centre. The
segmentation loss of a positive pixel is weighted by `w_pos * x ** p`, where `x`
is the pixel's Euclidean distance to the nearest background pixel divided by the
largest such distance in its image and class; background pixels weigh 1.

TensorFlow has no distance-transform op and the pipeline may not call Python
(`py_function`) on TPU hosts, so the exact Euclidean distance transform is
written here in TF ops. Outside the image counts as background: a mask that
fills the image gets distances to the image border (scipy's
`distance_transform_edt` of the mask padded with one row and column of zeros).
"""

import tensorflow as tf

from defect_aux_net.losses.segdec import dilate_masks


def distance_transform_weights(mask, positive_weight: float, power: float, dilation: int = 1):
    """Per-pixel segmentation loss weights of one example's masks.

    Args:
      mask: `[H, W, K]` binary masks (0/1, any numeric dtype), one per class.
      positive_weight: `w_pos`, the weight of the centre of each region.
      power: `p`; 1 lowers weights linearly towards region edges, 2 faster.
      dilation: the weights are those of the masks dilated by this square kernel
        (`losses.segdec.dilate_masks`, which dilates that loss's targets: the
        segmentation + decision network's reference computes the weights on its
        dilated labels); 1: the masks as given.

    Returns:
      float32 `[H, W, K]`: `positive_weight * (d / max d) ** power` on positive
      pixels, `d` the distance to the nearest background pixel and `max d` over
      the image for that class; 1 on background pixels and in classes without
      positive pixels.
    """
    if positive_weight <= 0:
        raise ValueError(f"positive_weight must be positive, got {positive_weight}.")
    if power < 0:
        raise ValueError(f"power must be non-negative, got {power}.")
    if not isinstance(dilation, int) or dilation < 1:
        raise ValueError(f"dilation must be an integer >= 1, got {dilation!r}.")
    if dilation > 1:
        mask = dilate_masks(tf.cast(mask, tf.float32)[None], dilation)[0]
    distance = euclidean_distance_transform(mask)
    largest = tf.reduce_max(distance, axis=[0, 1], keepdims=True)
    relative = tf.math.divide_no_nan(distance, largest)
    return tf.where(distance > 0, positive_weight * relative**power, 1.0)


def euclidean_distance_transform(mask):
    """Exact Euclidean distance of each positive pixel to the nearest background pixel.

    Separable, as Felzenszwalb and Huttenlocher's transform: first each pixel's
    distance `g` to the nearest background pixel in its column (running counts
    down and up the rows, O(HW)); then along each row
    `d(y, x)^2 = min over x' of (x - x')^2 + g(y, x')^2`. Only offsets
    `|x - x'| <= d(y, x)` can reach the minimum, so the second pass tries offsets
    1, 2, ... and stops once the squared offset passes the largest squared
    distance found so far: exact, with as many steps as the largest distance
    (a few for thin defects, half the image side for a full mask), each a
    vectorised O(HWK) update. Memory stays O(HWK), so 600x600 and 128x800
    masks run in `tf.data` without chunking.

    Args:
      mask: `[H, W, K]` binary masks (0/1, any numeric dtype).

    Returns:
      float32 `[H, W, K]`: 0 on background pixels, the distance in pixels on
      positive ones; outside the image counts as background.
    """
    mask = tf.convert_to_tensor(mask)
    if mask.shape.rank != 3:
        raise ValueError(f"mask must be [H, W, K], got shape {mask.shape}.")
    positive = tf.cast(mask > 0, tf.float32)

    def count_run(previous_row, row):  # positive pixels since the last background pixel
        return (previous_row + 1.0) * row

    start = tf.zeros_like(positive[0])
    down = tf.scan(count_run, positive, initializer=start)
    up = tf.scan(count_run, positive, initializer=start, reverse=True)
    column_distance_squared = tf.square(tf.minimum(down, up))

    width = tf.shape(positive)[1]
    columns = tf.range(width)[None, :, None]

    def keep_going(offset, squared):
        return tf.cast(offset * offset, tf.float32) < tf.reduce_max(squared)

    def try_offset(offset, squared):
        # g^2 at x - offset and x + offset; 0 outside the image (background).
        left = tf.where(
            columns >= offset, tf.roll(column_distance_squared, offset, axis=1), 0.0
        )
        right = tf.where(
            columns < width - offset, tf.roll(column_distance_squared, -offset, axis=1), 0.0
        )
        candidate = tf.cast(offset * offset, tf.float32) + tf.minimum(left, right)
        return offset + 1, tf.minimum(squared, candidate)

    _, squared = tf.while_loop(
        keep_going, try_offset, (tf.constant(1), column_distance_squared)
    )
    return tf.sqrt(squared)
