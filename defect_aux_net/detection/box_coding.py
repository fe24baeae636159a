"""Box deltas of the two-stage detectors: weighted, with the log-scale clipped when decoding.

The encoding is the project's one (`keras.utils.bounding_boxes`, as `box_matching.py`
and `decoding.py` use it): `(dy/ha, dx/wa, log h/ha, log w/wa)`. The two-stage heads
scale it by per-coordinate weights: none for the RPN, (10, 10, 5, 5) for the box head
(Model Garden's and Detectron's values, which make the head's targets about unit
scale), (20, 20, 10, 10) and (30, 30, 15, 15) for the later cascade stages. Keras calls
the inverse of a weight a variance.

`tf.*` like the other two-stage pieces (`sampling.py` says why); the Keras helpers are
backend-agnostic and run on TensorFlow tensors.
"""

import math

import tensorflow as tf
from keras.utils import bounding_boxes

BOX_HEAD_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
# Decoded sides are at most 1000/16 times the anchor's (Detectron's bound): an untrained
# head's large log-scale deltas would otherwise overflow `exp` to inf and NaN the IoUs.
MAX_LOG_SCALE = math.log(1000.0 / 16.0)


def _variance(weights):
    if weights is None:
        return None
    if len(weights) != 4 or min(weights) <= 0:
        raise ValueError(f"Box delta weights must be 4 positive numbers, got {weights}.")
    return [1.0 / weight for weight in weights]


def encode_boxes(boxes, anchors, weights=None):
    """Deltas of `boxes` from `anchors` (both `[..., 4]` yxyx pixels, broadcastable), times `weights`."""
    return bounding_boxes.encode_box_to_deltas(
        tf.cast(anchors, tf.float32), tf.cast(boxes, tf.float32),
        anchor_format="yxyx", box_format="yxyx", variance=_variance(weights),
    )


def decode_boxes(deltas, anchors, weights=None):
    """Boxes from weighted `deltas` on `anchors`, inverse of `encode_boxes`."""
    deltas = tf.cast(deltas, tf.float32)
    if weights is not None:
        deltas = deltas / tf.constant(weights, tf.float32)
    deltas = tf.concat(
        [deltas[..., :2], tf.minimum(deltas[..., 2:], MAX_LOG_SCALE)], axis=-1
    )
    return bounding_boxes.decode_deltas_to_boxes(
        tf.cast(anchors, tf.float32), deltas, anchor_format="yxyx", box_format="yxyx"
    )


def clip_boxes(boxes, image_size):
    """Clips yxyx pixel boxes to an image of `(height, width)`."""
    height, width = image_size
    return tf.clip_by_value(boxes, 0.0, tf.constant([height, width, height, width], tf.float32))
