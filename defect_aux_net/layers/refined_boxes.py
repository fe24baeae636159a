"""A Cascade R-CNN stage's boxes as the next stage's RoIs."""

import keras
from keras import ops

from defect_aux_net.detection.box_coding import clip_boxes, decode_boxes


@keras.saving.register_keras_serializable(package="defect_aux_net")
class RefinedBoxes(keras.layers.Layer):
    """RoIs moved by a stage's class-agnostic deltas, clipped to the image, without gradient.

    The next stage is trained on these boxes as given (Model Garden stops the gradient
    at each stage's RoIs): its loss does not move the previous stage's regression.
    Computes in float32, as `two_stage_ops` does.

    Example:
    ```python
    layer = RefinedBoxes((64, 64), box_weights=(10.0, 10.0, 5.0, 5.0))
    next_rois = layer(deltas, rois)  # [B, R, 1, 4], [B, R, 4] -> [B, R, 4]
    ```

    Args:
      image_size: `(height, width)` of the model input.
      box_weights: the stage's delta weights (`roi_sampling.CASCADE_STAGES`).
    """

    def __init__(self, image_size, box_weights, **kwargs):
        super().__init__(**{"dtype": "float32", **kwargs})
        self.image_size = tuple(image_size)
        self.box_weights = tuple(box_weights)

    def call(self, box_deltas, rois):
        deltas = ops.reshape(ops.cast(box_deltas, "float32"), ops.shape(rois))
        boxes = clip_boxes(decode_boxes(deltas, rois, self.box_weights), self.image_size)
        return ops.stop_gradient(boxes)

    def compute_output_spec(self, box_deltas, rois):
        return keras.KerasTensor(rois.shape, "float32")

    def get_config(self):
        config = super().get_config()
        config.update({"image_size": self.image_size, "box_weights": self.box_weights})
        return config
