"""Spatial attention (Defect-Aux-Net Fig. 5): a per-pixel weight from channel statistics."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="defect_aux_net")
class SpatialAttention(keras.layers.Layer):
    """Rescales each pixel by a weight computed from its channels.

    The channel-wise average and maximum are concatenated to a `[B, H, W, 2]` map,
    a `kernel_size` convolution with a sigmoid turns it into a `[B, H, W, 1]`
    attention map, and the input is multiplied by it.

    Example:
    ```python
    sa = SpatialAttention(kernel_size=7)
    y = sa(keras.random.normal((2, 8, 8, 64)))  # same shape as the input
    ```

    Args:
      kernel_size: side of the attention convolution.
    """

    def __init__(self, kernel_size: int = 7, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = kernel_size

    def build(self, input_shape):
        self.attention_conv = keras.layers.Conv2D(
            1,
            self.kernel_size,
            padding="same",
            activation="sigmoid",
            dtype=self.dtype_policy,
            name="conv",
        )
        self.attention_conv.build(tuple(input_shape[:-1]) + (2,))

    def call(self, inputs):
        summary = ops.concatenate(
            [
                ops.mean(inputs, axis=-1, keepdims=True),
                ops.max(inputs, axis=-1, keepdims=True),
            ],
            axis=-1,
        )
        return inputs * self.attention_conv(summary)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"kernel_size": self.kernel_size})
        return config
