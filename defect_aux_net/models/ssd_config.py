"""Configuration of SSD on a ResNet bottom-up pathway: a dataclass with named presets."""

import dataclasses
from typing import Optional

from defect_aux_net.config import MIN_INPUT_SIZE, DefectAuxNetConfig, check_backbone_fields
from defect_aux_net.config_errors import ConfigError
from defect_aux_net.detection.default_boxes import feature_map_sizes, generate_default_boxes
from defect_aux_net.preset_configs import PresetConfig

SSD_TASKS = ("detection",)
# The ResNet maps SSD predicts from: C3, C4 and C5 (strides 8, 16, 32), as the ResNet
# SSDs (DSSD's SSD321, MLPerf's) start at stride 8 where VGG's SSD300 has conv4_3.
BACKBONE_MAPS = ("C3", "C4", "C5")
FIRST_LEVEL = 3

_C = "SsdConfig"


@dataclasses.dataclass(frozen=True)
class SsdConfig(PresetConfig):
    """Everything that defines an `Ssd` model and its MultiBox loss (Liu et al. 2016).

    Example:
    ```python
    config = SsdConfig.from_preset("ssd300", num_classes=6)
    small = SsdConfig.from_preset("small")
    ```

    Attributes:
      num_classes: K defect classes; the softmax has K + 1 (background first).
      input_shape: `(height, width, channels)`, both sides at least 32 pixels.
      backbone: the ResNet of the bottom-up pathway (no attention), one of `BACKBONES`.
      batch_norm_momentum: of the backbone's and the extra layers' batch norms.
      backbone_weights: None, "imagenet" or a weights file, as `DefectAuxNetConfig`'s.
      input_normalization: as `DefectAuxNetConfig`'s; None for what the weights expect.
      tasks: always `SSD_TASKS`; stored so that consumers read it as from any model.
      extra_channels: output channels of each extra feature layer after C5 (a 1x1
        conv to half as many, then a 3x3 stride-2 conv): SSD300's conv8..conv10.
        The maps are C3, C4, C5 and these: 3 + len(extra_channels) of them.
      min_scale, max_scale: SSD's `s_min`, `s_max` of the default boxes, in
        fractions of the image's shorter side (`generate_default_boxes`).
      aspect_ratios: width / height of the default boxes at every location; 1 among
        them adds SSD's extra square box of scale `sqrt(s_k s_{k+1})`.
      box_variances: SSD's variances: the predictors output the box deltas of the
        library's encoding (`encode_detection_targets`) divided by these.
      positive_iou, negative_iou: the input pipeline's matching; SSD's is 0.5 for
        both (every default box positive or background), with each box's best
        default box positive too.
      negative_ratio: hard negative mining keeps this many negatives per positive.
      min_negatives_per_image: negatives kept in an image with fewer positives than
        that needs (0: SSD's; an image without defects then trains nothing).
      box_loss_weight: SSD's alpha, the weight of the localisation loss.
    """

    num_classes: int = 1
    input_shape: tuple = (300, 300, 3)
    backbone: str = "resnet50"
    batch_norm_momentum: float = 0.99
    backbone_weights: Optional[str] = None
    input_normalization: Optional[str] = None
    tasks: tuple = SSD_TASKS
    extra_channels: tuple = (512, 256, 256)
    min_scale: float = 0.2
    max_scale: float = 0.9
    aspect_ratios: tuple = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
    box_variances: tuple = (0.1, 0.1, 0.2, 0.2)
    positive_iou: float = 0.5
    negative_iou: float = 0.5
    negative_ratio: float = 3.0
    min_negatives_per_image: int = 0
    box_loss_weight: float = 1.0

    def __post_init__(self):
        for name in ("input_shape", "tasks", "extra_channels", "aspect_ratios", "box_variances"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        self._validate()

    # What the backbone weights expect, as Defect-Aux-Net decides it.
    resolved_input_normalization = DefectAuxNetConfig.resolved_input_normalization

    @property
    def feature_map_sizes(self) -> list:
        """`(rows, cols)` of the maps the predictors run on, finest first."""
        return feature_map_sizes(
            self.input_shape[:2], FIRST_LEVEL, len(BACKBONE_MAPS) + len(self.extra_channels)
        )

    def anchors(self):
        """float32 `[A, 4]` default boxes (`ymin, xmin, ymax, xmax` pixels)."""
        return generate_default_boxes(
            self.input_shape[:2], self.feature_map_sizes, self.min_scale, self.max_scale,
            self.aspect_ratios,
        )

    def _validate(self):
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            _fail("num_classes", f"must be an integer >= 1, got {self.num_classes!r}.")
        if len(self.input_shape) != 3 or any(
            not isinstance(size, int) or size < 1 for size in self.input_shape
        ):
            _fail("input_shape", "must be (height, width, channels) of positive integers, "
                  f"got {self.input_shape!r}.")
        if min(self.input_shape[:2]) < MIN_INPUT_SIZE:
            _fail("input_shape", f"{self.input_shape!r} is too small: height and width must "
                  f"be at least {MIN_INPUT_SIZE} pixels (the backbone's stride at C5).")
        if self.tasks != SSD_TASKS:
            _fail("tasks", f"of SSD are always {SSD_TASKS}, got {self.tasks!r}.")
        check_backbone_fields(self, _C)
        if any(not isinstance(width, int) or width < 2 for width in self.extra_channels):
            _fail("extra_channels", f"must be integers >= 2, got {self.extra_channels!r}.")
        if not 0 < self.min_scale <= self.max_scale <= 1:
            _fail("min_scale", "need 0 < min_scale <= max_scale <= 1, got "
                  f"min_scale={self.min_scale}, max_scale={self.max_scale}.")
        if not self.aspect_ratios or min(self.aspect_ratios) <= 0:
            _fail("aspect_ratios", f"must be positive numbers, got {self.aspect_ratios!r}.")
        if len(self.box_variances) != 4 or min(self.box_variances) <= 0:
            _fail("box_variances", f"must be 4 positive numbers, got {self.box_variances!r}.")
        if not 0 <= self.negative_iou <= self.positive_iou <= 1:
            _fail("negative_iou", "need 0 <= negative_iou <= positive_iou <= 1, got "
                  f"negative_iou={self.negative_iou}, positive_iou={self.positive_iou}.")
        if self.negative_ratio < 0:
            _fail("negative_ratio", f"must be >= 0, got {self.negative_ratio!r}.")
        if not isinstance(self.min_negatives_per_image, int) or self.min_negatives_per_image < 0:
            _fail("min_negatives_per_image",
                  f"must be an integer >= 0, got {self.min_negatives_per_image!r}.")
        if self.box_loss_weight < 0:
            _fail("box_loss_weight", f"must be >= 0, got {self.box_loss_weight!r}.")
        if not 0 <= self.batch_norm_momentum < 1:
            _fail("batch_norm_momentum", f"must be in [0, 1), got {self.batch_norm_momentum!r}.")


def _fail(field: str, message: str):
    raise ConfigError(f"{_C}.{field}", f"{_C}.{field} {message}")


PRESETS = {
    # Fig. 11's SSD: SSD300's input size, six maps (38, 19, 10, 5, 3, 2 cells at 300
    # pixels), on ResNet-50.
    "ssd300": SsdConfig(),
    # A small network for CPUs and tests: ResNet-18, narrow extra layers, 64x64.
    "small": SsdConfig(
        num_classes=4,
        input_shape=(64, 64, 3),
        backbone="resnet18",
        batch_norm_momentum=0.9,
        extra_channels=(64, 32, 32),
    ),
}
SsdConfig.presets = PRESETS
