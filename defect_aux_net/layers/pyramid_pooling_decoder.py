"""PSPNet's pyramid pooling module and classifier on the bottom-up pathway's last level."""

import keras
from keras import ops

# PSPNet's bins (Zhao et al. 2017): 1x1, 2x2, 3x3 and 6x6 average-pooled grids.
PSP_BINS = (1, 2, 3, 6)


def adaptive_average_pool(x, bins: int):
    """Averages `x` (`[B, H, W, C]`, H and W static) over a `bins` x `bins` grid.

    Bin i of a side of n pixels covers pixels `floor(i * n / bins)` up to (excluding)
    `ceil((i + 1) * n / bins)`, as PyTorch's `AdaptiveAvgPool2d`: sides that `bins`
    does not divide get overlapping bins of equal size, and a side shorter than
    `bins` repeats its pixels. Returns `[B, bins, bins, C]`.
    """
    height, width = x.shape[1], x.shape[2]
    if height is None or width is None:
        raise ValueError(
            f"adaptive_average_pool needs a static height and width, got shape {x.shape}."
        )
    rows = []
    for i in range(bins):
        top, bottom = (i * height) // bins, -(-(i + 1) * height // bins)
        cells = []
        for j in range(bins):
            left, right = (j * width) // bins, -(-(j + 1) * width // bins)
            cells.append(ops.mean(x[:, top:bottom, left:right, :], axis=(1, 2)))
        rows.append(ops.stack(cells, axis=1))
    return ops.stack(rows, axis=1)


@keras.saving.register_keras_serializable(package="defect_aux_net")
class PyramidPoolingDecoder(keras.layers.Layer):
    """Turns the last backbone level `C5` into per-class mask logits at 32 x its size.

    PSPNet's pyramid pooling module (Zhao et al. 2017) on `C5` (C channels): for each
    of `bins`, `C5` is average-pooled to a bins x bins grid (`adaptive_average_pool`),
    reduced to C/4 channels by a 1x1 conv + batch norm + ReLU and resized bilinearly
    back to `C5`'s size; `C5` and the pooled maps are concatenated, a 3x3 conv + batch
    norm + ReLU of C/4 channels merges them (the paper: 512 on ResNet's 2048), and a
    1x1 conv gives one logit map per class, upsampled 32x bilinearly.

    The finer levels are not read: PSPNet's context comes from the pooling alone.

    Example:
    ```python
    decoder = PyramidPoolingDecoder(num_classes=4)
    logits = decoder({"C5": c5})  # [B, 32 * H(C5), 32 * W(C5), 4]
    ```

    Args:
      num_classes: mask channels K.
      bins: grid sides of the pooled maps.
      batch_norm_momentum: momentum of the batch norms' moving statistics.
    """

    def __init__(self, num_classes: int, bins: tuple = PSP_BINS,
                 batch_norm_momentum: float = 0.99, **kwargs):
        super().__init__(**kwargs)
        bins = tuple(bins)
        if not bins or any(not isinstance(side, int) or side < 1 for side in bins):
            raise ValueError(f"bins must be positive integers, got {bins!r}.")
        self.num_classes = num_classes
        self.bins = bins
        self.batch_norm_momentum = batch_norm_momentum
        self.upsample = keras.layers.UpSampling2D(
            32, interpolation="bilinear", name="upsample", dtype=self.dtype_policy
        )

    def build(self, input_shape):
        # Widths follow C5's channels, so the convs are made here.
        channels = input_shape["C5"][-1]
        reduced = max(1, channels // 4)
        layer_args = dict(dtype=self.dtype_policy)

        def conv_bn(kernel_size, in_channels, name):
            conv = keras.layers.Conv2D(
                reduced, kernel_size, padding="same", use_bias=False, name=f"{name}_conv",
                **layer_args,
            )
            conv.build((None, None, None, in_channels))
            norm = keras.layers.BatchNormalization(
                momentum=self.batch_norm_momentum, name=f"{name}_bn", **layer_args
            )
            norm.build((None, None, None, reduced))
            return conv, norm

        # Flat lists, one entry per bin: what `.keras` saving tracks.
        self.bin_convs, self.bin_norms = [], []
        for side in self.bins:
            conv, norm = conv_bn(1, channels, f"bin{side}")
            self.bin_convs.append(conv)
            self.bin_norms.append(norm)
        self.merge_conv, self.merge_norm = conv_bn(
            3, channels + reduced * len(self.bins), "merge"
        )
        self.class_conv = keras.layers.Conv2D(self.num_classes, 1, name="class_conv",
                                              **layer_args)
        self.class_conv.build((None, None, None, reduced))

    def call(self, features, training=None):
        x = features["C5"]
        size = (x.shape[1], x.shape[2])
        maps = [x]
        for side, conv, norm in zip(self.bins, self.bin_convs, self.bin_norms):
            pooled = adaptive_average_pool(x, side)
            pooled = keras.activations.relu(norm(conv(pooled), training=training))
            resized = ops.image.resize(pooled, size, interpolation="bilinear")
            maps.append(ops.cast(resized, x.dtype))
        merged = ops.concatenate(maps, axis=-1)
        merged = keras.activations.relu(
            self.merge_norm(self.merge_conv(merged), training=training)
        )
        return self.upsample(self.class_conv(merged))

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_classes": self.num_classes,
            "bins": self.bins,
            "batch_norm_momentum": self.batch_norm_momentum,
        })
        return config
