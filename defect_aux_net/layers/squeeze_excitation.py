"""Squeeze-and-Excitation channel attention (Hu et al.; Defect-Aux-Net eq. 1-2)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="defect_aux_net")
class SqueezeExcitation(keras.layers.Layer):
    """Rescales each channel by a weight computed from global context.

    Squeeze: global average pooling to `[B, C]`. Excite: `sigmoid(W2 relu(W1 z))`
    with `W1: C -> C / ratio`, `W2: C / ratio -> C`. Scale: channel-wise product
    with the input.

    Example:
    ```python
    se = SqueezeExcitation(ratio=16)
    y = se(keras.random.normal((2, 8, 8, 64)))  # same shape as the input
    ```

    Args:
      ratio: bottleneck reduction r.
    """

    def __init__(self, ratio: int = 16, **kwargs):
        super().__init__(**kwargs)
        self.ratio = ratio

    def build(self, input_shape):
        channels = input_shape[-1]
        self.squeeze_dense = keras.layers.Dense(
            max(1, channels // self.ratio),
            activation="relu",
            dtype=self.dtype_policy,
            name="reduce",
        )
        self.excite_dense = keras.layers.Dense(
            channels, activation="sigmoid", dtype=self.dtype_policy, name="expand"
        )
        self.squeeze_dense.build((input_shape[0], channels))
        self.excite_dense.build((input_shape[0], max(1, channels // self.ratio)))

    def call(self, inputs):
        squeezed = ops.mean(inputs, axis=(1, 2))
        weights = self.excite_dense(self.squeeze_dense(squeezed))
        return inputs * weights[:, None, None, :]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"ratio": self.ratio})
        return config
