"""The label-map loss of a softmax segmentation model: categorical cross-entropy over
background + K classes, its targets built from the per-class binary masks.

The pipeline gives every model per-class masks (`[B, H, W, K]`, classes may
overlap); the paper's label map (0 background, 1..K a defect class) is their
one-hot form. A pixel of several classes (rare on Severstal) splits its target
evenly between them: none of them is preferred.
"""

from keras import ops


def label_map_targets(masks):
    """float32 `[B, H, W, K + 1]` target distribution over background + K classes.

    Args:
      masks: `[B, H, W, K]` binary masks.
    """
    masks = ops.cast(masks, "float32")
    background = 1.0 - ops.max(masks, axis=-1, keepdims=True)
    targets = ops.concatenate([background, masks], axis=-1)
    return targets / ops.sum(targets, axis=-1, keepdims=True)


def label_map_loss(masks, logits, example_weights, class_weights=None):
    """Weighted mean over pixels of `-sum(target * log_softmax(logits))`.

    Args:
      masks: `[B, H, W, K]` binary masks.
      logits: `[B, H, W, K + 1]` logits, background first.
      example_weights: float `[B]`, 1 for examples with a mask, 0 for the others.
      class_weights: optional float `[B, H, W, K]` per-class pixel weights (the
        distance-transform weights). A pixel weighs as its target: 1 as background,
        its class's weight as a defect (averaged over its classes).

    Returns:
      A float32 scalar; 0 when no pixel has weight.
    """
    targets = label_map_targets(masks)
    logits = ops.cast(logits, "float32")
    per_pixel = -ops.sum(targets * ops.log_softmax(logits, axis=-1), axis=-1)
    weights = ops.ones_like(per_pixel)
    if class_weights is not None:
        class_weights = ops.cast(class_weights, "float32")
        weights = targets[..., 0] + ops.sum(targets[..., 1:] * class_weights, axis=-1)
    weights = weights * ops.reshape(ops.cast(example_weights, "float32"), (-1, 1, 1))
    return ops.divide_no_nan(ops.sum(weights * per_pixel), ops.sum(weights))
