"""The two trainable heads of Faster R-CNN: the region proposal head and the box head."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="defect_aux_net")
class RpnHead(keras.layers.Layer):
    """Objectness logits and box deltas per anchor, one instance shared by every level.

    A 3x3 conv with ReLU, then two sibling 1x1 convs: one objectness logit and 4 deltas
    per anchor (FPN's RPN head). Rows come in `generate_anchors`' order (row, column,
    anchor of the location).

    Example:
    ```python
    head = RpnHead(anchors_per_location=3, channels=256)
    logits, deltas = head(p2)  # [B, H * W * 3], [B, H * W * 3, 4]
    ```

    Args:
      anchors_per_location: anchors at each feature-map position.
      channels: channels of the shared 3x3 conv.
    """

    def __init__(self, anchors_per_location: int, channels: int = 256, **kwargs):
        super().__init__(**kwargs)
        self.anchors_per_location = anchors_per_location
        self.channels = channels
        # Detectron's and torchvision's initialisation of the RPN convs.
        init = dict(
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
            dtype=self.dtype_policy,
        )
        self.conv = keras.layers.Conv2D(channels, 3, padding="same", name="conv", **init)
        self.objectness = keras.layers.Conv2D(anchors_per_location, 1, name="objectness", **init)
        self.deltas = keras.layers.Conv2D(4 * anchors_per_location, 1, name="deltas", **init)

    def build(self, input_shape):
        self.conv.build(tuple(input_shape))
        hidden = tuple(input_shape[:-1]) + (self.channels,)
        self.objectness.build(hidden)
        self.deltas.build(hidden)

    def call(self, features):
        hidden = ops.relu(self.conv(features))
        batch = ops.shape(features)[0]
        logits = ops.reshape(self.objectness(hidden), (batch, -1))
        deltas = ops.reshape(self.deltas(hidden), (batch, -1, 4))
        return logits, deltas

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        rows = None
        if height is not None and width is not None:
            rows = height * width * self.anchors_per_location
        return (batch, rows), (batch, rows, 4)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"anchors_per_location": self.anchors_per_location, "channels": self.channels}
        )
        return config


@keras.saving.register_keras_serializable(package="defect_aux_net")
class BoxHead(keras.layers.Layer):
    """Class logits (background first) and box deltas of each RoI's crop.

    The crop is flattened and goes through `num_layers` fully connected ReLU layers of
    `units` (Faster R-CNN with FPN: two of 1,024), then two sibling layers: `K + 1`
    logits (0 background, `k + 1` class `k`) and 4 deltas for each of the K classes,
    or one set shared by every class (`class_agnostic`, Cascade R-CNN's stages: the
    next stage refines one box per RoI).

    Example:
    ```python
    head = BoxHead(num_classes=2, units=1024)
    logits, deltas = head(crops)  # crops [B, R, 7, 7, C] -> [B, R, 3], [B, R, 2, 4]
    ```

    Args:
      num_classes: defect classes K.
      units: width of the hidden layers.
      num_layers: hidden layers.
      class_agnostic: one set of deltas per RoI, `[B, R, 1, 4]`.
    """

    def __init__(self, num_classes: int, units: int = 1024, num_layers: int = 2,
                 class_agnostic: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.units = units
        self.num_layers = num_layers
        self.class_agnostic = class_agnostic
        self.box_sets = 1 if class_agnostic else num_classes
        self.hidden = [
            keras.layers.Dense(units, activation="relu", name=f"fc_{index}",
                               dtype=self.dtype_policy)
            for index in range(num_layers)
        ]
        # Detectron's initialisation: small class logits, smaller deltas.
        self.class_logits = keras.layers.Dense(
            num_classes + 1, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
            name="class_logits", dtype=self.dtype_policy,
        )
        self.box_deltas = keras.layers.Dense(
            4 * self.box_sets, kernel_initializer=keras.initializers.RandomNormal(stddev=0.001),
            name="box_deltas", dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        batch, rois = input_shape[:2]
        shape = (batch, rois, _product(input_shape[2:]))
        for layer in self.hidden:
            layer.build(shape)
            shape = shape[:-1] + (self.units,)
        self.class_logits.build(shape)
        self.box_deltas.build(shape)

    def call(self, crops):
        shape = ops.shape(crops)
        x = ops.reshape(crops, (shape[0], shape[1], _product(crops.shape[2:])))
        for layer in self.hidden:
            x = layer(x)
        deltas = ops.reshape(self.box_deltas(x), (shape[0], shape[1], self.box_sets, 4))
        return self.class_logits(x), deltas

    def compute_output_shape(self, input_shape):
        batch, rois = input_shape[:2]
        return (batch, rois, self.num_classes + 1), (batch, rois, self.box_sets, 4)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"num_classes": self.num_classes, "units": self.units, "num_layers": self.num_layers,
             "class_agnostic": self.class_agnostic}
        )
        return config


def _product(sizes) -> int:
    result = 1
    for size in sizes:
        result *= int(size)
    return result
