"""RetinaNet-style detection subnet, shared across pyramid levels."""

import math

import keras
from keras import ops

from defect_aux_net.layers.group_normalization import GroupNormalization


@keras.saving.register_keras_serializable(package="defect_aux_net")
class PredictionHead(keras.layers.Layer):
    """Stack of 3x3 conv + group norm + ReLU blocks and a 3x3 output conv, as per-anchor rows.

    One instance is called on every pyramid level, so the levels share weights.
    Used twice in a detector: as class subnet (`values_per_anchor = K`, bias at
    the prior probability) and as box subnet (`values_per_anchor = 4`).

    Example:
    ```python
    class_head = PredictionHead(anchors_per_location=9, values_per_anchor=4, prior_probability=0.01)
    logits = class_head(p3)  # [B, H * W * 9, 4]
    ```

    Args:
      anchors_per_location: anchors at each feature-map position.
      values_per_anchor: outputs per anchor (classes, or 4 box deltas).
      depth: number of hidden 3x3 convs.
      channels: channels of the hidden convs.
      prior_probability: if set, the output bias starts at the logit of this
        probability (RetinaNet's initialisation for stable focal loss training).
      group_norm: group normalisation after every hidden conv (as torchvision's
        RetinaNet v2 and Keras-Hub's option). Without it (the original RetinaNet)
        the pyramid's unnormalised features (std about 20 in our runs) and Adam
        steps left every hidden ReLU of the class subnet dead within a few hundred
        steps, so it predicted its prior everywhere. Group norm does not depend on
        the batch size and may be shared across levels, unlike batch norm.
    """

    def __init__(
        self,
        anchors_per_location: int,
        values_per_anchor: int,
        depth: int = 4,
        channels: int = 256,
        prior_probability=None,
        group_norm: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.anchors_per_location = anchors_per_location
        self.values_per_anchor = values_per_anchor
        self.depth = depth
        self.channels = channels
        self.prior_probability = prior_probability
        self.group_norm = group_norm
        kernel_init = keras.initializers.RandomNormal(stddev=0.01)
        self.hidden_convs = [
            keras.layers.Conv2D(
                channels, 3, padding="same", kernel_initializer=kernel_init,
                name=f"hidden_{index}", dtype=self.dtype_policy,
            )
            for index in range(depth)
        ]
        # 32 groups (the group-norm paper's default), fewer when channels are not a multiple.
        self.hidden_norms = [
            GroupNormalization(
                math.gcd(32, channels), name=f"hidden_{index}_gn", dtype=self.dtype_policy
            )
            for index in range(depth if group_norm else 0)
        ]
        bias_init = "zeros"
        if prior_probability is not None:
            bias_init = keras.initializers.Constant(
                -math.log((1 - prior_probability) / prior_probability)
            )
        self.output_conv = keras.layers.Conv2D(
            anchors_per_location * values_per_anchor, 3, padding="same",
            kernel_initializer=kernel_init, bias_initializer=bias_init,
            name="output", dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        shape = tuple(input_shape)
        for conv in self.hidden_convs:
            conv.build(shape)
            shape = shape[:-1] + (self.channels,)
        for norm in self.hidden_norms:
            norm.build(shape)
        self.output_conv.build(shape)

    def call(self, features):
        x = features
        for index, conv in enumerate(self.hidden_convs):
            x = conv(x)
            if self.group_norm:
                x = self.hidden_norms[index](x)
            x = ops.relu(x)
        x = self.output_conv(x)
        return ops.reshape(x, (ops.shape(x)[0], -1, self.values_per_anchor))

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        rows = None
        if height is not None and width is not None:
            rows = height * width * self.anchors_per_location
        return (batch, rows, self.values_per_anchor)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "anchors_per_location": self.anchors_per_location,
                "values_per_anchor": self.values_per_anchor,
                "depth": self.depth,
                "channels": self.channels,
                "prior_probability": self.prior_probability,
                "group_norm": self.group_norm,
            }
        )
        return config
