"""UNet's decoder on the bottom-up pathway's levels: upsample, concatenate, two convs."""

import keras

# The backbone levels a 2x step of the decoder meets, coarse to fine (C1: conv1's
# output at 1/2); the last step, to the input's resolution, has none.
SKIP_LEVELS = ("C4", "C3", "C2", "C1")
# Each stage's channels as multiples of the last stage's: twice as many per 2x step
# coarser, as UNet's (segmentation_models' Unet: 256, 128, 64, 32, 16).
STAGE_WIDTHS = (16, 8, 4, 2, 1)


@keras.saving.register_keras_serializable(package="defect_aux_net")
class UNetDecoder(keras.layers.Layer):
    """Turns backbone levels `C1..C5` into per-class mask logits at 32 x C5's size.

    From `C5` (stride 32), five stages each double the resolution by nearest-neighbour
    upsampling, concatenate the backbone level of the new scale (`C4`, `C3`, `C2`,
    `C1`; the last stage, at stride 1, has none) and apply two 3x3 conv + batch norm
    + ReLU blocks with `channels * STAGE_WIDTHS[stage]` filters; a 1x1 conv gives one
    logit map per class (UNet's classifier).

    Example:
    ```python
    decoder = UNetDecoder(num_classes=4, channels=16)
    logits = decoder({"C1": c1, "C2": c2, "C3": c3, "C4": c4, "C5": c5})
    ```

    Args:
      num_classes: mask channels K.
      channels: filters of the last stage; each coarser stage has twice as many.
      batch_norm_momentum: momentum of the batch norms' moving statistics.
    """

    def __init__(self, num_classes: int, channels: int = 16, batch_norm_momentum: float = 0.99,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.channels = channels
        self.batch_norm_momentum = batch_norm_momentum
        layer_args = dict(dtype=self.dtype_policy)
        self.upsample = keras.layers.UpSampling2D(2, name="upsample", **layer_args)
        # Flat lists, two blocks per stage: what `.keras` saving tracks.
        self.convs, self.norms = [], []
        for stage, width in enumerate(STAGE_WIDTHS):
            for block in (1, 2):
                self.convs.append(keras.layers.Conv2D(
                    channels * width, 3, padding="same", use_bias=False,
                    name=f"stage{stage + 1}_conv{block}", **layer_args,
                ))
                self.norms.append(keras.layers.BatchNormalization(
                    momentum=batch_norm_momentum, name=f"stage{stage + 1}_bn{block}",
                    **layer_args,
                ))
        self.class_conv = keras.layers.Conv2D(num_classes, 1, name="class_conv", **layer_args)

    def build(self, input_shape):
        in_channels = input_shape["C5"][-1]
        for stage, width in enumerate(STAGE_WIDTHS):
            if stage < len(SKIP_LEVELS):
                in_channels += input_shape[SKIP_LEVELS[stage]][-1]
            for block in (0, 1):
                self.convs[2 * stage + block].build((None, None, None, in_channels))
                in_channels = self.channels * width
                self.norms[2 * stage + block].build((None, None, None, in_channels))
        self.class_conv.build((None, None, None, in_channels))

    def call(self, features, training=None):
        x = features["C5"]
        for stage in range(len(STAGE_WIDTHS)):
            x = self.upsample(x)
            if stage < len(SKIP_LEVELS):
                x = keras.ops.concatenate([x, features[SKIP_LEVELS[stage]]], axis=-1)
            for index in (2 * stage, 2 * stage + 1):
                x = keras.activations.relu(self.norms[index](self.convs[index](x),
                                                             training=training))
        return self.class_conv(x)

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_classes": self.num_classes,
            "channels": self.channels,
            "batch_norm_momentum": self.batch_norm_momentum,
        })
        return config

