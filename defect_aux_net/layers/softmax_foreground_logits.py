"""A softmax over background and K classes as K logits whose sigmoids are its probabilities.

The library's detection outputs are per-class logits read through a sigmoid
(`decode_detections`, export, evaluation). A softmax detector (SSD) gives them its
foreground probabilities `p_k` as `z_k = log p_k - log(1 - p_k)`: sigmoid(z_k) = p_k,
computed without subtracting probabilities near 1. Its losses read the softmax logits
themselves: `z` cannot give back a background probability far below what the other
classes leave (`1 - p_k` then holds it below float precision).
"""

import keras
from keras import ops


def softmax_foreground_logits(logits):
    """`[..., K + 1]` softmax logits (background first) -> `[..., K]` sigmoid logits.

    `log p_k - log(1 - p_k) = a_k - logsumexp_{j != k} a_j`: the logsumexp of the
    other logits, with `a_k` masked out, so a `p_k` near 1 loses nothing.
    """
    num_classes = ops.shape(logits)[-1] - 1
    foreground = logits[..., 1:]
    # [K, K + 1]: row k masks column k + 1 (its class) out of the sum.
    mask = ops.eye(num_classes, num_classes + 1, k=1, dtype="bool")
    others = ops.where(mask, float("-inf"), logits[..., None, :])
    return foreground - ops.logsumexp(others, axis=-1)


@keras.saving.register_keras_serializable(package="defect_aux_net")
class SoftmaxForegroundLogits(keras.layers.Layer):
    """`softmax_foreground_logits` as a layer: `[B, A, K + 1]` -> `[B, A, K]`.

    Example:
    ```python
    box_classification = SoftmaxForegroundLogits(dtype="float32")(class_logits)
    ```
    """

    def call(self, logits):
        return softmax_foreground_logits(ops.cast(logits, self.compute_dtype))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] - 1)
