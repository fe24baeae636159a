"""DeepLabV3+ (Chen et al. 2018) with the backbones of Nie et al. 2022."""

import keras
from keras import ops

from defect_aux_net.layers.aspp import ASPP
from defect_aux_net.layers.imagenet_normalization import ImageNetNormalization
from defect_aux_net.layers.label_map_probabilities import LabelMapProbabilities
from defect_aux_net.losses.label_map import label_map_loss
from defect_aux_net.losses.segmentation import SEGMENTATION_LOSS_FUNCTIONS
from defect_aux_net.models.backbone_weights import config_for_saving
from defect_aux_net.models.deeplab_backbones import build_deeplab_backbone
from defect_aux_net.models.deeplab_config import OUTPUT_STRIDE, DeepLabV3PlusConfig
from defect_aux_net.models.defect_aux_net import model_loss

# The low-level features are at stride 4: the ASPP output is upsampled 4x to meet
# them, and the decoder's logits 4x again to the input size.
LOW_LEVEL_STRIDE = 4


@keras.saving.register_keras_serializable(package="defect_aux_net")
class DeepLabV3Plus(keras.Model):
    """Encoder (backbone + ASPP at output stride 16) and decoder (stride-4 skip).

    The decoder reduces the backbone's stride-4 features with a 1x1 conv, concatenates
    them with the ASPP output upsampled 4x (bilinear), refines them with two 3x3 convs,
    and a 1x1 conv gives logits, upsampled 4x (bilinear) to the input size. Every conv
    but the last is followed by batch norm and ReLU. `aspp=False` is the paper's
    bare-bone baseline: the two 3x3 convs on the stride-16 features, upsampled 16x.

    Outputs (a dict):
      segmentation: float32 `[B, H, W, K]` per-class probabilities: sigmoids of K
        logits (`output="sigmoid"`), or the K class probabilities of the softmax over
        background + K logits (`output="softmax"`, the paper's label map).
      segmentation_logits (softmax only): float32 `[B, H, W, K + 1]`, background first,
        what the label-map loss reads.

    Post-processing, evaluation and serving read `segmentation`, as from any model.
    Training is the model's own (`compute_loss`) on the input pipeline's targets:
    `SEGMENTATION_LOSS_FUNCTIONS[config.segmentation_loss]` of the sigmoid output, or
    `label_map_loss` of the softmax logits. Compile with an optimizer only.

    Example:
    ```python
    model = DeepLabV3Plus(DeepLabV3PlusConfig.from_preset("severstal_efficientnetb1"))
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    model.fit(dataset, epochs=30, steps_per_epoch=steps)
    ```

    Args:
      config: a `DeepLabV3PlusConfig` (or its dict, as stored in `.keras` files).
    """

    def __init__(self, config, **kwargs):
        if isinstance(config, dict):
            config = DeepLabV3PlusConfig(**config)
        momentum = config.batch_norm_momentum
        inputs = keras.Input(config.input_shape, name="images")
        images = inputs
        if config.resolved_input_normalization != "min_max":
            images = ImageNetNormalization(
                config.resolved_input_normalization, name="input_normalization"
            )(images)
        features = build_deeplab_backbone(config)(images)
        if config.aspp:
            encoded = ASPP(config.aspp_rates, config.channels, momentum, name="aspp")(
                features["high"]
            )
            encoded = keras.layers.UpSampling2D(
                OUTPUT_STRIDE // LOW_LEVEL_STRIDE, interpolation="bilinear",
                name="aspp_upsample",
            )(encoded)
            low_level = _conv_bn_relu(
                config.low_level_channels, 1, momentum, "low_level_reduction"
            )(features["low"])
            decoded = keras.layers.Concatenate(name="decoder_concat")([encoded, low_level])
            output_stride = LOW_LEVEL_STRIDE
        else:
            decoded = features["high"]
            output_stride = OUTPUT_STRIDE
        for index in (1, 2):
            decoded = _conv_bn_relu(config.channels, 3, momentum, f"decoder_conv{index}")(
                decoded
            )
        softmax = config.output == "softmax"
        logits = keras.layers.Conv2D(
            config.num_classes + int(softmax), 1, name="classifier"
        )(decoded)
        logits = keras.layers.UpSampling2D(
            output_stride, interpolation="bilinear", name="output_upsample"
        )(logits)
        # Mixed precision computes in bfloat16; outputs and losses stay float32.
        if softmax:
            logits = keras.layers.Activation(
                "linear", dtype="float32", name="segmentation_logits"
            )(logits)
            outputs = {
                "segmentation": LabelMapProbabilities(name="segmentation")(logits),
                "segmentation_logits": logits,
            }
        else:
            outputs = {
                "segmentation": keras.layers.Activation(
                    "sigmoid", dtype="float32", name="segmentation"
                )(logits)
            }
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.config = config
        self.task_loss_trackers = {"segmentation": keras.metrics.Mean(name="segmentation_loss")}

    # A model without detection: no anchors for the shared decoding to read.
    anchors = None
    # No classifier to gate the segmentation behind.
    supports_gated_inference = False

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        masks = y["segmentation"]
        batch_size = ops.shape(masks)[0]
        # 1 for examples with a mask, 0 for the others (a missing key: all have one).
        example_weights = (sample_weight or {}).get("segmentation")
        if example_weights is None:
            example_weights = ops.ones((batch_size,), "float32")
        example_weights = ops.reshape(ops.cast(example_weights, "float32"), (batch_size,))
        class_weights = y.get("segmentation_weights")
        if self.config.output == "softmax":
            loss = label_map_loss(
                masks, y_pred["segmentation_logits"], example_weights, class_weights
            )
        else:
            pixel_weights = ops.reshape(example_weights, (-1, 1, 1, 1))
            if class_weights is not None:
                pixel_weights = pixel_weights * ops.cast(class_weights, "float32")
            probabilities = y_pred["segmentation"]
            loss = SEGMENTATION_LOSS_FUNCTIONS[self.config.segmentation_loss](
                masks, probabilities, ops.broadcast_to(pixel_weights, ops.shape(probabilities))
            )
        self.task_loss_trackers["segmentation"].update_state(loss)
        return model_loss(self, loss)

    @property
    def metrics(self):
        return super().metrics + list(self.task_loss_trackers.values())

    def get_config(self):
        config = config_for_saving(self.config)
        return {"config": config, "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _conv_bn_relu(filters, kernel_size, momentum, name):
    """Convolution without bias, batch norm, ReLU: DeepLabV3+'s block."""
    return keras.Sequential(
        [
            keras.layers.Conv2D(
                filters, kernel_size, padding="same", use_bias=False, name=f"{name}_conv"
            ),
            keras.layers.BatchNormalization(momentum=momentum, name=f"{name}_bn"),
            keras.layers.ReLU(name=f"{name}_relu"),
        ],
        name=name,
    )
