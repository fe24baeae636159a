"""Segmentation losses compared in Defect-Aux-Net Table I, per example."""

import keras
from keras import ops

# Smoothing of eq. 3: an empty mask predicted empty scores a perfect 1, not 0/0.
SMOOTH = 1.0


def dice_loss(y_true, y_pred):
    """Paper eq. 3, `1 - (2 sum(y*p) + 1) / (sum(y) + sum(p) + 1)`, over each example."""
    y_true, y_pred = _flatten_examples(y_true, y_pred)
    intersection = ops.sum(y_true * y_pred, axis=1)
    total = ops.sum(y_true, axis=1) + ops.sum(y_pred, axis=1)
    return 1.0 - (2.0 * intersection + SMOOTH) / (total + SMOOTH)


def jaccard_loss(y_true, y_pred):
    """`1 - (sum(y*p) + 1) / (sum(y) + sum(p) - sum(y*p) + 1)`, over each example."""
    y_true, y_pred = _flatten_examples(y_true, y_pred)
    intersection = ops.sum(y_true * y_pred, axis=1)
    union = ops.sum(y_true, axis=1) + ops.sum(y_pred, axis=1) - intersection
    return 1.0 - (intersection + SMOOTH) / (union + SMOOTH)


def bce_loss(y_true, y_pred):
    """Pixel-wise binary cross-entropy on probabilities, averaged over each example."""
    y_true, y_pred = _flatten_examples(y_true, y_pred)
    return keras.losses.binary_crossentropy(y_true, y_pred)


SEGMENTATION_LOSS_FUNCTIONS = {
    "dice": dice_loss,
    "bce": bce_loss,
    "jaccard": jaccard_loss,
    "dice+bce": lambda y_true, y_pred: dice_loss(y_true, y_pred) + bce_loss(y_true, y_pred),
    "jaccard+bce": lambda y_true, y_pred: jaccard_loss(y_true, y_pred)
    + bce_loss(y_true, y_pred),
}


def _flatten_examples(y_true, y_pred):
    batch = ops.shape(y_pred)[0]
    y_pred = ops.reshape(ops.cast(y_pred, "float32"), (batch, -1))
    y_true = ops.reshape(ops.cast(y_true, "float32"), (batch, -1))
    return y_true, y_pred
