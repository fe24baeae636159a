"""The input normalisation that pretrained ImageNet weights expect, as the model's first layer."""

import keras
from keras import ops

# keras.applications' `preprocess_input` modes: whether channels are reversed to BGR,
# and the per-channel mean subtracted from 0-255 pixel values (in the output order).
MODES = {
    # keras.applications.resnet (the original Caffe ResNet weights).
    "caffe": {"bgr": True, "mean": (103.939, 116.779, 123.68)},
}


@keras.saving.register_keras_serializable(package="defect_aux_net")
class ImageNetNormalization(keras.layers.Layer):
    """Maps RGB images in [0, 1] to the input pretrained weights were trained on.

    `prepare_image` keeps images in [0, 1] (augmentation and exports work in that
    range); with pretrained weights it scales them by 1/255 instead of stretching each
    image (`input_normalization`), and this layer gives the backbone exactly what
    `keras.applications.resnet.preprocess_input` would give it from the 0-255 image.
    Inside the model, every caller of the model (training, the SavedModel, edge
    exports) gets it. Computed in float32 under any dtype policy: a bfloat16 0-255
    value would lose up to half a grey level before the mean is subtracted.

    Example:
    ```python
    normalize = ImageNetNormalization("caffe")
    inputs = normalize(images / 255.0)  # == keras.applications.resnet.preprocess_input(images)
    ```

    Args:
      mode: one of `MODES`.
    """

    def __init__(self, mode: str = "caffe", **kwargs):
        if mode not in MODES:
            raise ValueError(f"Unknown mode {mode!r}; allowed values: {', '.join(MODES)}.")
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, inputs):
        values = ops.cast(inputs, "float32") * 255.0
        if MODES[self.mode]["bgr"]:
            values = ops.flip(values, axis=-1)
        return values - ops.convert_to_tensor(MODES[self.mode]["mean"], "float32")

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode})
        return config
