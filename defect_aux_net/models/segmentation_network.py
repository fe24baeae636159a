"""The segmentation baselines of the paper's Table II: Defect-Aux-Net's bottom-up pathway
with UNet's, LinkNet's or PSPNet's decoder."""

import keras

from defect_aux_net.layers.linknet_decoder import LinkNetDecoder
from defect_aux_net.layers.pyramid_pooling_decoder import PyramidPoolingDecoder
from defect_aux_net.layers.unet_decoder import UNetDecoder
from defect_aux_net.losses.multi_task import MultiTaskLoss
from defect_aux_net.models.backbone import apply_backbone
from defect_aux_net.models.defect_aux_net import DefectAuxNet, model_loss
from defect_aux_net.models.segmentation_network_config import SegmentationNetworkConfig

# conv1's output (stride 2): the finest skip level of UNet and LinkNet.
C1_LAYER = "conv1_relu"


@keras.saving.register_keras_serializable(package="defect_aux_net")
class SegmentationNetwork(keras.Model):
    """A segmentation network: the attention ResNet of Defect-Aux-Net and a decoder.

    Outputs (a dict, as `DefectAuxNet`'s with `tasks=("segmentation",)`):
      segmentation: float32 `[B, H, W, K]` per-class mask probabilities (sigmoid).

    The image is padded bottom/right to a multiple of 32, the backbone gives `C2..C5`
    plus conv1's output as `C1`, the decoder (`config.decoder`) turns them into mask
    logits at the padded size, and the padding is cropped off. Training uses the
    config's segmentation loss through `MultiTaskLoss` (pixels of images without a mask
    weigh 0, distance weights apply), on the input pipeline's
    `(images, targets, annotation_flags)`: compile with an optimizer only.

    Example:
    ```python
    model = SegmentationNetwork(model_config("pspnet", "tekerreka"))
    model.compile(optimizer="adam")
    masks = model(images)["segmentation"]
    ```

    Args:
      config: a `SegmentationNetworkConfig` (or its dict, as stored in `.keras` files).
    """

    def __init__(self, config, **kwargs):
        if isinstance(config, dict):
            config = SegmentationNetworkConfig(**config)
        inputs = keras.Input(config.input_shape, name="images")
        height, width = config.input_shape[:2]
        padded_height, padded_width = config.padded_size
        cropping = ((0, padded_height - height), (0, padded_width - width))
        # conv1's output as a fifth level.
        _, features = apply_backbone(config, inputs, config.padded_size, {"C1": C1_LAYER})
        decoder_args = dict(
            num_classes=config.num_classes,
            batch_norm_momentum=config.batch_norm_momentum,
            name=f"{config.decoder}_decoder",
        )
        if config.decoder == "unet":
            decoder = UNetDecoder(channels=config.decoder_channels, **decoder_args)
        elif config.decoder == "linknet":
            decoder = LinkNetDecoder(channels=config.decoder_channels, **decoder_args)
        else:
            decoder = PyramidPoolingDecoder(**decoder_args)
        logits = keras.layers.Cropping2D(cropping, name="crop")(decoder(features))
        outputs = {
            # Mixed precision computes in bfloat16; outputs and losses stay float32.
            "segmentation": keras.layers.Activation(
                "sigmoid", dtype="float32", name="segmentation"
            )(logits)
        }
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.config = config
        self.multi_task_loss = MultiTaskLoss(config)
        self.segmentation_loss_tracker = keras.metrics.Mean(name="segmentation_loss")

    # A model without detection: no anchors for the shared decoding to read.
    anchors = None
    # One head: nothing to skip behind a classification gate.
    supports_gated_inference = False

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = self.multi_task_loss(y, y_pred, sample_weight)["segmentation"]
        self.segmentation_loss_tracker.update_state(loss)
        return model_loss(self, loss)

    @property
    def metrics(self):
        return super().metrics + [self.segmentation_loss_tracker]

    def get_config(self):
        # Defect-Aux-Net's rule, for the same backbone fields: weights come from the saved
        # file (never downloaded on reload), and the normalisation they implied stays.
        return DefectAuxNet.get_config(self)

    @classmethod
    def from_config(cls, config):
        return cls(**config)
