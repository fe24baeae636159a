"""Segmentation branch on the top-down pathway (semantic FPN): masks at input scale."""

import keras

from defect_aux_net.layers.feature_pyramid import BACKBONE_LEVELS


@keras.saving.register_keras_serializable(package="defect_aux_net")
class SegmentationHead(keras.layers.Layer):
    """Turns pyramid levels `P2..P5` into per-class mask logits at stride 1.

    Every level is refined by 3x3 conv + batch norm + ReLU blocks, each followed
    by 2x bilinear upsampling, until it reaches 1/4 scale (`P5`: 3 blocks, `P2`:
    1 block without upsampling); the four maps are summed, and a 3x3 conv gives
    one logit map per class, upsampled 4x bilinearly to the (padded) input size.

    Example:
    ```python
    head = SegmentationHead(num_classes=4, channels=128)
    logits = head(pyramid_levels)  # [B, 4 * H(P2), 4 * W(P2), 4]
    ```

    Args:
      num_classes: mask channels K.
      channels: channels of the refinement convs.
      dropout: spatial dropout rate before the class conv.
      batch_norm_momentum: momentum of the batch norms' moving statistics.
    """

    def __init__(
        self,
        num_classes: int,
        channels: int = 128,
        dropout: float = 0.2,
        batch_norm_momentum: float = 0.99,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.channels = channels
        self.dropout = dropout
        self.batch_norm_momentum = batch_norm_momentum
        layer_args = dict(dtype=self.dtype_policy)
        # Flat lists (not nested containers) so that `.keras` saving tracks every layer.
        self.refine_convs, self.refine_norms = [], []
        for level, index in _refine_blocks():
            self.refine_convs.append(
                keras.layers.Conv2D(
                    channels, 3, padding="same", use_bias=False,
                    name=f"P{level}_block{index}_conv", **layer_args,
                )
            )
            self.refine_norms.append(
                keras.layers.BatchNormalization(
                    momentum=batch_norm_momentum,
                    name=f"P{level}_block{index}_bn",
                    **layer_args,
                )
            )
        self.upsample = keras.layers.UpSampling2D(
            2, interpolation="bilinear", name="upsample", **layer_args
        )
        self.dropout_layer = keras.layers.SpatialDropout2D(dropout, name="dropout", **layer_args)
        self.class_conv = keras.layers.Conv2D(
            num_classes, 3, padding="same", name="class_conv", **layer_args
        )
        self.output_upsample = keras.layers.UpSampling2D(
            4, interpolation="bilinear", name="output_upsample", **layer_args
        )

    def build(self, input_shape):
        for (level, index), conv, norm in zip(
            _refine_blocks(), self.refine_convs, self.refine_norms
        ):
            shape = tuple(input_shape[f"P{level}"])
            conv.build(shape if index == 0 else shape[:-1] + (self.channels,))
            norm.build(shape[:-1] + (self.channels,))
        self.class_conv.build(tuple(input_shape["P2"][:-1]) + (self.channels,))

    def call(self, features, training=None):
        level_maps = {}
        for (level, index), conv, norm in zip(
            _refine_blocks(), self.refine_convs, self.refine_norms
        ):
            x = features[f"P{level}"] if index == 0 else level_maps[level]
            x = keras.activations.relu(norm(conv(x), training=training))
            level_maps[level] = self.upsample(x) if level > 2 else x
        merged = sum(level_maps[level] for level in BACKBONE_LEVELS)
        merged = self.dropout_layer(merged, training=training)
        return self.output_upsample(self.class_conv(merged))

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape["P2"]
        return (
            batch,
            None if height is None else 4 * height,
            None if width is None else 4 * width,
            self.num_classes,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "channels": self.channels,
                "dropout": self.dropout,
                "batch_norm_momentum": self.batch_norm_momentum,
            }
        )
        return config


def _refine_blocks():
    """`(level, block index)` of every refinement block: one per 2x step to 1/4 scale."""
    return [(level, index) for level in BACKBONE_LEVELS for index in range(max(1, level - 2))]
