"""Per-sample feature normalisation of the segmentation + decision network."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="defect_aux_net")
class FeatureNorm(keras.layers.Layer):
    """Normalises each channel of each sample over its spatial positions.

    `scale * (x - mean) / sqrt(std + epsilon) + bias`, with `mean` and `std` (the
    unbiased standard deviation) over height and width, per sample and channel: the
    reference code's definition (the square root of the standard deviation, not of
    the variance). No batch statistics, so batch 1 (the paper's) trains as any other.
    A 1x1 map has no spread: its std is taken as 0 and the output is `bias`. `scale`
    starts at 1 and `bias` at 0, and both train.

    Example:
    ```python
    normalized = FeatureNorm()(features)  # [B, H, W, C] -> [B, H, W, C]
    ```

    Args:
      epsilon: added to the standard deviation before the square root.
    """

    def __init__(self, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        channels = input_shape[-1]
        self.scale = self.add_weight(name="scale", shape=(channels,), initializer="ones")
        self.bias = self.add_weight(name="bias", shape=(channels,), initializer="zeros")

    def call(self, inputs):
        mean = ops.mean(inputs, axis=(1, 2), keepdims=True)
        count = ops.cast(ops.shape(inputs)[1] * ops.shape(inputs)[2], inputs.dtype)
        squares = ops.sum(ops.square(inputs - mean), axis=(1, 2), keepdims=True)
        variance = squares / ops.maximum(count - 1, 1)
        # sqrt's gradient at 0 is infinite (NaN once multiplied by 0): a constant map
        # gets std 0 through the branch that sqrt never sees.
        spread = variance > 0
        std = ops.where(spread, ops.sqrt(ops.where(spread, variance, 1)), 0)
        return self.scale * (inputs - mean) / ops.sqrt(std + self.epsilon) + self.bias

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return super().get_config() | {"epsilon": self.epsilon}
