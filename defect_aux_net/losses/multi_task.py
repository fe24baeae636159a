"""The multi-task loss `L = b0*Lcls + b1*Lseg + b2*Ldet` (Defect-Aux-Net eq. 6)."""

import keras
from keras import ops

from defect_aux_net.losses.detection import detection_loss
from defect_aux_net.losses.segmentation import SEGMENTATION_LOSS_FUNCTIONS


class MultiTaskLoss:
    """Weighted sum of the losses of the tasks a model has.

    Each example says which annotations it carries through `sample_weight`, a
    dict keyed like the outputs, as Keras passes per-output sample weights
    (float `[B]`, 1 where the example has an image label / mask / boxes, else 0;
    detection reads `box_classification`, and `box_regression` must equal it;
    a missing key means every example has the annotation). A task's loss covers
    the examples that have its annotation only, so datasets with masks only and
    datasets with boxes only can be mixed in one batch. The segmentation loss is
    taken over the batch's pixels (see `defect_aux_net.losses.segmentation`),
    the others per example and averaged.

    `y_true` is a dict with the keys of the model's outputs: `classification`
    (`[B, K]` multi-hot), `segmentation` (`[B, H, W, K]` binary masks),
    `box_regression` (`[B, A, 4]`) and `box_classification` (`[B, A]`) from
    `encode_detection_targets`; optionally `segmentation_weights`
    (`[B, H, W, K]`, e.g. distance-transform weights), which weight each pixel's
    terms of the segmentation loss. All losses are computed in float32.

    Args:
      config: the model's `DefectAuxNetConfig`.
    """

    def __init__(self, config):
        self.config = config
        self.segmentation_loss = SEGMENTATION_LOSS_FUNCTIONS[config.segmentation_loss]

    def __call__(self, y_true, y_pred, sample_weight=None) -> dict:
        """Returns a dict of scalar losses: one per task of the model, and `total`."""
        sample_weight = sample_weight or {}
        batch_size = ops.shape(next(iter(y_pred.values())))[0]

        def example_weights(output):
            weights = sample_weight.get(output)
            if weights is None:
                return ops.ones((batch_size,), "float32")
            return ops.reshape(ops.cast(weights, "float32"), (batch_size,))

        losses = {}
        if "classification" in self.config.tasks:
            losses["classification"] = classification_loss(
                y_true["classification"],
                y_pred["classification"],
                example_weights("classification"),
            )
        if "segmentation" in self.config.tasks:
            # The segmentation losses sum over the batch: examples without a mask
            # weigh 0 in every pixel.
            pixel_weights = ops.reshape(example_weights("segmentation"), (-1, 1, 1, 1))
            if "segmentation_weights" in y_true:
                pixel_weights = pixel_weights * ops.cast(
                    y_true["segmentation_weights"], "float32"
                )
            losses["segmentation"] = self.segmentation_loss(
                y_true["segmentation"],
                y_pred["segmentation"],
                ops.broadcast_to(pixel_weights, ops.shape(y_pred["segmentation"])),
            )
        if "detection" in self.config.tasks:
            losses["detection"] = detection_loss(
                y_true["box_regression"],
                y_true["box_classification"],
                y_pred["box_regression"],
                y_pred["box_classification"],
                example_weights("box_classification"),
                focal_alpha=self.config.focal_alpha,
                focal_gamma=self.config.focal_gamma,
                box_loss_weight=self.config.box_loss_weight,
                huber_delta=self.config.huber_delta,
            )
        betas = dict(zip(("classification", "segmentation", "detection"), self.config.loss_weights))
        losses["total"] = sum(betas[task] * loss for task, loss in losses.items())
        return losses


def classification_loss(labels, probabilities, example_weights=None):
    """Binary cross-entropy of `[B, K]` sigmoid `probabilities` against multi-hot
    `labels`, averaged over the K classes and over the examples with weight > 0
    (`example_weights`, `[B]` or `[B, 1]`; None: every example); 0 when no example
    has an image label."""
    per_example = keras.losses.binary_crossentropy(
        ops.cast(labels, "float32"), ops.cast(probabilities, "float32")
    )
    if example_weights is None:
        return ops.mean(per_example)
    weights = ops.reshape(ops.cast(example_weights, "float32"), ops.shape(per_example))
    return _weighted_mean(per_example, weights)


def _weighted_mean(values, weights):
    """Mean over the examples with weight > 0; 0 when no example has the annotation."""
    return ops.divide_no_nan(ops.sum(values * weights), ops.sum(weights))
