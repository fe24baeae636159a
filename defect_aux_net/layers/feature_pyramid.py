"""Top-down pathway (FPN): lateral 1x1 convs merged with upsampled coarser levels."""

import keras

BACKBONE_LEVELS = (2, 3, 4, 5)


@keras.saving.register_keras_serializable(package="defect_aux_net")
class FeaturePyramid(keras.layers.Layer):
    """Builds pyramid levels `P2..P{max_level}` from backbone features `C2..C5`.

    Each `Cl` goes through a 1x1 lateral conv to `channels` and is added to the
    2x bilinearly upsampled `P(l+1)`; a 3x3 conv then smooths each merged map.
    Levels above 5 (for detection) come from stride-2 3x3 convs on `P5`, with a
    ReLU between them, as in RetinaNet.

    Example:
    ```python
    pyramid = FeaturePyramid(channels=256, max_level=7)
    levels = pyramid({"C2": c2, "C3": c3, "C4": c4, "C5": c5})  # {"P2": ..., "P7": ...}
    ```

    Args:
      channels: channels of every pyramid level.
      max_level: coarsest level to produce, at least 5.
    """

    def __init__(self, channels: int = 256, max_level: int = 5, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.max_level = max_level
        conv = dict(dtype=self.dtype_policy)
        # Lists indexed by level - 2 (extra: level - 6); flat lists are what `.keras`
        # saving tracks.
        self.lateral_convs = [
            keras.layers.Conv2D(channels, 1, name=f"lateral_P{level}", **conv)
            for level in BACKBONE_LEVELS
        ]
        self.output_convs = [
            keras.layers.Conv2D(channels, 3, padding="same", name=f"output_P{level}", **conv)
            for level in BACKBONE_LEVELS
        ]
        self.extra_convs = [
            keras.layers.Conv2D(
                channels, 3, strides=2, padding="same", name=f"extra_P{level}", **conv
            )
            for level in range(6, max_level + 1)
        ]
        self.upsample = keras.layers.UpSampling2D(
            2, interpolation="bilinear", name="upsample", **conv
        )
        self.relu = keras.layers.ReLU(name="relu", **conv)

    def build(self, input_shape):
        for level, lateral, output in zip(BACKBONE_LEVELS, self.lateral_convs, self.output_convs):
            feature_shape = tuple(input_shape[f"C{level}"])
            lateral.build(feature_shape)
            output.build(feature_shape[:-1] + (self.channels,))
        p5_shape = tuple(input_shape["C5"][:-1]) + (self.channels,)
        for extra in self.extra_convs:
            extra.build(p5_shape)

    def call(self, features):
        merged = self.lateral_convs[3](features["C5"])
        outputs = {"P5": self.output_convs[3](merged)}
        for level in (4, 3, 2):
            lateral = self.lateral_convs[level - 2](features[f"C{level}"])
            merged = lateral + self.upsample(merged)
            outputs[f"P{level}"] = self.output_convs[level - 2](merged)
        coarser = outputs["P5"]
        for level, extra in zip(range(6, self.max_level + 1), self.extra_convs):
            coarser = extra(coarser if level == 6 else self.relu(coarser))
            outputs[f"P{level}"] = coarser
        return {f"P{level}": outputs[f"P{level}"] for level in range(2, self.max_level + 1)}

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape["C2"]
        shapes = {}
        for level in range(2, self.max_level + 1):
            scale = 2 ** (level - 2)
            shapes[f"P{level}"] = (
                batch,
                None if height is None else -(-height // scale),
                None if width is None else -(-width // scale),
                self.channels,
            )
        return shapes

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels, "max_level": self.max_level})
        return config
