"""Configuration of the segmentation baselines (UNet, LinkNet, PSPNet) on Defect-Aux-Net's
bottom-up pathway: a dataclass with named presets."""

import dataclasses
from typing import Optional

from defect_aux_net.config import (
    ATTENTIONS,
    MIN_INPUT_SIZE,
    SEGMENTATION_LOSSES,
    DefectAuxNetConfig,
    check_backbone_fields,
)
from defect_aux_net.config_errors import ConfigError
from defect_aux_net.preset_configs import PresetConfig

DECODERS = ("unet", "linknet", "pspnet")
SEGMENTATION_NETWORK_TASKS = ("segmentation",)
# C5's stride: the model pads its input to a multiple of it and crops the masks back.
STRIDE = 32


@dataclasses.dataclass(frozen=True)
class SegmentationNetworkConfig(PresetConfig):
    """A segmentation network: Defect-Aux-Net's bottom-up pathway and another decoder.

    The paper's Table II and Figs. 8-9 compare Defect-Aux-Net with FPN, UNet, LinkNet
    and PSPNet "with same bottom-up backbone (Resnet50 + SE + SA attention module)":
    the defaults. `models.model_builders.MODELS` names each decoder (`unet`, `linknet`,
    `pspnet`), and `model_config(name, preset)` sets `decoder` from the name.

    Example:
    ```python
    config = model_config("linknet", "tekerreka")
    config = SegmentationNetworkConfig.from_preset("small", decoder="pspnet")
    ```

    Attributes:
      num_classes: defect classes K: K mask channels.
      input_shape: `(height, width, channels)`, height and width at least 32; the model
        pads to a multiple of 32 and crops the masks back, as Defect-Aux-Net.
      decoder: one of `DECODERS`: `UNetDecoder`, `LinkNetDecoder`, `PyramidPoolingDecoder`.
      backbone, attention, se_ratio, batch_norm_momentum, spatial_attention_kernel_size,
        backbone_weights, input_normalization: the bottom-up pathway, as the fields of
        `DefectAuxNetConfig` of the same names.
      tasks: always `SEGMENTATION_NETWORK_TASKS`; stored so that consumers read it as
        from any model.
      segmentation_loss: one of `SEGMENTATION_LOSSES` (the paper's choice: Dice).
      decoder_channels: UNet: the last stage's filters, twice as many per coarser stage
        (16: 256, 128, 64, 32, 16, as segmentation_models' Unet); LinkNet: the last
        block's (its other blocks take their skip level's channels). PSPNet's widths are
        C5's channels / 4, as the PSPNet paper's, and ignore it.
    """

    num_classes: int = 1
    input_shape: tuple = (600, 600, 3)
    decoder: str = "unet"
    backbone: str = "resnet50"
    attention: str = "se+sa"
    se_ratio: int = 16
    batch_norm_momentum: float = 0.99
    spatial_attention_kernel_size: int = 7
    backbone_weights: Optional[str] = None
    input_normalization: Optional[str] = None
    tasks: tuple = SEGMENTATION_NETWORK_TASKS
    segmentation_loss: str = "dice"
    decoder_channels: int = 16

    # `MultiTaskLoss` weighs the tasks a model has by these (classification,
    # segmentation, detection): the segmentation loss alone, weight 1.
    loss_weights = (0.0, 1.0, 0.0)
    # What the backbone weights expect, as Defect-Aux-Net decides it.
    resolved_input_normalization = DefectAuxNetConfig.resolved_input_normalization

    def __post_init__(self):
        # Tuples, not lists: configs round-trip through JSON and `.keras` files.
        for name in ("input_shape", "tasks"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        self._validate()

    @property
    def padded_size(self) -> tuple:
        """`(height, width)` after padding to a multiple of `STRIDE`."""
        return tuple(-(-size // STRIDE) * STRIDE for size in self.input_shape[:2])

    def _validate(self):
        for field, allowed in (
            ("decoder", DECODERS),
            ("attention", ATTENTIONS),
            ("segmentation_loss", SEGMENTATION_LOSSES),
        ):
            if getattr(self, field) not in allowed:
                _fail(field, f"={getattr(self, field)!r} is unknown; allowed values: "
                             f"{', '.join(allowed)}.")
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            _fail("num_classes", f"={self.num_classes!r} must be an integer >= 1.")
        if len(self.input_shape) != 3 or any(
            not isinstance(size, int) or size < 1 for size in self.input_shape
        ):
            _fail("input_shape", f"={self.input_shape!r} must be (height, width, channels) "
                                 "of positive integers.")
        if min(self.input_shape[:2]) < MIN_INPUT_SIZE:
            _fail("input_shape", f"={self.input_shape!r}: height and width must be at least "
                                 f"{MIN_INPUT_SIZE} pixels (C5's stride).")
        check_backbone_fields(self, "SegmentationNetworkConfig")
        if self.tasks != SEGMENTATION_NETWORK_TASKS:
            _fail("tasks", f"={self.tasks!r}: a segmentation network has the segmentation "
                           f"head only, {SEGMENTATION_NETWORK_TASKS}.")
        for field in ("se_ratio", "spatial_attention_kernel_size", "decoder_channels"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                _fail(field, f"={value!r} must be an integer >= 1.")
        if not 0 <= self.batch_norm_momentum < 1:
            _fail("batch_norm_momentum", f"={self.batch_norm_momentum!r} must be in [0, 1).")


def _fail(field: str, message: str):
    name = f"SegmentationNetworkConfig.{field}"
    raise ConfigError(name, name + message)


PRESETS = {
    # Table II: TekErreka images at 600x600, one defect class.
    "tekerreka": SegmentationNetworkConfig(num_classes=1, input_shape=(600, 600, 3)),
    # Figs. 8-9: Severstal images at 128x800, four defect classes.
    "severstal": SegmentationNetworkConfig(num_classes=4, input_shape=(128, 800, 3)),
    # A small network for CPUs and tests: ResNet-18 with SE + SA at 64x64, and the
    # batch norm momentum of Defect-Aux-Net's small preset (short runs).
    "small": SegmentationNetworkConfig(
        num_classes=4,
        input_shape=(64, 64, 3),
        backbone="resnet18",
        decoder_channels=8,
        batch_norm_momentum=0.9,
    ),
}
SegmentationNetworkConfig.presets = PRESETS
