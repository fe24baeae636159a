"""The classification baselines of the paper's Tables III and VI: a backbone and
Defect-Aux-Net's classification head."""

import os

import keras

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.layers.classification_head import ClassificationHead
from defect_aux_net.layers.imagenet_normalization import ImageNetNormalization
from defect_aux_net.losses.multi_task import classification_loss
from defect_aux_net.models.backbone import apply_backbone
from defect_aux_net.models.backbone_weights import config_for_saving
from defect_aux_net.models.deeplab_backbones import copy_weights
from defect_aux_net.models.defect_aux_net import model_loss
from defect_aux_net.models.image_classifier_config import EFFICIENTNET, ImageClassifierConfig


@keras.saving.register_keras_serializable(package="defect_aux_net")
class ImageClassifier(keras.Model):
    """A backbone, global average pooling and one sigmoid per defect class.

    Outputs (a dict, as `DefectAuxNet`'s with `tasks=("classification",)`):
      classification: float32 `[B, K]` per-class defect probabilities.

    The backbone's coarsest features go through `ClassificationHead`, the layer of
    Defect-Aux-Net's classification branch. Training uses its loss (binary
    cross-entropy over the images with a label, `losses.multi_task.classification_loss`)
    on the input pipeline's `(images, targets, annotation_flags)`: compile with an
    optimizer only.

    Example:
    ```python
    model = ImageClassifier(model_config("efficientnet_b0", "severstal"))
    model.compile(optimizer="adam")
    probabilities = model(images)["classification"]
    ```

    Args:
      config: an `ImageClassifierConfig` (or its dict, as stored in `.keras` files).
    """

    def __init__(self, config, **kwargs):
        if isinstance(config, dict):
            config = ImageClassifierConfig(**config)
        inputs = keras.Input(config.input_shape, name="images")
        if config.backbone == EFFICIENTNET:
            # keras.applications' EfficientNet divides its input by 255 first: images
            # in [0, 1] (min-max stretched, or 0-255 pixels / 255) go in on that scale.
            scaled = ImageNetNormalization("raw", name="input_normalization")(inputs)
            features = build_efficientnet_b0(config)(scaled)
        else:
            _, levels = apply_backbone(config, inputs)
            features = levels["C5"]
        logits = ClassificationHead(config.num_classes, name="classification_head")(features)
        # Mixed precision computes in bfloat16; outputs and losses stay float32.
        probabilities = keras.layers.Activation(
            "sigmoid", dtype="float32", name="classification"
        )(logits)
        super().__init__(inputs=inputs, outputs={"classification": probabilities}, **kwargs)
        self.config = config
        self.task_loss_trackers = {"classification": keras.metrics.Mean(name="classification_loss")}

    # A model without detection: no anchors for the shared decoding to read.
    anchors = None
    # One head: nothing to skip behind a classification gate.
    supports_gated_inference = False

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = classification_loss(
            y["classification"],
            y_pred["classification"],
            (sample_weight or {}).get("classification"),
        )
        self.task_loss_trackers["classification"].update_state(loss)
        return model_loss(self, loss)

    @property
    def metrics(self):
        return super().metrics + list(self.task_loss_trackers.values())

    def get_config(self):
        config = config_for_saving(self.config)
        return {"config": config, "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def build_efficientnet_b0(config: ImageClassifierConfig) -> keras.Model:
    """`keras.applications.EfficientNetB0` without top, on 0-255 images, `[B, h, w, 1280]`.

    Always built without weights, so that a saved model rebuilds the same graph; the
    config's `backbone_weights` are copied in from a network built with them (their
    `Rescaling` after the `Normalization`, added for ImageNet weights only, folded in by
    `copy_weights`). Every batch norm gets `config.batch_norm_momentum`.
    """
    network = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=config.input_shape
    )
    for layer in network.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = config.batch_norm_momentum
    weights = config.backbone_weights
    if weights is None:
        return network
    if weights != "imagenet" and not os.path.exists(weights):
        field = "ImageClassifierConfig.backbone_weights"
        raise ConfigError(field, f"{field}={weights!r} does not exist; give None, 'imagenet' "
                                 "or the path of a keras.applications.EfficientNetB0 weights "
                                 "file without top.")
    try:
        pretrained = keras.applications.EfficientNetB0(
            include_top=False, weights=weights, input_shape=config.input_shape
        )
    except Exception as error:  # Keras raises a bare Exception when a download fails.
        if weights != "imagenet":
            raise
        raise RuntimeError(
            f"Could not download the ImageNet weights of EfficientNet-B0 ({error}). On a "
            "machine without internet, copy the file 'efficientnetb0_notop.h5' from "
            "https://storage.googleapis.com/keras-applications/ and give its path as "
            "ImageClassifierConfig.backbone_weights."
        ) from error
    copy_weights(pretrained, network)
    return network
