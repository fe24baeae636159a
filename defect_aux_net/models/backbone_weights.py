"""Loading ImageNet ResNet weights into the bottom-up pathway by layer name."""

import os

import keras

from defect_aux_net.config import IMAGENET_BACKBONES

KERAS_RESNETS = {
    "resnet50": keras.applications.ResNet50,
    "resnet101": keras.applications.ResNet101,
}


def load_backbone_weights(backbone: keras.Model, depth: str, weights: str) -> int:
    """Copies the weights of a `keras.applications` ResNet into `backbone` by layer name.

    Attention layers have no counterpart and keep their initialisation.

    Args:
      backbone: a model from `build_backbone` with 3 input channels.
      depth: "resnet50" or "resnet101".
      weights: "imagenet" (downloaded by Keras, cached in `~/.keras/models`) or a
        path to a weights file of `keras.applications.ResNet50/101` without top,
        in any format its `load_weights` reads (e.g. the `..._notop.h5` file
        Keras downloads, or a `.weights.h5` saved with `save_weights`).

    Returns:
      The number of layers whose weights were copied.
    """
    if depth not in IMAGENET_BACKBONES:
        raise ValueError(
            f"backbone_weights needs a backbone with keras.applications weights "
            f"({', '.join(IMAGENET_BACKBONES)}), got {depth!r}."
        )
    if weights != "imagenet" and not os.path.exists(weights):
        raise FileNotFoundError(
            f"backbone_weights file {weights!r} does not exist; pass None, 'imagenet' "
            f"or the path of a keras.applications.{KERAS_RESNETS[depth].__name__} "
            "weights file."
        )
    try:
        reference = KERAS_RESNETS[depth](
            include_top=False, weights=weights, input_shape=(None, None, 3)
        )
    except Exception as error:  # Keras raises a bare Exception when a download fails.
        if weights != "imagenet":
            raise
        raise RuntimeError(
            f"Could not download the ImageNet weights of {depth} ({error}). On a "
            "machine without internet, copy the file "
            f"'{depth}_weights_tf_dim_ordering_tf_kernels_notop.h5' from "
            "https://storage.googleapis.com/tensorflow/keras-applications/resnet/ "
            "and pass its path as backbone_weights."
        ) from error
    copied = 0
    for layer in reference.layers:
        if not layer.weights:
            continue
        try:
            target = backbone.get_layer(layer.name)
        except ValueError as error:
            raise ValueError(
                f"The backbone has no layer {layer.name!r} to receive {depth} weights."
            ) from error
        target.set_weights(layer.get_weights())
        copied += 1
    return copied


def config_for_saving(config) -> dict:
    """A model config's dict as its `.keras` file stores it: without backbone weights.

    The weights come from the saved file, so a reload never downloads them; the input
    normalisation those weights implied is written out, so it stays.
    """
    values = config.to_dict() | {"backbone_weights": None}
    if config.backbone_weights is not None and "input_normalization" in values:
        values["input_normalization"] = config.resolved_input_normalization
    return values
