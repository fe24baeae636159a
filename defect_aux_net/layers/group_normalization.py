"""Group normalisation of channels-last maps, its statistics reduced in a CPU-fast order."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="defect_aux_net")
class GroupNormalization(keras.layers.GroupNormalization):
    """Keras' `GroupNormalization` on `[B, H, W, C]` inputs, computed in another order.

    The same mean and variance of each image's group of channels, the same weights and
    config; only the summation order differs (float32 rounding). Keras reshapes the
    input to `[B, H, W, G, C / G]` and reduces over its axes 1, 2 and 4, which
    TensorFlow's CPU kernels do slowly: 21 ms against 4.6 ms here on a `[1, 75, 75,
    256]` map (one thread, Intel Xeon), and twice as slow with the gradient
    (`benchmarks/README.md`). Here each channel's statistics are reduced over the
    image first (contiguous, as a global pooling), then averaged over its group
    (equal counts, so the mean of the channel means is the group's mean). The
    variance is two-pass, as `ops.moments`: the mean of the squared differences from
    the group's mean. Statistics are computed in float32 whatever the input dtype, as
    Keras' layer does. The class keeps Keras' name because `.keras` files store the
    weights of a list's layers under their class name: checkpoints written with Keras'
    layer load into this one.

    Example:
    ```python
    norm = GroupNormalization(groups=32)
    y = norm(keras.random.normal((2, 8, 8, 64)))  # same shape as the input
    ```

    Args:
      groups: number of channel groups; must divide the channels.
      **kwargs: the other arguments of `keras.layers.GroupNormalization` (`axis`
        must be the last).
    """

    def build(self, input_shape):
        if len(input_shape) != 4 or self.axis not in (-1, 3):
            raise ValueError(
                f"GroupNormalization takes [B, H, W, C] inputs normalised over the last "
                f"axis, got shape {tuple(input_shape)} and axis {self.axis}."
            )
        super().build(input_shape)

    def call(self, inputs):
        channels = inputs.shape[-1]
        size = channels // self.groups
        x = ops.cast(inputs, "float32")

        def group_mean(per_channel):
            # [B, C] -> [B, 1, 1, C], each channel holding the mean of its group's values.
            grouped = ops.mean(ops.reshape(per_channel, (-1, self.groups, size)), axis=-1)
            return ops.reshape(ops.repeat(grouped, size, axis=-1), (-1, 1, 1, channels))

        mean = group_mean(ops.mean(x, axis=(1, 2)))
        variance = group_mean(ops.mean(ops.square(x - mean), axis=(1, 2)))
        scale = ops.rsqrt(variance + self.epsilon)
        if self.scale:
            scale = scale * ops.cast(self.gamma, "float32")
        offset = -mean * scale
        if self.center:
            offset = offset + ops.cast(self.beta, "float32")
        return ops.cast(x * scale + offset, self.compute_dtype)
