"""A layer that passes its input forward and, when active, no gradient back."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="defect_aux_net")
class GradientStop(keras.layers.Layer):
    """Identity in the forward pass; with `active`, a zero gradient to its input.

    The segmentation + decision network's gradient-flow adjustment: the decision
    head reads the segmentation features and logits but does not train them.

    Example:
    ```python
    decision_input = GradientStop()(features)
    ```

    Args:
      active: stop the gradient (False: a plain identity, for the ablation).
    """

    def __init__(self, active: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.active = active

    def call(self, inputs):
        return ops.stop_gradient(inputs) if self.active else inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return super().get_config() | {"active": self.active}
