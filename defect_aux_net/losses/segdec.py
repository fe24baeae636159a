"""The segmentation + decision network's loss (Bozic et al. 2021, section III-B/C).

Both heads are trained with binary cross-entropy on logits. The segmentation head
predicts at 1/8 of the input resolution, so its targets are the masks dilated and
then downsampled by reflection padding and average pooling: soft targets in [0, 1]
that keep thin defects visible at 1/8. The distance-transform weights of the input
pipeline are downsampled the same way. The two losses are balanced over the run:
`(1 - n/N) * L_seg + delta * n/N * L_dec` at epoch n of N.

A batch's images combine by `reduction`: "mean" (Keras' convention) or "sum", the
reference code's: it runs one backward pass per image (MEMORY_FIT 1) and one SGD step
per batch, so its gradient is the sum of the images' gradients and its learning rate
applies to that sum (`SegDecConfig.batch_reduction`).
"""

from keras import ops

# The segmentation logits' stride: three 2x2 max-pools in the trunk.
OUTPUT_STRIDE = 8
REDUCTIONS = ("mean", "sum")


def balance_weights(epoch, epochs: int, delta: float) -> tuple:
    """`(segmentation_weight, decision_weight)` at `epoch` (0-based) of `epochs`.

    The dynamically balanced loss: segmentation first, the decision head gradually
    once the segmentation features have formed.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs!r}.")
    fraction = epoch / epochs
    return 1.0 - fraction, delta * fraction


def dilate_masks(masks, kernel_size: int):
    """Binary `[B, H, W, K]` masks dilated by a `kernel_size` square (a max filter).

    A kernel of 1 leaves the masks unchanged. Odd kernels are centred, as OpenCV's
    `dilate` with a square kernel of ones.
    """
    if kernel_size < 1:
        raise ValueError(f"kernel_size must be >= 1, got {kernel_size!r}.")
    if kernel_size == 1:
        return masks
    return ops.max_pool(masks, kernel_size, strides=1, padding="same")


def soft_targets(values, stride: int = OUTPUT_STRIDE):
    """`[B, H, W, K]` -> `[B, H/stride, W/stride, K]`: reflection pad `stride`, then a
    `2 * stride + 1` average pool of step `stride` (each output averages a window
    centred on its block, reaching half a block into its neighbours)."""
    padding = [[0, 0], [stride, stride], [stride, stride], [0, 0]]
    padded = ops.pad(values, padding, mode="reflect")
    return ops.average_pool(padded, 2 * stride + 1, strides=stride, padding="valid")


def segmentation_loss(
    masks, logits, has_mask, dilation: int, pixel_weights=None, reduction: str = "mean"
):
    """Weighted BCE of the 1/8 logits against the soft targets of `masks`.

    Each image's loss is the mean over its pixels and classes of `w * bce` (the
    reference's `mean(bce * seg_loss_mask)`), averaged (`reduction` "mean") or summed
    ("sum") over the images that have a mask (`has_mask` > 0); 0 for a batch without one.

    Args:
      masks: float `[B, H, W, K]` binary masks at the input size.
      logits: float `[B, H/8, W/8, K]` segmentation logits.
      has_mask: float `[B]`, 1 for images whose mask is annotated; 0 for label-only
        images (mixed supervision, `data.mixed_supervision`), which then give the
        segmentation head no gradient while the decision loss still trains on them.
      dilation: kernel of `dilate_masks`.
      pixel_weights: float `[B, H, W, K]` distance-transform weights, or None.
      reduction: one of `REDUCTIONS`.
    """
    _check_reduction(reduction)
    masks = ops.cast(masks, "float32")
    logits = ops.cast(logits, "float32")
    targets = soft_targets(dilate_masks(masks, dilation))
    per_pixel = _bce_with_logits(targets, logits)
    if pixel_weights is not None:
        per_pixel = per_pixel * soft_targets(ops.cast(pixel_weights, "float32"))
    per_image = ops.mean(per_pixel, axis=(1, 2, 3))
    has_mask = ops.cast(has_mask, "float32")
    total = ops.sum(has_mask * per_image)
    if reduction == "sum":
        return total
    return ops.divide_no_nan(total, ops.sum(has_mask))


def decision_loss(labels, logits, reduction: str = "mean"):
    """BCE of the decision logits `[B, K]` against image labels `[B, K]`: each image's
    mean over its K logits, averaged (`reduction` "mean") or summed ("sum") over the batch."""
    _check_reduction(reduction)
    bce = _bce_with_logits(ops.cast(labels, "float32"), ops.cast(logits, "float32"))
    per_image = ops.mean(bce, axis=-1)
    return ops.sum(per_image) if reduction == "sum" else ops.mean(per_image)


def _check_reduction(reduction: str):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}.")


def _bce_with_logits(targets, logits):
    # max(x, 0) - x*z + log(1 + exp(-|x|)): stable for large |x|, soft targets allowed.
    return ops.relu(logits) - logits * targets + ops.log1p(ops.exp(-ops.abs(logits)))
