"""Configuration of DeepLabV3+ (Nie et al. 2022): a dataclass with named presets."""

import dataclasses

from defect_aux_net.config import SEGMENTATION_LOSSES, check_backbone_fields
from defect_aux_net.config_errors import ConfigError
from defect_aux_net.preset_configs import PresetConfig

# The input normalisation each backbone's weights were trained on (keras.applications'
# `preprocess_input`); "resnet18" is this library's own ResNet, without ImageNet weights.
BACKBONE_NORMALIZATIONS = {
    "resnet18": "min_max",
    "resnet101": "caffe",
    "densenet201": "torch",
    "efficientnetb1": "raw",
}
BACKBONES = tuple(BACKBONE_NORMALIZATIONS)
IMAGENET_BACKBONES = ("resnet101", "densenet201", "efficientnetb1")
OUTPUTS = ("sigmoid", "softmax")
DEEPLAB_TASKS = ("segmentation",)
# The high-level features are at stride 16 and the low-level ones at stride 4: the
# decoder upsamples the first 4x to concatenate them with the second.
OUTPUT_STRIDE = 16


@dataclasses.dataclass(frozen=True)
class DeepLabV3PlusConfig(PresetConfig):
    """Everything that defines a `DeepLabV3Plus` model and its loss.

    Example:
    ```python
    config = DeepLabV3PlusConfig.from_preset("severstal_efficientnetb1")
    config = DeepLabV3PlusConfig(num_classes=4, input_shape=(256, 1600, 3), output="softmax")
    ```

    Attributes:
      num_classes: K defect classes (no background class).
      input_shape: `(height, width, channels)`, height and width multiples of 16 (the
        output stride), 3 channels for the keras.applications backbones.
      backbone: one of `BACKBONES`: the paper's three keras.applications networks, or
        this library's ResNet-18 (no ImageNet weights; for CPUs and tests).
      backbone_weights: None (random initialisation) or "imagenet" (keras.applications'
        weights, downloaded once into `~/.keras/models`).
      input_normalization: one of `INPUT_NORMALIZATIONS`, or None for the backbone's
        own (`BACKBONE_NORMALIZATIONS`), with or without its weights.
      aspp: the atrous spatial pyramid pooling and the low-level skip of DeepLabV3+;
        False is the paper's "bare-bone" baseline: the decoder's two 3x3 convolutions
        straight on the backbone's stride-16 features, upsampled 16x.
      aspp_rates: dilation rates of the three atrous 3x3 branches at output stride 16.
      channels: width of the ASPP branches, its projection and the decoder.
      low_level_channels: width of the decoder's 1x1 reduction of the stride-4 features.
      output: "sigmoid", one probability map per class (classes may overlap, as on
        Severstal), trained with `segmentation_loss`; or "softmax", the paper's label
        map over background + K classes, trained with categorical cross-entropy.
      segmentation_loss: one of `SEGMENTATION_LOSSES`, for the sigmoid output. The
        default adds Dice to the paper's per-pixel cross-entropy: alone, BCE lets the
        large classes drown the thin ones (see `losses/segmentation.py`).
      batch_norm_momentum: momentum of every batch norm's moving statistics (0.99 as
        keras.applications; the small preset's short runs need 0.9, as Defect-Aux-Net's).
      tasks: always `DEEPLAB_TASKS`; stored so that consumers read it as from any model.
    """

    num_classes: int = 4
    input_shape: tuple = (256, 256, 3)
    backbone: str = "resnet101"
    backbone_weights: str | None = None
    input_normalization: str | None = None
    aspp: bool = True
    aspp_rates: tuple = (6, 12, 18)
    channels: int = 256
    low_level_channels: int = 48
    output: str = "sigmoid"
    segmentation_loss: str = "dice+bce"
    batch_norm_momentum: float = 0.99
    tasks: tuple = DEEPLAB_TASKS

    def __post_init__(self):
        # Tuples, not lists: configs round-trip through JSON and `.keras` files.
        for name in ("input_shape", "aspp_rates", "tasks"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        self._validate()

    @property
    def resolved_input_normalization(self) -> str:
        """The input normalisation in use: the field, or the backbone's own."""
        if self.input_normalization is not None:
            return self.input_normalization
        return BACKBONE_NORMALIZATIONS[self.backbone]

    def _validate(self):
        _check_choice("output", self.output, OUTPUTS)
        _check_choice("segmentation_loss", self.segmentation_loss, SEGMENTATION_LOSSES)
        if self.backbone_weights not in (None, "imagenet"):
            _fail("backbone_weights", f'must be None or "imagenet", got {self.backbone_weights!r}.')
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            _fail("num_classes", f"must be an integer >= 1, got {self.num_classes!r}.")
        if len(self.input_shape) != 3 or any(
            not isinstance(size, int) or size < 1 for size in self.input_shape
        ):
            _fail(
                "input_shape",
                "must be (height, width, channels) of positive integers, got "
                f"{self.input_shape!r}.",
            )
        if any(size % OUTPUT_STRIDE for size in self.input_shape[:2]):
            _fail(
                "input_shape",
                f"height and width must be multiples of {OUTPUT_STRIDE} (the output stride: "
                f"the decoder joins stride-16 and stride-4 features), got {self.input_shape!r}.",
            )
        channels = self.input_shape[2]
        if self.backbone in IMAGENET_BACKBONES and channels != 3:
            _fail(
                "input_shape",
                f"backbone={self.backbone!r} (keras.applications) takes RGB images: "
                f"3 channels, got {self.input_shape!r}; grey images are repeated to 3.",
            )
        check_backbone_fields(
            self, "DeepLabV3PlusConfig", BACKBONES, weight_backbones=IMAGENET_BACKBONES
        )
        if not self.aspp_rates or any(
            not isinstance(rate, int) or rate < 1 for rate in self.aspp_rates
        ):
            _fail("aspp_rates", f"must be positive integers, got {self.aspp_rates!r}.")
        for name in ("channels", "low_level_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                _fail(name, f"must be an integer >= 1, got {value!r}.")
        if not 0 <= self.batch_norm_momentum < 1:
            _fail("batch_norm_momentum", f"must be in [0, 1), got {self.batch_norm_momentum!r}.")
        if self.tasks != DEEPLAB_TASKS:
            _fail("tasks", f"DeepLabV3+ has {DEEPLAB_TASKS} only, got {self.tasks!r}.")


def _fail(field: str, message: str):
    field = f"DeepLabV3PlusConfig.{field}"
    raise ConfigError(field, f"{field} {message}")


def _check_choice(field: str, value, allowed: tuple):
    if value not in allowed:
        _fail(field, f"{value!r} is unknown; allowed values: {', '.join(allowed)}.")


# The paper (section 6): 256x256 resized Severstal images, four classes, each
# backbone with its ImageNet weights (its learning rate 0.01, batch 16 and weight
# decay 1e-4 belong to the experiment). The paper's label map is `output="softmax"`;
# the presets keep per-class masks, as Severstal's classes overlap.
_PAPER = DeepLabV3PlusConfig(
    num_classes=4, input_shape=(256, 256, 3), backbone_weights="imagenet"
)
PRESETS = {
    "severstal_resnet101": dataclasses.replace(_PAPER, backbone="resnet101"),
    "severstal_densenet201": dataclasses.replace(_PAPER, backbone="densenet201"),
    "severstal_efficientnetb1": dataclasses.replace(_PAPER, backbone="efficientnetb1"),
    # The paper's baseline (section 5.1): ResNet101, the decoder without ASPP.
    "severstal_bare_bone": dataclasses.replace(_PAPER, backbone="resnet101", aspp=False),
    # The same layers on this library's ResNet-18, a quarter of the widths: CPUs, tests.
    "small": DeepLabV3PlusConfig(
        num_classes=4,
        input_shape=(128, 128, 3),
        backbone="resnet18",
        channels=32,
        low_level_channels=12,
        batch_norm_momentum=0.9,
    ),
}
DeepLabV3PlusConfig.presets = PRESETS
