"""The paper's preprocessing (section IV-B): resize, min-max normalisation, channels.

Pretrained ImageNet weights were trained on absolute intensities, not on stretched
ones: for them (`DefectAuxNetConfig.input_normalization`) images are scaled by 1/255
instead, and the model's `ImageNetNormalization` layer does the rest.

Shared by the input pipeline and the exported serving graph, so that a served image
is prepared exactly as the training images were. Plain `tf` ops: runs in `tf.data`
on TPU hosts and inside SavedModel signatures.
"""

import tensorflow as tf

from defect_aux_net.config import INPUT_NORMALIZATIONS

# Ground truth is padded to this many boxes per image (RetinaNet-on-TPU convention);
# see `pad_boxes` for what happens beyond it.
MAX_BOXES = 100


def prepare_image(image, image_size: tuple, channels: int, normalization: str = "min_max"):
    """Resizes, normalises and converts one image to the model's input.

    Args:
      image: `[h, w, c]` image of any numeric dtype and size, c in (1, 3).
      image_size: `(height, width)` of the model input.
      channels: channels the model takes (1 or 3); grey sources are repeated to 3
        channels (ImageNet weights), RGB sources averaged to grey with luma weights.
      normalization: the model's `DefectAuxNetConfig.resolved_input_normalization`.
        "min_max": `(x - min) / (max - min)` over the image (a constant image becomes
        all zeros). "caffe" (ImageNet weights): `x / 255`, pixel values taken on
        the 0-255 scale as `keras.applications` takes them, whatever the dtype.

    Returns:
      float32 `[height, width, channels]`, in [0, 1] for 0-255 sources.
    """
    if normalization not in INPUT_NORMALIZATIONS:
        raise ValueError(
            f"Unknown normalization {normalization!r}; allowed values: "
            f"{', '.join(INPUT_NORMALIZATIONS)}."
        )
    image = tf.cast(image, tf.float32)
    image = tf.image.resize(image, image_size, method="bilinear", antialias=True)
    image = convert_channels(image, channels)
    if normalization != "min_max":
        return image / 255.0
    low, high = tf.reduce_min(image), tf.reduce_max(image)
    return tf.math.divide_no_nan(image - low, high - low)


def convert_channels(image, channels: int):
    """Repeats a grey image to 3 channels or converts RGB to grey; others unchanged."""
    source_channels = image.shape[-1]
    if source_channels == channels:
        return image
    if source_channels == 1 and channels == 3:
        return tf.repeat(image, 3, axis=-1)
    if source_channels == 3 and channels == 1:
        return tf.image.rgb_to_grayscale(image)
    raise ValueError(
        f"Cannot convert images with {source_channels} channels to {channels}: "
        "the model takes 1 or 3 channels and sources have 1 or 3."
    )


def prepare_mask(mask, image_size: tuple):
    """Resizes a binary `[h, w, K]` mask to `image_size` (nearest); float32 0/1."""
    mask = tf.image.resize(tf.cast(mask, tf.float32), image_size, method="nearest")
    return tf.cast(mask > 0.5, tf.float32)


def pad_boxes(normalized_boxes, labels, image_size: tuple, max_boxes: int = MAX_BOXES):
    """Scales TFDS boxes to input pixels and pads them to a static `max_boxes`.

    Args:
      normalized_boxes: float `[N, 4]` `ymin, xmin, ymax, xmax` in [0, 1].
      labels: int `[N]` class indices.
      image_size: `(height, width)` of the model input.
      max_boxes: fixed number of rows; images with more boxes keep the `max_boxes`
        largest ones (small ones are the likeliest to be noise).

    Returns:
      `(boxes, classes)`: float32 `[max_boxes, 4]` pixel boxes and int32
      `[max_boxes]` class indices, -1 in padding rows.
    """
    height, width = image_size
    boxes = tf.cast(normalized_boxes, tf.float32) * tf.constant(
        [height, width, height, width], tf.float32
    )
    labels = tf.cast(labels, tf.int32)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = tf.argsort(areas, direction="DESCENDING")[:max_boxes]
    boxes, labels = tf.gather(boxes, keep), tf.gather(labels, keep)
    padding = max_boxes - tf.shape(labels)[0]
    boxes = tf.pad(boxes, [[0, padding], [0, 0]])
    labels = tf.pad(labels, [[0, padding]], constant_values=-1)
    return tf.ensure_shape(boxes, (max_boxes, 4)), tf.ensure_shape(labels, (max_boxes,))
