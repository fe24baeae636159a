"""SSD (Liu et al. 2016) on a ResNet bottom-up pathway, with the library's detection outputs."""

import keras
from keras import ops

from defect_aux_net.detection.default_boxes import boxes_per_location
from defect_aux_net.layers.softmax_foreground_logits import SoftmaxForegroundLogits
from defect_aux_net.losses.multibox import multibox_loss
from defect_aux_net.models.backbone import BN_EPSILON, apply_backbone
from defect_aux_net.models.backbone_weights import config_for_saving
from defect_aux_net.models.defect_aux_net import model_loss
from defect_aux_net.models.ssd_config import BACKBONE_MAPS, SsdConfig


@keras.saving.register_keras_serializable(package="defect_aux_net")
class Ssd(keras.Model):
    """Single-shot detector: a 3x3 conv predictor on each of six maps, softmax classes.

    The maps are the ResNet's C3, C4, C5 (no attention) and SSD's extra layers after
    C5; each predicts, for each of its default boxes (`SsdConfig.anchors`), four
    deltas and K + 1 softmax logits (background first).

    Outputs (a dict, as `DefectAuxNet`'s detection outputs, so decoding, export and
    evaluation are the library's):
      box_regression: float32 `[B, A, 4]` deltas in the library's encoding (the
        predictors' SSD-scale deltas times `box_variances`).
      box_classification: float32 `[B, A, K]` logits whose sigmoids are the softmax's
        foreground probabilities (`SoftmaxForegroundLogits`).
      class_logits: float32 `[B, A, K + 1]` softmax logits (background first), what
        the loss reads.

    Training: compile with an optimizer only and feed the input pipeline's
    `(images, targets, annotation_flags)`; the loss is `multibox_loss`.

    Example:
    ```python
    model = Ssd(SsdConfig.from_preset("ssd300", num_classes=6))
    model.compile(optimizer="adam")
    ```

    Args:
      config: an `SsdConfig` (or its dict, as stored in `.keras` files).
    """

    def __init__(self, config, **kwargs):
        if isinstance(config, dict):
            config = SsdConfig(**config)
        inputs = keras.Input(config.input_shape, name="images")
        # SsdConfig has no attention: a plain ResNet.
        _, features = apply_backbone(config, inputs)
        maps = [features[name] for name in BACKBONE_MAPS]
        for index, channels in enumerate(config.extra_channels):
            maps.append(_extra_layer(maps[-1], channels, config.batch_norm_momentum, index))
        sizes = [tuple(feature.shape[1:3]) for feature in maps]
        if sizes != config.feature_map_sizes:  # The default boxes are laid on these.
            raise ValueError(
                f"SSD's maps are {sizes} at input {config.input_shape}, its default boxes "
                f"are laid on {config.feature_map_sizes}."
            )

        boxes = boxes_per_location(config.aspect_ratios)
        classes = config.num_classes + 1
        box_outputs, class_outputs = [], []
        for index, feature in enumerate(maps):
            deltas = keras.layers.Conv2D(
                boxes * 4, 3, padding="same", name=f"box_predictor_{index}"
            )(feature)
            box_outputs.append(keras.layers.Reshape((-1, 4), name=f"box_rows_{index}")(deltas))
            logits = keras.layers.Conv2D(
                boxes * classes, 3, padding="same", name=f"class_predictor_{index}"
            )(feature)
            class_outputs.append(
                keras.layers.Reshape((-1, classes), name=f"class_rows_{index}")(logits)
            )
        deltas = keras.layers.Concatenate(axis=1, name="box_maps")(box_outputs)
        logits = keras.layers.Concatenate(axis=1, name="class_maps")(class_outputs)
        outputs = {
            # SSD's variances are a fixed scale between its deltas and the library's.
            "box_regression": keras.layers.Rescaling(
                config.box_variances, dtype="float32", name="box_regression"
            )(deltas),
            "box_classification": SoftmaxForegroundLogits(
                dtype="float32", name="box_classification"
            )(logits),
            "class_logits": keras.layers.Activation(
                "linear", dtype="float32", name="class_logits"
            )(logits),
        }
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.config = config
        self.detection_loss_tracker = keras.metrics.Mean(name="detection_loss")

    # Nothing classifies the image on its own: no gate to skip detection behind.
    supports_gated_inference = False

    @property
    def anchors(self):
        """float32 `[A, 4]` default boxes (`ymin, xmin, ymax, xmax` pixels) of the outputs."""
        return self.config.anchors()

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        weights = (sample_weight or {}).get("box_classification")
        if weights is None:
            weights = ops.ones(ops.shape(y_pred["box_classification"])[:1], "float32")
        loss = multibox_loss(
            y["box_regression"],
            y["box_classification"],
            y_pred["box_regression"],
            y_pred["class_logits"],
            ops.reshape(ops.cast(weights, "float32"), (-1,)),
            box_variances=self.config.box_variances,
            negative_ratio=self.config.negative_ratio,
            min_negatives=self.config.min_negatives_per_image,
            box_loss_weight=self.config.box_loss_weight,
        )
        self.detection_loss_tracker.update_state(loss)
        return model_loss(self, loss)

    @property
    def metrics(self):
        return super().metrics + [self.detection_loss_tracker]

    def get_config(self):
        config = config_for_saving(self.config)
        return {"config": config, "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _extra_layer(x, channels, momentum, index):
    """SSD's extra feature layer: 1x1 conv to half the channels, 3x3 stride-2 conv.

    Batch norm after each conv, as the ResNet SSDs (MLPerf's) have, where VGG's SSD
    has none: the maps it predicts from are then on the backbone's normalised scale.
    """
    name = f"extra_{index}"
    for suffix, filters, kernel, stride in (
        ("reduce", channels // 2, 1, 1), ("conv", channels, 3, 2)
    ):
        x = keras.layers.Conv2D(
            filters, kernel, strides=stride, padding="same", use_bias=False,
            name=f"{name}_{suffix}",
        )(x)
        x = keras.layers.BatchNormalization(
            momentum=momentum, epsilon=BN_EPSILON, name=f"{name}_{suffix}_bn"
        )(x)
        x = keras.layers.ReLU(name=f"{name}_{suffix}_relu")(x)
    return x
