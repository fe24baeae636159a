"""Segmentation losses compared in Defect-Aux-Net Table I, per example.

Each takes optional per-pixel `weights` (`[B, H, W, K]`, e.g. the distance-
transform weights of `defect_aux_net.data.distance_weights`): BCE becomes the
weighted mean `sum(w * bce) / sum(w)`, and Dice and Jaccard weight every pixel's
terms of the intersection and of the sums. Without weights every pixel weighs 1.
"""

import keras
from keras import ops

# Smoothing of eq. 3: an empty mask predicted empty scores a perfect 1, not 0/0.
SMOOTH = 1.0


def dice_loss(y_true, y_pred, weights=None):
    """Paper eq. 3, `1 - (2 sum(w*y*p) + 1) / (sum(w*y) + sum(w*p) + 1)`, per example."""
    y_true, y_pred, weights = _flatten_examples(y_true, y_pred, weights)
    intersection = ops.sum(weights * y_true * y_pred, axis=1)
    total = ops.sum(weights * y_true, axis=1) + ops.sum(weights * y_pred, axis=1)
    return 1.0 - (2.0 * intersection + SMOOTH) / (total + SMOOTH)


def jaccard_loss(y_true, y_pred, weights=None):
    """`1 - (I + 1) / (sum(w*y) + sum(w*p) - I + 1)`, `I = sum(w*y*p)`, per example."""
    y_true, y_pred, weights = _flatten_examples(y_true, y_pred, weights)
    intersection = ops.sum(weights * y_true * y_pred, axis=1)
    union = ops.sum(weights * y_true, axis=1) + ops.sum(weights * y_pred, axis=1) - intersection
    return 1.0 - (intersection + SMOOTH) / (union + SMOOTH)


def bce_loss(y_true, y_pred, weights=None):
    """Pixel-wise binary cross-entropy on probabilities, `sum(w*bce) / sum(w)` per example."""
    y_true, y_pred, weights = _flatten_examples(y_true, y_pred, weights)
    # A trailing axis of 1 makes Keras' BCE (clipping included) return one value per pixel.
    per_pixel = keras.losses.binary_crossentropy(y_true[..., None], y_pred[..., None])
    return ops.divide_no_nan(ops.sum(weights * per_pixel, axis=1), ops.sum(weights, axis=1))


SEGMENTATION_LOSS_FUNCTIONS = {
    "dice": dice_loss,
    "bce": bce_loss,
    "jaccard": jaccard_loss,
    "dice+bce": lambda y_true, y_pred, weights=None: dice_loss(y_true, y_pred, weights)
    + bce_loss(y_true, y_pred, weights),
    "jaccard+bce": lambda y_true, y_pred, weights=None: jaccard_loss(y_true, y_pred, weights)
    + bce_loss(y_true, y_pred, weights),
}


def _flatten_examples(y_true, y_pred, weights):
    batch = ops.shape(y_pred)[0]
    y_pred = ops.reshape(ops.cast(y_pred, "float32"), (batch, -1))
    y_true = ops.reshape(ops.cast(y_true, "float32"), (batch, -1))
    if weights is None:
        return y_true, y_pred, ops.ones_like(y_pred)
    return y_true, y_pred, ops.reshape(ops.cast(weights, "float32"), (batch, -1))
