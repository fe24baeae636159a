"""Configuration of Faster R-CNN with FPN: a dataclass with named presets."""

import dataclasses
import math
from typing import ClassVar, Optional

from defect_aux_net.config import (
    ATTENTIONS,
    MIN_INPUT_SIZE,
    DefectAuxNetConfig,
    check_backbone_fields,
)
from defect_aux_net.config_errors import ConfigError
from defect_aux_net.preset_configs import PresetConfig

FASTER_RCNN_TASKS = ("detection",)
# With the gasket paper's classification gate on the deepest FPN level (P6).
GATED_TASKS = ("classification", "detection")
# The RPN runs on P2-P6 (P6 by a stride-2 conv on P5, as `FeaturePyramid` makes it);
# RoIAlign crops from P2-P5 (FPN's level assignment).
RPN_LEVELS = (2, 6)
ROI_LEVELS = (2, 5)


@dataclasses.dataclass(frozen=True)
class FasterRCNNConfig(PresetConfig):
    """Faster R-CNN with FPN on the library's bottom-up pathway.

    The gasket paper (Lin et al.) builds its system on Faster R-CNN with FPN and a
    pretrained ResNet-50; the detector's parts follow Model Garden's Mask R-CNN config
    without masks (anchors, RPN matching and sampling, proposal counts, RoI sampling,
    RoIAlign, box head).

    Example:
    ```python
    config = FasterRCNNConfig.from_preset("gasket")
    small = FasterRCNNConfig.from_preset("small", num_classes=2)
    ```

    Attributes:
      num_classes: defect classes K (the box head adds a background class).
      input_shape: `(height, width, channels)`, at least 32 pixels; the model pads to a
        multiple of 64 (P6's stride) bottom and right.
      backbone, attention, se_ratio, batch_norm_momentum, spatial_attention_kernel_size,
        backbone_weights, input_normalization: the bottom-up pathway, as the fields of
        `DefectAuxNetConfig` of the same names ("none": the paper's plain ResNet).
      tasks: `FASTER_RCNN_TASKS`, or `GATED_TASKS` for the gasket paper's classifier on
        the deepest FPN level (P6), trained with the detector (its binary cross-entropy
        added to the four detection losses), which gates inference: the RPN and box
        head run only on the images it passes (`gated_inference.GatedModel`).
      pyramid_channels: channels of the FPN levels and the RPN's shared 3x3 conv.
      anchor_size: anchor side in multiples of the level's stride (one scale a level).
      anchor_aspect_ratios: width / height of the anchors at each location.
      rpn_positive_iou, rpn_negative_iou: anchors at IoU >= the first with a box are
        positive (and each box's best anchor), below the second negative.
      rpn_samples, rpn_positive_fraction: anchors in each image's RPN loss, and the
        largest share of positives among them.
      rpn_nms_iou: proposal NMS threshold.
      train_pre_nms_top_k, train_proposals: per level best candidates entering NMS,
        and proposals kept per image, in training.
      inference_pre_nms_top_k, inference_proposals: the same at inference.
      roi_samples, roi_foreground_fraction: RoIs per image in the box head's loss and
        the largest foreground share.
      roi_foreground_iou: IoU from which a RoI is foreground; below it, background.
      roi_output_size, roi_sampling_ratio: RoIAlign's grid side and bilinear samples
        per bin side.
      box_head_units, box_head_layers: the box head's fully connected layers.
      rpn_huber_delta, box_huber_delta: smooth-L1 transition points of the RPN's and
        the box head's box losses (Model Garden: 1/9 and 1).
    """

    # The input pipeline gives the padded ground truth (`pipeline.detection_targets`):
    # anchors are matched and RoIs sampled in the training step.
    detection_targets: ClassVar[str] = "boxes"

    num_classes: int = 1
    input_shape: tuple = (800, 800, 3)
    backbone: str = "resnet50"
    attention: str = "none"
    se_ratio: int = 16
    batch_norm_momentum: float = 0.99
    spatial_attention_kernel_size: int = 7
    backbone_weights: Optional[str] = None
    input_normalization: Optional[str] = None
    tasks: tuple = FASTER_RCNN_TASKS
    pyramid_channels: int = 256
    anchor_size: float = 8.0
    anchor_aspect_ratios: tuple = (0.5, 1.0, 2.0)
    rpn_positive_iou: float = 0.7
    rpn_negative_iou: float = 0.3
    rpn_samples: int = 256
    rpn_positive_fraction: float = 0.5
    rpn_nms_iou: float = 0.7
    train_pre_nms_top_k: int = 2000
    train_proposals: int = 1000
    inference_pre_nms_top_k: int = 1000
    inference_proposals: int = 1000
    roi_samples: int = 512
    roi_foreground_fraction: float = 0.25
    roi_foreground_iou: float = 0.5
    roi_output_size: int = 7
    roi_sampling_ratio: int = 2
    box_head_units: int = 1024
    box_head_layers: int = 2
    rpn_huber_delta: float = 1.0 / 9.0
    box_huber_delta: float = 1.0

    def __post_init__(self):
        # Tuples, not lists: configs round-trip through JSON and `.keras` files.
        for name in ("input_shape", "tasks", "anchor_aspect_ratios"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        self._validate()

    @property
    def padded_size(self) -> tuple:
        """`(height, width)` after padding to a multiple of P6's stride."""
        stride = 2 ** RPN_LEVELS[1]
        return tuple(math.ceil(size / stride) * stride for size in self.input_shape[:2])

    # What the backbone weights expect, as Defect-Aux-Net decides it.
    resolved_input_normalization = DefectAuxNetConfig.resolved_input_normalization

    def _validate(self):
        _choice("attention", self.attention, ATTENTIONS)
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            _fail("num_classes", f"={self.num_classes!r} must be an integer >= 1.")
        if len(self.input_shape) != 3 or any(
            not isinstance(size, int) or size < 1 for size in self.input_shape
        ):
            _fail("input_shape", f"={self.input_shape!r} must be (height, width, channels) "
                                 "of positive integers.")
        if min(self.input_shape[:2]) < MIN_INPUT_SIZE:
            _fail("input_shape", f"={self.input_shape!r}: height and width must be at least "
                                 f"{MIN_INPUT_SIZE} pixels (the backbone's coarsest stride).")
        check_backbone_fields(self, "FasterRCNNConfig")
        if self.tasks not in (FASTER_RCNN_TASKS, GATED_TASKS):
            _fail("tasks", f"={self.tasks!r}: Faster R-CNN has the detection task, alone "
                           f"{FASTER_RCNN_TASKS} or with the classification gate {GATED_TASKS}.")
        if not 0 <= self.rpn_negative_iou <= self.rpn_positive_iou <= 1:
            _fail("rpn_negative_iou", f"={self.rpn_negative_iou!r}: need 0 <= rpn_negative_iou "
                                      f"<= rpn_positive_iou={self.rpn_positive_iou!r} <= 1.")
        for name in ("rpn_positive_fraction", "roi_foreground_fraction", "rpn_nms_iou"):
            if not 0 <= getattr(self, name) <= 1:
                _fail(name, f"={getattr(self, name)!r} must be in [0, 1].")
        if not 0 < self.roi_foreground_iou <= 1:
            _fail("roi_foreground_iou", f"={self.roi_foreground_iou!r} must be in (0, 1].")
        for name in (
            "se_ratio", "spatial_attention_kernel_size", "pyramid_channels", "rpn_samples",
            "train_pre_nms_top_k", "train_proposals", "inference_pre_nms_top_k",
            "inference_proposals", "roi_samples", "roi_output_size", "roi_sampling_ratio",
            "box_head_units", "box_head_layers",
        ):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                _fail(name, f"={getattr(self, name)!r} must be an integer >= 1.")
        if self.anchor_size <= 0 or not self.anchor_aspect_ratios or min(
            self.anchor_aspect_ratios
        ) <= 0:
            _fail("anchor_aspect_ratios", f"={self.anchor_aspect_ratios!r} and anchor_size="
                                          f"{self.anchor_size!r} must be positive.")
        if self.rpn_huber_delta <= 0 or self.box_huber_delta <= 0:
            _fail("box_huber_delta", f"={self.box_huber_delta!r} and rpn_huber_delta="
                                     f"{self.rpn_huber_delta!r} must be positive.")
        if not 0 <= self.batch_norm_momentum < 1:
            _fail("batch_norm_momentum", f"={self.batch_norm_momentum!r} must be in [0, 1).")


def _choice(field: str, value, allowed: tuple):
    if value not in allowed:
        _fail(field, f"={value!r} is unknown; allowed values: {', '.join(allowed)}.")


def _fail(field: str, message: str):
    name = f"FasterRCNNConfig.{field}"
    raise ConfigError(name, name + message)


PRESETS = {
    # The gasket paper (section 3.2, Table 2): 2448 x 2048 images, one class (surface
    # scratches), Faster R-CNN with FPN on a pretrained ResNet-50; training with SGD,
    # learning rate 0.01, batch 4, 200 epochs (an ExperimentConfig's business). Its
    # classifier on the deepest FPN level gates detection.
    "gasket": FasterRCNNConfig(
        num_classes=1, input_shape=(2048, 2448, 3), backbone_weights="imagenet",
        tasks=GATED_TASKS,
    ),
    # A small network for CPUs and tests at 64x64: ResNet-18, narrow pyramid and box
    # head, a few hundred anchors, proposals and RoIs per image.
    "small": FasterRCNNConfig(
        num_classes=4,
        input_shape=(64, 64, 3),
        backbone="resnet18",
        batch_norm_momentum=0.9,
        pyramid_channels=32,
        anchor_size=4.0,
        rpn_samples=64,
        train_pre_nms_top_k=100,
        train_proposals=64,
        inference_pre_nms_top_k=100,
        inference_proposals=32,
        roi_samples=32,
        roi_output_size=4,
        box_head_units=64,
    ),
}
FasterRCNNConfig.presets = PRESETS
