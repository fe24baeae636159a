"""Bottom-up pathway: ResNet with squeeze-excitation and/or spatial attention per block."""

import keras

from defect_aux_net.layers.imagenet_normalization import ImageNetNormalization
from defect_aux_net.layers.spatial_attention import SpatialAttention
from defect_aux_net.layers.squeeze_excitation import SqueezeExcitation
from defect_aux_net.models.backbone_weights import load_backbone_weights

# Residual blocks per stage (conv2..conv5) and whether blocks are bottlenecks.
RESNET_STAGES = {
    "resnet18": ((2, 2, 2, 2), False),
    "resnet34": ((3, 4, 6, 3), False),
    "resnet50": ((3, 4, 6, 3), True),
    "resnet101": ((3, 4, 23, 3), True),
}
STAGE_FILTERS = (64, 128, 256, 512)
# keras.applications' ResNet batch-norm epsilon, kept so its weights behave the same.
BN_EPSILON = 1.001e-5


def build_backbone(
    depth: str = "resnet50",
    attention: str = "se+sa",
    input_channels: int = 3,
    se_ratio: int = 16,
    spatial_attention_kernel_size: int = 7,
    batch_norm_momentum: float = 0.99,
    input_normalization: str = "min_max",
) -> keras.Model:
    """Builds the bottom-up pathway as a functional model returning `{"C2".."C5"}`.

    Conv and batch-norm layers are named as in `keras.applications.ResNet50` /
    `ResNet101` (`conv1_conv`, `conv2_block1_1_conv`, ...), so ImageNet weights
    load by layer name (`load_backbone_weights`). Attention sits on the residual
    branch of every block, after its last batch norm and before the addition:
    squeeze-excitation, then spatial attention, in series (paper Fig. 6). With
    `input_normalization="caffe"` the first layer maps the [0, 1] images of
    `prepare_image` to the input of keras.applications' ResNet weights.

    Example:
    ```python
    backbone = build_backbone("resnet50", attention="se+sa")
    features = backbone(images)  # {"C2": stride 4, ..., "C5": stride 32}
    ```

    Args:
      depth: one of `RESNET_STAGES`.
      attention: "none", "se", "sa" or "se+sa".
      input_channels: image channels.
      se_ratio: squeeze-excitation reduction ratio.
      spatial_attention_kernel_size: spatial attention conv kernel.
      batch_norm_momentum: momentum of the batch norms' moving statistics.
      input_normalization: "min_max" (images go in as they are) or "caffe"
        (`ImageNetNormalization`), as `DefectAuxNetConfig.input_normalization`.
    """
    blocks_per_stage, bottleneck = RESNET_STAGES[depth]
    attention_layers = {
        "none": (),
        "se": ("se",),
        "sa": ("sa",),
        "se+sa": ("se", "sa"),
    }[attention]

    def conv_bn(x, filters, kernel_size, stride, name, activation=True, padding="same"):
        # Biases before batch norm are redundant but kept: keras.applications has them.
        x = keras.layers.Conv2D(
            filters, kernel_size, strides=stride, padding=padding, name=f"{name}_conv"
        )(x)
        x = keras.layers.BatchNormalization(
            momentum=batch_norm_momentum, epsilon=BN_EPSILON, name=f"{name}_bn"
        )(x)
        if activation:
            x = keras.layers.Activation("relu", name=f"{name}_relu")(x)
        return x

    def attend(x, name):
        for kind in attention_layers:
            if kind == "se":
                x = SqueezeExcitation(se_ratio, name=f"{name}_se")(x)
            else:
                x = SpatialAttention(spatial_attention_kernel_size, name=f"{name}_sa")(x)
        return x

    inputs = keras.Input((None, None, input_channels), name="images")
    x = inputs
    if input_normalization != "min_max":
        x = ImageNetNormalization(input_normalization, name="input_normalization")(x)
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = conv_bn(x, 64, 7, 2, "conv1", padding="valid")
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)

    features = {}
    for stage, (filters, blocks) in enumerate(zip(STAGE_FILTERS, blocks_per_stage)):
        for block in range(blocks):
            name = f"conv{stage + 2}_block{block + 1}"
            stride = 2 if stage > 0 and block == 0 else 1
            block_fn = _bottleneck_block if bottleneck else _basic_block
            x = block_fn(x, filters, stride, name, conv_bn, attend)
        features[f"C{stage + 2}"] = x
    return keras.Model(inputs, features, name=f"{depth}_{attention.replace('+', '_')}")


def apply_backbone(config, images, padded_size=None, extra_levels=None):
    """A model config's bottom-up pathway, with its weights, applied to `images`.

    How every model on this ResNet starts: the images padded bottom/right to
    `padded_size` (a multiple of the coarsest stride, so that every level halves
    exactly and box coordinates stay valid), `build_backbone` from the config's
    fields, and the config's `backbone_weights` loaded into it.

    Example:
    ```python
    inputs = keras.Input(config.input_shape, name="images")
    backbone, features = apply_backbone(config, inputs, config.padded_size)
    ```

    Args:
      config: a model config with `backbone`, `backbone_weights`, `input_shape`,
        `batch_norm_momentum`, `resolved_input_normalization` and, where its model
        has attention, `attention`, `se_ratio` and `spatial_attention_kernel_size`
        (without `attention`, a plain ResNet).
      images: the model's symbolic input.
      padded_size: `(height, width)` to zero-pad to, in a layer named "pad"; None
        for no padding.
      extra_levels: `{name: layer name}` of further backbone outputs to return with
        `C2..C5`, first (e.g. `{"C1": "conv1_relu"}`).

    Returns:
      `(backbone, features)`: the backbone model (a layer of the caller's model,
      under its own name) and its dict of outputs on the (padded) images.
    """
    if padded_size is not None:
        height, width = config.input_shape[:2]
        images = keras.layers.ZeroPadding2D(
            ((0, padded_size[0] - height), (0, padded_size[1] - width)), name="pad"
        )(images)
    # The attention settings a config lacks are those its attention never uses.
    attention_fields = {
        name: getattr(config, name)
        for name in ("se_ratio", "spatial_attention_kernel_size")
        if hasattr(config, name)
    }
    backbone = build_backbone(
        config.backbone,
        getattr(config, "attention", "none"),
        config.input_shape[2],
        batch_norm_momentum=config.batch_norm_momentum,
        input_normalization=config.resolved_input_normalization,
        **attention_fields,
    )
    if config.backbone_weights is not None:
        load_backbone_weights(backbone, config.backbone, config.backbone_weights)
    if extra_levels:
        # The same layers with more outputs.
        extra = {level: backbone.get_layer(name).output for level, name in extra_levels.items()}
        backbone = keras.Model(backbone.input, {**extra, **backbone.output}, name=backbone.name)
    return backbone, backbone(images)


def _bottleneck_block(x, filters, stride, name, conv_bn, attend):
    """keras.applications' ResNet v1 block: the stride sits on the first 1x1 conv."""
    if stride != 1 or x.shape[-1] != 4 * filters:
        shortcut = conv_bn(x, 4 * filters, 1, stride, f"{name}_0", activation=False)
    else:
        shortcut = x
    residual = conv_bn(x, filters, 1, stride, f"{name}_1")
    residual = conv_bn(residual, filters, 3, 1, f"{name}_2")
    residual = conv_bn(residual, 4 * filters, 1, 1, f"{name}_3", activation=False)
    residual = attend(residual, name)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, residual])
    return keras.layers.Activation("relu", name=f"{name}_out")(x)


def _basic_block(x, filters, stride, name, conv_bn, attend):
    """ResNet-18/34 block: two 3x3 convs."""
    if stride != 1 or x.shape[-1] != filters:
        shortcut = conv_bn(x, filters, 1, stride, f"{name}_0", activation=False)
    else:
        shortcut = x
    residual = conv_bn(x, filters, 3, stride, f"{name}_1")
    residual = conv_bn(residual, filters, 3, 1, f"{name}_2", activation=False)
    residual = attend(residual, name)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, residual])
    return keras.layers.Activation("relu", name=f"{name}_out")(x)
