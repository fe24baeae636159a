"""LinkNet's decoder on the bottom-up pathway's levels: decoder blocks added to the skips."""

import keras

from defect_aux_net.layers.unet_decoder import SKIP_LEVELS

# reduce (1x1), up (3x3 transposed, stride 2), expand (1x1): each conv + BN + ReLU.
BLOCK_LAYERS = ("reduce", "up", "expand")


@keras.saving.register_keras_serializable(package="defect_aux_net")
class LinkNetDecoder(keras.layers.Layer):
    """Turns backbone levels `C1..C5` into per-class mask logits at 32 x C5's size.

    From `C5` (stride 32), five decoder blocks each double the resolution (LinkNet,
    Chaurasia and Culurciello 2017): a 1x1 conv from m channels to m/4, a 3x3
    transposed conv of stride 2, a 1x1 conv to n channels, each followed by batch norm
    and ReLU. The first four blocks' outputs are ADDED to the backbone level of their
    scale (`C4`, `C3`, `C2`, `C1`), so n is that level's channels; the last block, at
    stride 1, has no skip and gives `channels` maps. A 1x1 conv gives one logit map per
    class.

    The upsampling is the paper's transposed ("full") convolution rather than a fixed
    upsampling followed by a conv: LinkNet's block learns its 2x step, and that is the
    difference from UNet's stage the comparison is about besides the addition.

    Example:
    ```python
    decoder = LinkNetDecoder(num_classes=4, channels=16)
    logits = decoder({"C1": c1, "C2": c2, "C3": c3, "C4": c4, "C5": c5})
    ```

    Args:
      num_classes: mask channels K.
      channels: output channels of the last block (stride 1).
      batch_norm_momentum: momentum of the batch norms' moving statistics.
    """

    def __init__(self, num_classes: int, channels: int = 16, batch_norm_momentum: float = 0.99,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.channels = channels
        self.batch_norm_momentum = batch_norm_momentum

    def build(self, input_shape):
        # Widths follow the inputs' channels, so the convs are made here.
        layer_args = dict(dtype=self.dtype_policy)
        self.convs, self.norms = [], []  # Flat: three per block, as `BLOCK_LAYERS`.
        in_channels = input_shape["C5"][-1]
        for block, skip in enumerate((*SKIP_LEVELS, None)):
            reduced = max(1, in_channels // 4)
            out_channels = self.channels if skip is None else input_shape[skip][-1]
            widths = (reduced, reduced, out_channels)
            for kind, width in zip(BLOCK_LAYERS, widths):
                name = f"block{block + 1}_{kind}"
                if kind == "up":
                    conv = keras.layers.Conv2DTranspose(
                        width, 3, strides=2, padding="same", use_bias=False,
                        name=f"{name}_conv", **layer_args,
                    )
                else:
                    conv = keras.layers.Conv2D(
                        width, 1, use_bias=False, name=f"{name}_conv", **layer_args
                    )
                conv.build((None, None, None, in_channels))
                norm = keras.layers.BatchNormalization(
                    momentum=self.batch_norm_momentum, name=f"{name}_bn", **layer_args
                )
                norm.build((None, None, None, width))
                self.convs.append(conv)
                self.norms.append(norm)
                in_channels = width
        self.class_conv = keras.layers.Conv2D(
            self.num_classes, 1, name="class_conv", **layer_args
        )
        self.class_conv.build((None, None, None, in_channels))

    def call(self, features, training=None):
        x = features["C5"]
        for block, skip in enumerate((*SKIP_LEVELS, None)):
            for index in range(3 * block, 3 * block + 3):
                x = keras.activations.relu(self.norms[index](self.convs[index](x),
                                                             training=training))
            if skip is not None:
                x = x + features[skip]
        return self.class_conv(x)

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_classes": self.num_classes,
            "channels": self.channels,
            "batch_norm_momentum": self.batch_norm_momentum,
        })
        return config
