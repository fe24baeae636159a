"""Segmentation losses compared in Defect-Aux-Net Table I, over a batch.

Paper eq. 3 sums over pixels and says neither per image nor per class. Dice and
Jaccard here sum over every pixel of every example of the batch, per class, and
average the classes, as the Dice metric does:

- Per image, an empty mask scores 1 only when predicted empty. About half the
  images of a defect dataset are defect-free, and one stray pixel there costs
  as much as a missed defect, so training settled on empty masks (measured on
  `synthetic_defects/quickstart`: Dice 0 after 320 steps).
- Pooling the classes' pixels lets large defects (blotches) drown thin ones
  (scratches): measured, blotch Dice 0.83 and scratch, crack and pit Dice 0.

A replica of a distributed run takes its own batch.

Each takes optional per-pixel `weights` (`[B, H, W, K]`): the distance-transform
weights of `defect_aux_net.data.distance_weights`, times 0 for examples without
a mask. BCE becomes the weighted mean `sum(w * bce) / sum(w)`, and Dice and
Jaccard weight every pixel's terms of the intersection and of the sums. Without
weights every pixel weighs 1. A batch without a weighted pixel gives 0.
"""

import keras
from keras import ops

# Smoothing of eq. 3: an empty mask predicted empty scores a perfect 1, not 0/0.
SMOOTH = 1.0


def dice_loss(y_true, y_pred, weights=None):
    """Paper eq. 3, `1 - (2 sum(w*y*p) + 1) / (sum(w*y) + sum(w*p) + 1)` per class, averaged."""
    y_true, y_pred, weights = _flatten(y_true, y_pred, weights)
    intersection = ops.sum(weights * y_true * y_pred, axis=0)
    total = ops.sum(weights * y_true, axis=0) + ops.sum(weights * y_pred, axis=0)
    return ops.mean(1.0 - (2.0 * intersection + SMOOTH) / (total + SMOOTH))


def jaccard_loss(y_true, y_pred, weights=None):
    """`1 - (I + 1) / (sum(w*y) + sum(w*p) - I + 1)`, `I = sum(w*y*p)`, per class, averaged."""
    y_true, y_pred, weights = _flatten(y_true, y_pred, weights)
    intersection = ops.sum(weights * y_true * y_pred, axis=0)
    union = ops.sum(weights * y_true, axis=0) + ops.sum(weights * y_pred, axis=0) - intersection
    return ops.mean(1.0 - (intersection + SMOOTH) / (union + SMOOTH))


def bce_loss(y_true, y_pred, weights=None):
    """Pixel-wise binary cross-entropy on probabilities, `sum(w*bce) / sum(w)`."""
    y_true, y_pred, weights = _flatten(y_true, y_pred, weights)
    # A trailing axis of 1 makes Keras' BCE (clipping included) return one value per pixel.
    per_pixel = keras.losses.binary_crossentropy(y_true[..., None], y_pred[..., None])
    return ops.divide_no_nan(ops.sum(weights * per_pixel), ops.sum(weights))


SEGMENTATION_LOSS_FUNCTIONS = {
    "dice": dice_loss,
    "bce": bce_loss,
    "jaccard": jaccard_loss,
    "dice+bce": lambda y_true, y_pred, weights=None: dice_loss(y_true, y_pred, weights)
    + bce_loss(y_true, y_pred, weights),
    "jaccard+bce": lambda y_true, y_pred, weights=None: jaccard_loss(y_true, y_pred, weights)
    + bce_loss(y_true, y_pred, weights),
}


def _flatten(y_true, y_pred, weights):
    """`[B, H, W, K]` -> `[B * H * W, K]`: the pixels of the batch, per class."""
    num_classes = ops.shape(y_pred)[-1]
    y_pred = ops.reshape(ops.cast(y_pred, "float32"), (-1, num_classes))
    y_true = ops.reshape(ops.cast(y_true, "float32"), (-1, num_classes))
    if weights is None:
        return y_true, y_pred, ops.ones_like(y_pred)
    return y_true, y_pred, ops.reshape(ops.cast(weights, "float32"), (-1, num_classes))
