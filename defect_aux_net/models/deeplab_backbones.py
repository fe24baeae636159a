"""DeepLabV3+'s encoders: keras.applications networks (or ours) tapped at strides 4 and 16.

DeepLabV3+ reads two feature maps: low-level ones at stride 4 for the decoder, and
high-level ones at output stride 16 for the ASPP. ResNet101 reaches stride 16 as the
paper (and DeepLabV3+) does: its last stage runs with stride 1 and dilation 2, so its
2048-channel output stays at stride 16 and keeps its ImageNet weights (a stride or a
dilation changes no kernel's shape). keras.applications builds no dilated networks,
so the stage is rebuilt from layer configs (`keras.models.clone_model`). DenseNet201
and EfficientNetB1 are tapped at the end of their stride-16 stages instead (their
stride-2 transitions sit inside blocks, where a dilation would change the padding
arithmetic); their stride-32 stages are left out.
"""

import keras
import numpy as np

from defect_aux_net.models.backbone import RESNET_STAGES, build_backbone

# keras.applications constructor and the layers whose outputs are the stride-4 and
# the stride-16 features.
APPLICATIONS = {
    "resnet101": (keras.applications.ResNet101, "conv2_block3_out", "conv5_block3_out"),
    # The dense blocks' outputs after their transition's batch norm and ReLU.
    "densenet201": (keras.applications.DenseNet201, "pool2_relu", "pool4_relu"),
    # The expansions feeding the first stride-2 depthwise conv after each stride.
    "efficientnetb1": (
        keras.applications.EfficientNetB1,
        "block3a_expand_activation",
        "block6a_expand_activation",
    ),
}


def build_deeplab_backbone(config) -> keras.Model:
    """`{"low": stride-4, "high": stride-16}` features of normalised images.

    Every batch norm gets `config.batch_norm_momentum`.

    Args:
      config: a `DeepLabV3PlusConfig` (backbone, backbone_weights, input_shape,
        batch_norm_momentum). The model normalises its images before this backbone.
    """
    if config.backbone not in APPLICATIONS:
        # This library's ResNet has no dilation: its stride-16 stage (C4) feeds the ASPP.
        resnet = build_backbone(
            config.backbone,
            attention="none",
            input_channels=config.input_shape[2],
            batch_norm_momentum=config.batch_norm_momentum,
        )
        blocks_per_stage = RESNET_STAGES[config.backbone][0]
        # C2 and C4: the last blocks of stages conv2 and conv4 (stage 5 is left out).
        features = {
            level: resnet.get_layer(f"conv{stage}_block{blocks_per_stage[stage - 2]}_out").output
            for level, stage in (("low", 2), ("high", 4))
        }
        return keras.Model(resnet.inputs, features, name=config.backbone)
    constructor, low_name, high_name = APPLICATIONS[config.backbone]
    # Always built without weights: a saved model rebuilds the same graph with
    # `backbone_weights=None` and must not download anything.
    network = constructor(include_top=False, weights=None, input_shape=config.input_shape)
    if config.backbone == "resnet101":
        network = dilate_last_resnet_stage(network)
    if config.backbone_weights == "imagenet":
        pretrained = constructor(
            include_top=False, weights="imagenet", input_shape=config.input_shape
        )
        copy_weights(pretrained, network)
    for layer in network.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = config.batch_norm_momentum
    features = {
        "low": network.get_layer(low_name).output,
        "high": network.get_layer(high_name).output,
    }
    return keras.Model(network.inputs, features, name=config.backbone)


def dilate_last_resnet_stage(network: keras.Model) -> keras.Model:
    """keras.applications' ResNet with stride 1 and dilation 2 in its stage 5 (conv5).

    The stride sits on the first block's 1x1 convs (shortcut and residual); every
    3x3 conv after it sees taps 2 pixels apart, as the stride-2 map's neighbours were.
    """

    def dilate(layer):
        config = layer.get_config()
        if layer.name in ("conv5_block1_0_conv", "conv5_block1_1_conv"):
            config["strides"] = (1, 1)
        elif layer.name.startswith("conv5_") and layer.name.endswith("_2_conv"):
            config["dilation_rate"] = (2, 2)
        return layer.__class__.from_config(config)

    return keras.models.clone_model(network, clone_function=dilate)


def copy_weights(source: keras.Model, target: keras.Model):
    """Copies `source`'s weights into `target`, a graph of the same layers.

    Layers are matched in graph order (keras.applications names its preprocessing
    layers automatically, so names differ between two builds); shapes must match.
    keras.applications' EfficientNet built with ImageNet weights has one layer more,
    a per-channel `Rescaling` after its `Normalization`, which carries no weights; it
    is folded into `target`'s `Normalization` variance (`_fold_rescaling`).
    """
    source_layers = [layer for layer in source.layers if layer.weights]
    target_layers = [layer for layer in target.layers if layer.weights]
    source_shapes = [[tuple(w.shape) for w in layer.weights] for layer in source_layers]
    target_shapes = [[tuple(w.shape) for w in layer.weights] for layer in target_layers]
    if source_shapes != target_shapes:
        raise ValueError(
            f"Cannot copy the weights of {source.name} into {target.name}: their layers' "
            f"weight shapes differ ({len(source_layers)} and {len(target_layers)} layers)."
        )
    for source_layer, target_layer in zip(source_layers, target_layers):
        target_layer.set_weights(source_layer.get_weights())
    _fold_rescaling(source, target)


def _fold_rescaling(source: keras.Model, target: keras.Model):
    """Folds `source`'s per-channel `Rescaling` after its `Normalization` into `target`'s.

    `(x - mean) / sqrt(variance) * scale == (x - mean) / sqrt(variance / scale**2)`.
    """
    scales = [
        np.asarray(layer.scale, np.float32)
        for layer in source.layers
        if isinstance(layer, keras.layers.Rescaling) and np.ndim(layer.scale) == 1
    ]
    if not scales:
        return
    (norm,) = [layer for layer in target.layers if isinstance(layer, keras.layers.Normalization)]
    mean, variance, count = norm.get_weights()
    norm.set_weights([mean, variance / scales[0] ** 2, count])
    # The layer reads a copy of its weights made when they are set by loading.
    norm.finalize_state()
