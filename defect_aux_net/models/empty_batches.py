"""Calling a model on a batch that may hold no image.

An empty batch is common in serving: an empty request, or a gated batch in which no
image passes the gate (most batches on a line with few defects). TensorFlow's oneDNN
convolutions, the default on x86 Linux, mishandle it on CPUs with AVX-512: an
eager Conv2D on a `[0, h, w, c]` input raises "Incompatible shapes", and inside a
`tf.function` it returns a tensor of the wrong shape. So no layer is ever run on an
empty batch: the outputs of an empty batch are made from the model's static output
shapes instead.
"""

import keras
from keras import ops


def call_unless_empty(model: keras.Model, inputs, batch_size):
    """`model(inputs, training=False)`, or its outputs for no image when `batch_size` is 0.

    Args:
      model: a functional `keras.Model` whose outputs have static shapes past the batch.
      inputs: what `model` takes, batch first.
      batch_size: scalar tensor, the number of images in `inputs`.

    Returns:
      the model's outputs, or zeros shaped `[0, ...]` like them when `batch_size` is 0.
    """

    def empty_outputs():
        return keras.tree.map_structure(
            lambda output: ops.zeros((0, *output.shape[1:]), output.dtype), model.output
        )

    return ops.cond(batch_size > 0, lambda: model(inputs, training=False), empty_outputs)
