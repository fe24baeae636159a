"""Top-down pathway (FPN): lateral 1x1 convs merged with upsampled coarser levels."""

import keras

BACKBONE_LEVELS = (2, 3, 4, 5)


@keras.saving.register_keras_serializable(package="defect_aux_net")
class FeaturePyramid(keras.layers.Layer):
    """Builds pyramid levels `P{min_level}..P{max_level}` from backbone features `C2..C5`.

    Each `Cl` goes through a 1x1 lateral conv to `channels` and is added to the
    2x bilinearly upsampled `P(l+1)`; a 3x3 conv then smooths each merged map.
    Levels above 5 (for detection) come from stride-2 3x3 convs on `P5`, with a
    ReLU between them, as in RetinaNet. The segmentation head reads `P2`; detection
    alone needs only its own levels (RetinaNet: from `P3`), so a detection-only net
    does not carry `P2`'s convs as unused weights. Levels in `unsmoothed_levels` skip
    the 3x3 conv: a reader that starts with 3x3 convs of its own (the segmentation
    head) smooths them anyway, and at `P2` that conv is the pyramid's costliest.

    Example:
    ```python
    pyramid = FeaturePyramid(channels=256, max_level=7)
    levels = pyramid({"C2": c2, "C3": c3, "C4": c4, "C5": c5})  # {"P2": ..., "P7": ...}
    ```

    Args:
      channels: channels of every pyramid level.
      max_level: coarsest level to produce, at least 5.
      min_level: finest level to produce, 2 to 5.
      unsmoothed_levels: levels among `min_level..5` given as merged, without the 3x3
        conv.
    """

    def __init__(
        self,
        channels: int = 256,
        max_level: int = 5,
        min_level: int = 2,
        unsmoothed_levels: tuple = (),
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 2 <= min_level <= 5:
            raise ValueError(f"min_level must be in 2..5, got {min_level!r}.")
        if max_level < 5:
            raise ValueError(f"max_level must be at least 5, got {max_level!r}.")
        self.channels = channels
        self.max_level = max_level
        self.min_level = min_level
        self.merged_levels = tuple(level for level in BACKBONE_LEVELS if level >= min_level)
        self.unsmoothed_levels = tuple(sorted(unsmoothed_levels))
        if not set(self.unsmoothed_levels) <= set(self.merged_levels):
            raise ValueError(
                f"unsmoothed_levels must be among the merged levels {self.merged_levels}, "
                f"got {unsmoothed_levels!r}."
            )
        conv = dict(dtype=self.dtype_policy)
        # Lists indexed by level - min_level (output convs: by `smoothed_levels`; extra:
        # level - 6); flat lists are what `.keras` saving tracks.
        self.lateral_convs = [
            keras.layers.Conv2D(channels, 1, name=f"lateral_P{level}", **conv)
            for level in self.merged_levels
        ]
        self.smoothed_levels = tuple(
            level for level in self.merged_levels if level not in self.unsmoothed_levels
        )
        self.output_convs = [
            keras.layers.Conv2D(channels, 3, padding="same", name=f"output_P{level}", **conv)
            for level in self.smoothed_levels
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
        for level, lateral in zip(self.merged_levels, self.lateral_convs):
            feature_shape = tuple(input_shape[f"C{level}"])
            lateral.build(feature_shape)
            if level in self.smoothed_levels:
                self.output_convs[self.smoothed_levels.index(level)].build(
                    feature_shape[:-1] + (self.channels,)
                )
        p5_shape = tuple(input_shape["C5"][:-1]) + (self.channels,)
        for extra in self.extra_convs:
            extra.build(p5_shape)

    def call(self, features):
        merged = self.lateral_convs[-1](features["C5"])
        outputs = {"P5": self._smoothed(5, merged)}
        for level in range(4, self.min_level - 1, -1):
            lateral = self.lateral_convs[level - self.min_level](features[f"C{level}"])
            merged = lateral + self.upsample(merged)
            outputs[f"P{level}"] = self._smoothed(level, merged)
        coarser = outputs["P5"]
        for level, extra in zip(range(6, self.max_level + 1), self.extra_convs):
            coarser = extra(coarser if level == 6 else self.relu(coarser))
            outputs[f"P{level}"] = coarser
        levels = range(self.min_level, self.max_level + 1)
        return {f"P{level}": outputs[f"P{level}"] for level in levels}

    def _smoothed(self, level, merged):
        if level not in self.smoothed_levels:
            return merged
        return self.output_convs[self.smoothed_levels.index(level)](merged)

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape["C2"]
        shapes = {}
        for level in range(self.min_level, self.max_level + 1):
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
        config.update(
            {
                "channels": self.channels,
                "max_level": self.max_level,
                "min_level": self.min_level,
                "unsmoothed_levels": self.unsmoothed_levels,
            }
        )
        return config
