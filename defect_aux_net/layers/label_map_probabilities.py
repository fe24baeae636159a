"""The per-class probabilities of a label map's logits (background + K classes)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="defect_aux_net")
class LabelMapProbabilities(keras.layers.Layer):
    """Softmax over background + K class logits; returns the K class probabilities.

    A label-map model (one class per pixel, background included) then has the
    `[B, H, W, K]` per-class probability maps that evaluation, post-processing and
    serving read from every model. Computed in float32 under any dtype policy.

    Example:
    ```python
    probabilities = LabelMapProbabilities()(logits)  # [B, H, W, K + 1] -> [B, H, W, K]
    ```
    """

    def __init__(self, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)

    def call(self, logits):
        return ops.softmax(ops.cast(logits, "float32"), axis=-1)[..., 1:]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (input_shape[-1] - 1,)
