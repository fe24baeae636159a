"""The input normalisation that pretrained ImageNet weights expect, as the model's first layer."""

import keras
from keras import ops

# keras.applications' `preprocess_input` modes: the scale the [0, 1] images are
# multiplied by, whether channels are reversed to BGR, and the per-channel mean and
# standard deviation on that scale (in the output order; None: left out).
MODES = {
    # keras.applications.resnet (the original Caffe ResNet weights).
    "caffe": {"scale": 255.0, "bgr": True, "mean": (103.939, 116.779, 123.68), "std": None},
    # keras.applications.densenet (PyTorch's ImageNet statistics).
    "torch": {
        "scale": 1.0, "bgr": False, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225),
    },
    # keras.applications.efficientnet: 0-255 pixels, which the network's own first
    # layers rescale and normalise.
    "raw": {"scale": 255.0, "bgr": False, "mean": None, "std": None},
}


@keras.saving.register_keras_serializable(package="defect_aux_net")
class ImageNetNormalization(keras.layers.Layer):
    """Maps RGB images in [0, 1] to the input pretrained weights were trained on.

    `prepare_image` keeps images in [0, 1] (augmentation and exports work in that
    range); with pretrained weights it scales them by 1/255 instead of stretching each
    image (`input_normalization`), and this layer gives the backbone exactly what
    keras.applications' `preprocess_input` of the mode (`resnet`: "caffe", `densenet`:
    "torch", `efficientnet`: "raw") would give it from the 0-255 image.
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
        mode = MODES[self.mode]
        values = ops.cast(inputs, "float32") * mode["scale"]
        if mode["bgr"]:
            values = ops.flip(values, axis=-1)
        if mode["mean"] is not None:
            values = values - ops.convert_to_tensor(mode["mean"], "float32")
        if mode["std"] is not None:
            values = values / ops.convert_to_tensor(mode["std"], "float32")
        return values

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode})
        return config
