"""Classification branch on the bottom-up output: pooled features to class logits."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="defect_aux_net")
class ClassificationHead(keras.layers.Layer):
    """Global average pooling of `C5` and a dense layer: `[B, K]` image-level logits.

    The head reads the bottom-up pathway only, so its loss trains the backbone and
    this layer and nothing of the top-down pathway (paper section III-B).

    Example:
    ```python
    logits = ClassificationHead(num_classes=4)(c5)  # [B, 4]
    ```

    Args:
      num_classes: number of defect classes K.
    """

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.dense = keras.layers.Dense(num_classes, name="logits", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.dense.build((input_shape[0], input_shape[-1]))

    def call(self, features):
        return self.dense(ops.mean(features, axis=(1, 2)))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes})
        return config
