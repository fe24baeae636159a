"""Configuration of a Defect-Aux-Net model: a plain dataclass with named presets."""

import dataclasses
import math
from typing import Optional

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.preset_configs import PresetConfig

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")
# Depths that keras.applications publishes ImageNet weights for.
IMAGENET_BACKBONES = ("resnet50", "resnet101")
ATTENTIONS = ("none", "se", "sa", "se+sa")
TASKS = ("classification", "segmentation", "detection")
SEGMENTATION_LOSSES = ("dice", "bce", "jaccard", "dice+bce", "jaccard+bce")
# How pixel values are normalised before the backbone: "min_max" stretches each image
# to [0, 1] (the paper); the others are what keras.applications' weights were trained
# on (`ImageNetNormalization`): "caffe" ResNet (BGR, 0-255, ImageNet mean subtracted),
# "torch" DenseNet (RGB in [0, 1], ImageNet mean and std), "raw" EfficientNet (0-255).
INPUT_NORMALIZATIONS = ("min_max", "caffe", "torch", "raw")
# The normalisations with per-channel ImageNet statistics, made for RGB images.
RGB_NORMALIZATIONS = ("caffe", "torch")

_C = "DefectAuxNetConfig"  # How errors name the fields.

# The backbone's coarsest feature map (C5) has stride 32: smaller inputs leave nothing to pool.
MIN_INPUT_SIZE = 32


@dataclasses.dataclass(frozen=True)
class DefectAuxNetConfig(PresetConfig):
    """Everything that defines a Defect-Aux-Net model and its multi-task loss.

    The defaults are the paper's network: ResNet-50 bottom-up pathway with
    squeeze-excitation and spatial attention in every residual block, FPN top-down
    pathway, and all three task heads trained with `L = b0*Lcls + b1*Lseg + b2*Ldet`.

    Example:
    ```python
    config = DefectAuxNetConfig(num_classes=4, input_shape=(128, 800, 3))
    small = DefectAuxNetConfig.from_preset("small", num_classes=2)
    ```

    Attributes:
      num_classes: number of defect classes K (no background class).
      input_shape: `(height, width, channels)` of the images the model takes. Any
        size of at least 32 pixels: the model pads to a multiple of the largest
        pyramid stride internally and crops the masks back.
      backbone: bottom-up pathway depth, one of `BACKBONES`.
      attention: attention in every residual block, one of `ATTENTIONS`
        ("se+sa" applies squeeze-excitation then spatial attention, in series).
      se_ratio: squeeze-excitation bottleneck reduction r (C -> C/r -> C).
      batch_norm_momentum: momentum of every batch norm's moving statistics. 0.99
        (keras.applications) suits long runs; in a run of a few hundred steps the
        moving statistics would still lag the weights, so validation (which uses
        them) would not measure the model that trained: the small preset uses 0.9.
      spatial_attention_kernel_size: kernel of the spatial-attention convolution.
      backbone_weights: None (random init), "imagenet" (Keras ResNet weights,
        downloaded), or a path to a weights file of `keras.applications.ResNet50`
        / `ResNet101` (loaded by layer name; attention layers keep their init).
      input_normalization: one of `INPUT_NORMALIZATIONS`, or None for what the
        backbone weights expect: "caffe" with `backbone_weights` (keras.applications
        ResNet weights), "min_max" without. `resolved_input_normalization` is the
        value in use; saved models store it, so export and serving match training.
      tasks: the heads to build, any non-empty subset of `TASKS`.
      loss_weights: `(b0, b1, b2)` weights of the classification, segmentation
        and detection losses.
      segmentation_loss: one of `SEGMENTATION_LOSSES` (paper Table I).
      pyramid_channels: channels of the top-down pathway (lateral 1x1 convs).
      segmentation_channels: channels of the segmentation branch convolutions.
      p2_output_conv: whether the top-down pathway's P2 (1/4 scale) gets the FPN's 3x3
        output conv. The paper describes lateral 1x1 convs merged by addition and the
        segmentation branch's own 3x3 convs; semantic FPN also smooths P2. That conv
        is the pyramid's costliest (about 27 GFLOPs at 600x600 with 256 channels), and
        only the segmentation branch reads P2, whose first conv smooths it too.
      segmentation_dropout: spatial dropout before the mask prediction.
      min_level: finest pyramid level the detection subnets run on (P2..P5).
      max_level: coarsest level; levels above 5 are made by stride-2 convs on P5.
      anchor_size: anchor side as a multiple of the level's stride.
      anchor_scales_per_octave: anchor scales per level, 2^(i/n) for i < n.
      anchor_aspect_ratios: anchor width / height ratios at every location.
      detection_head_depth: 3x3 conv layers in the class and box subnets.
      detection_head_group_norm: group norm after each of those convs (see
        `PredictionHead`); False is the original RetinaNet head.
      focal_alpha: focal loss alpha (paper eq. 5: 0.25).
      focal_gamma: focal loss gamma (paper eq. 5: 4).
      box_loss_weight: weight of the Huber box loss inside Ldet.
      huber_delta: Huber loss delta on encoded box deltas.
      positive_iou: anchors with IoU >= this to a box are positives.
      negative_iou: anchors with best IoU < this are negatives; between the two
        thresholds they are ignored.
    """

    num_classes: int = 1
    input_shape: tuple = (600, 600, 3)
    backbone: str = "resnet50"
    attention: str = "se+sa"
    se_ratio: int = 16
    batch_norm_momentum: float = 0.99
    spatial_attention_kernel_size: int = 7
    backbone_weights: Optional[str] = None
    input_normalization: Optional[str] = None
    tasks: tuple = TASKS
    loss_weights: tuple = (1.0, 1.0, 1.0)
    segmentation_loss: str = "dice"
    pyramid_channels: int = 256
    segmentation_channels: int = 128
    p2_output_conv: bool = True
    segmentation_dropout: float = 0.2
    min_level: int = 3
    max_level: int = 7
    anchor_size: float = 4.0
    anchor_scales_per_octave: int = 3
    anchor_aspect_ratios: tuple = (0.5, 1.0, 2.0)
    detection_head_depth: int = 4
    detection_head_group_norm: bool = True
    focal_alpha: float = 0.25
    focal_gamma: float = 4.0
    box_loss_weight: float = 50.0
    huber_delta: float = 0.1
    positive_iou: float = 0.5
    negative_iou: float = 0.4

    def __post_init__(self):
        # Tuples, not lists: configs round-trip through JSON and `.keras` files.
        for name in ("input_shape", "tasks", "loss_weights", "anchor_aspect_ratios"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        self._validate()

    @property
    def padded_size(self) -> tuple:
        """`(height, width)` after padding to a multiple of the coarsest stride."""
        stride = 2 ** max(self.max_level, 5)
        return tuple(math.ceil(size / stride) * stride for size in self.input_shape[:2])

    @property
    def resolved_input_normalization(self) -> str:
        """The input normalisation in use: the field, or what the backbone weights expect."""
        if self.input_normalization is not None:
            return self.input_normalization
        # Left open until asked, so that replacing backbone_weights changes it too.
        return "caffe" if self.backbone_weights is not None else "min_max"

    @property
    def anchors_per_location(self) -> int:
        return self.anchor_scales_per_octave * len(self.anchor_aspect_ratios)

    def _validate(self):
        _check_choice("attention", self.attention, ATTENTIONS)
        _check_choice("segmentation_loss", self.segmentation_loss, SEGMENTATION_LOSSES)
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ConfigError(
                f"{_C}.num_classes",
                f"{_C}.num_classes must be an integer >= 1, got {self.num_classes!r}.",
            )
        if len(self.input_shape) != 3 or any(
            not isinstance(size, int) or size < 1 for size in self.input_shape
        ):
            raise ConfigError(
                f"{_C}.input_shape",
                f"{_C}.input_shape must be (height, width, channels) of positive integers, "
                f"got {self.input_shape!r}."
            )
        if min(self.input_shape[:2]) < MIN_INPUT_SIZE:
            raise ConfigError(
                f"{_C}.input_shape",
                f"{_C}.input_shape {self.input_shape!r} is too small: height and width must "
                f"be at least {MIN_INPUT_SIZE} pixels (the backbone's coarsest stride)."
            )
        if not self.tasks or any(task not in TASKS for task in self.tasks):
            raise ConfigError(
                f"{_C}.tasks",
                f"{_C}.tasks must be a non-empty subset of {TASKS}, got {self.tasks!r}."
            )
        if len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(
                f"{_C}.tasks", f"{_C}.tasks must not repeat a task, got {self.tasks!r}."
            )
        if len(self.loss_weights) != 3 or any(w < 0 for w in self.loss_weights):
            raise ConfigError(
                f"{_C}.loss_weights",
                f"{_C}.loss_weights must be three non-negative numbers (classification, "
                f"segmentation, detection), got {self.loss_weights!r}."
            )
        check_backbone_fields(self, _C)
        if not 2 <= self.min_level <= 5 or self.max_level < max(self.min_level, 5):
            raise ConfigError(
                f"{_C}.min_level",
                "Need 2 <= min_level <= 5 <= max_level (P2..P5 come from the top-down "
                f"pathway), got min_level={self.min_level}, max_level={self.max_level}."
            )
        if not 0 <= self.negative_iou <= self.positive_iou <= 1:
            raise ConfigError(
                f"{_C}.negative_iou",
                "Need 0 <= negative_iou <= positive_iou <= 1, got "
                f"negative_iou={self.negative_iou}, positive_iou={self.positive_iou}."
            )
        for name in (
            "se_ratio",
            "spatial_attention_kernel_size",
            "pyramid_channels",
            "segmentation_channels",
            "anchor_scales_per_octave",
            "detection_head_depth",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"{_C}.{name}", f"{_C}.{name} must be >= 1, got {getattr(self, name)!r}."
                )
        if not 0 <= self.batch_norm_momentum < 1:
            raise ConfigError(
                f"{_C}.batch_norm_momentum",
                f"{_C}.batch_norm_momentum must be in [0, 1), got {self.batch_norm_momentum!r}."
            )
        if not self.anchor_aspect_ratios or min(self.anchor_aspect_ratios) <= 0:
            raise ConfigError(
                f"{_C}.anchor_aspect_ratios",
                f"{_C}.anchor_aspect_ratios must be positive numbers, got "
                f"{self.anchor_aspect_ratios!r}."
            )


def _check_choice(field: str, value, allowed: tuple):
    if value not in allowed:
        raise ConfigError(
            f"{_C}.{field}",
            f"{_C}.{field}={value!r} is unknown; allowed values: {', '.join(allowed)}.",
        )


def check_backbone_fields(
    config,
    class_name: str,
    backbones: tuple = BACKBONES,
    normalizations: tuple = INPUT_NORMALIZATIONS,
    weight_backbones: tuple = IMAGENET_BACKBONES,
):
    """Checks the fields `backbone`, `backbone_weights` and `input_normalization`.

    Every model config with a backbone has these three, and the same rules bind them:
    known names, keras.applications weights only where they exist, and 3 input
    channels for those weights and for the normalisations with per-channel ImageNet
    statistics. Call it after `input_shape` is checked: it reads the channels.

    Example:
    ```python
    def _validate(self):
        ...  # input_shape first
        check_backbone_fields(self, "SsdConfig")
    ```

    Args:
      config: a config with those fields, `input_shape` and `resolved_input_normalization`.
      class_name: the config class's name, as the errors name its fields.
      backbones: the backbone names the model builds.
      normalizations: the input normalisations that suit the backbone; None (what the
        weights expect) is always allowed.
      weight_backbones: the backbones with keras.applications weights.

    Raises:
      ConfigError: naming `<class_name>.<field>` of the first field that cannot work.
    """

    def fail(field: str, message: str):
        name = f"{class_name}.{field}"
        raise ConfigError(name, f"{name}{message}")

    if config.backbone not in backbones:
        fail("backbone", f"={config.backbone!r} is unknown; allowed values: "
                         f"{', '.join(backbones)}.")
    if config.input_normalization not in (None, *normalizations):
        fail("input_normalization", f"={config.input_normalization!r} does not suit "
                                    f"backbone={config.backbone!r}; allowed values: None, "
                                    f"{', '.join(normalizations)}.")
    weights, channels = config.backbone_weights, config.input_shape[2]
    if weights is not None and config.backbone not in weight_backbones:
        fail("backbone_weights", f"={weights!r}: keras.applications has weights for "
                                 f"{', '.join(weight_backbones)}, not for "
                                 f"backbone={config.backbone!r}.")
    if weights is not None and channels != 3:
        fail("backbone_weights", f"={weights!r} were trained on RGB images: they need 3 input "
                                 f"channels, got input_shape {config.input_shape!r}; convert "
                                 "grey images to 3 channels.")
    normalization = config.resolved_input_normalization
    if normalization in RGB_NORMALIZATIONS and channels != 3:
        fail("input_normalization", f"={normalization!r} (given, or what backbone_weights "
                                    "expect) subtracts per-channel ImageNet means: it needs 3 "
                                    f"input channels, got input_shape {config.input_shape!r}.")


PRESETS = {
    # Paper section IV-B: TekErreka images resized to 600x600, one defect class.
    "tekerreka": DefectAuxNetConfig(num_classes=1, input_shape=(600, 600, 3)),
    # Paper section IV-B: Severstal images resized to 128x800, four defect classes.
    "severstal": DefectAuxNetConfig(num_classes=4, input_shape=(128, 800, 3)),
    # A small network for CPUs, tests and the quickstart.
    "small": DefectAuxNetConfig(
        num_classes=4,
        input_shape=(128, 128, 3),
        backbone="resnet18",
        pyramid_channels=64,
        segmentation_channels=32,
        detection_head_depth=2,
        batch_norm_momentum=0.9,
    ),
}
DefectAuxNetConfig.presets = PRESETS
