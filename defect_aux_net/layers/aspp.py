"""Atrous spatial pyramid pooling (DeepLabV3, Chen et al. 2017; DeepLabV3+ encoder)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="defect_aux_net")
class ASPP(keras.layers.Layer):
    """Parallel views of one feature map at several fields of view, merged.

    Five branches, each a convolution without bias + batch norm + ReLU: a 1x1 conv,
    one 3x3 conv per rate with that dilation (its taps `rate` pixels apart), and image
    pooling (the map's mean, a 1x1 conv, broadcast back to every position: the
    image-level context a 3x3 conv dilated past the map's edge no longer sees). Their
    concatenation goes through a 1x1 projection + batch norm + ReLU.

    Example:
    ```python
    aspp = ASPP(rates=(6, 12, 18), channels=256)
    encoded = aspp(features)  # [B, H/16, W/16, 256] from stride-16 features
    ```

    Args:
      rates: dilation rates of the 3x3 branches (DeepLabV3+ at output stride 16:
        6, 12, 18).
      channels: channels of every branch and of the output.
      batch_norm_momentum: momentum of the batch norms' moving statistics.
    """

    def __init__(
        self,
        rates: tuple = (6, 12, 18),
        channels: int = 256,
        batch_norm_momentum: float = 0.99,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.rates = tuple(rates)
        self.channels = channels
        self.batch_norm_momentum = batch_norm_momentum
        layer_args = {"use_bias": False, "dtype": self.dtype_policy}
        # Branch order: 1x1, one per rate, image pooling. Flat lists (not nested
        # containers) so that `.keras` saving tracks every layer.
        self.branch_convs = [keras.layers.Conv2D(channels, 1, name="conv_1x1", **layer_args)]
        self.branch_convs += [
            keras.layers.Conv2D(
                channels, 3, padding="same", dilation_rate=rate, name=f"conv_rate{rate}",
                **layer_args,
            )
            for rate in self.rates
        ]
        self.branch_convs.append(
            keras.layers.Conv2D(channels, 1, name="pooling_conv", **layer_args)
        )
        self.branch_norms = [
            keras.layers.BatchNormalization(
                momentum=batch_norm_momentum, name=f"{conv.name}_bn", dtype=self.dtype_policy
            )
            for conv in self.branch_convs
        ]
        self.projection_conv = keras.layers.Conv2D(channels, 1, name="projection", **layer_args)
        self.projection_norm = keras.layers.BatchNormalization(
            momentum=batch_norm_momentum, name="projection_bn", dtype=self.dtype_policy
        )

    def build(self, input_shape):
        branch_shape = tuple(input_shape[:-1]) + (self.channels,)
        for conv, norm in zip(self.branch_convs, self.branch_norms):
            conv.build(tuple(input_shape))
            norm.build(branch_shape)
        concatenated = len(self.branch_convs) * self.channels
        self.projection_conv.build(tuple(input_shape[:-1]) + (concatenated,))
        self.projection_norm.build(branch_shape)

    def call(self, inputs, training=None):
        *spatial_convs, pooling_conv = self.branch_convs
        *spatial_norms, pooling_norm = self.branch_norms
        branches = [
            keras.activations.relu(norm(conv(inputs), training=training))
            for conv, norm in zip(spatial_convs, spatial_norms)
        ]
        pooled = ops.mean(inputs, axis=(1, 2), keepdims=True)
        pooled = keras.activations.relu(pooling_norm(pooling_conv(pooled), training=training))
        # Bilinear upsampling of a 1x1 map is a broadcast.
        branches.append(ops.broadcast_to(pooled, ops.shape(branches[0])))
        merged = self.projection_conv(ops.concatenate(branches, axis=-1))
        return keras.activations.relu(self.projection_norm(merged, training=training))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.channels,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "rates": self.rates,
                "channels": self.channels,
                "batch_norm_momentum": self.batch_norm_momentum,
            }
        )
        return config
