"""Configuration of the classification baselines (ResNet-50, SE-ResNet-50, EfficientNet-B0):
a dataclass with named presets."""

import dataclasses
from typing import Optional

from defect_aux_net.config import (
    BACKBONES,
    IMAGENET_BACKBONES,
    MIN_INPUT_SIZE,
    check_backbone_fields,
)
from defect_aux_net.config_errors import ConfigError
from defect_aux_net.preset_configs import PresetConfig

EFFICIENTNET = "efficientnet_b0"
CLASSIFIER_BACKBONES = (*BACKBONES, EFFICIENTNET)
# Squeeze-excitation in the ResNet's residual blocks, or none; EfficientNet-B0 has
# its own squeeze-excitation in every block and takes no setting (None).
CLASSIFIER_ATTENTIONS = ("none", "se")
CLASSIFIER_TASKS = ("classification",)
# What each kind of backbone can be fed: the paper's min-max stretch, or the input
# its keras.applications ImageNet weights were trained on (`ImageNetNormalization`).
RESNET_NORMALIZATIONS = ("min_max", "caffe")
EFFICIENTNET_NORMALIZATIONS = ("min_max", "raw")


@dataclasses.dataclass(frozen=True)
class ImageClassifierConfig(PresetConfig):
    """An image classifier: a backbone, global average pooling and a sigmoid per class.

    The paper's Table III compares Defect-Aux-Net's classification with ResNet-50,
    SE-ResNet-50 and EfficientNet-B0 classifiers, and its Table VI counts the plain
    ResNet-50 classifier as the single-task classification network (23.5 M
    parameters). `models.model_builders.MODELS` names each (`resnet50`, `se_resnet50`,
    `efficientnet_b0`) by its `backbone` kind and `attention`, and
    `model_config(name, preset)` sets them from the name.

    Example:
    ```python
    config = model_config("se_resnet50", "tekerreka")
    config = ImageClassifierConfig.from_preset("small", attention="se")
    ```

    Attributes:
      num_classes: defect classes K: K sigmoid outputs.
      input_shape: `(height, width, channels)`, height and width at least 32 (every
        backbone's coarsest stride; the head pools whatever size remains).
      backbone: one of `CLASSIFIER_BACKBONES`: a ResNet depth, built by
        `models.backbone.build_backbone` (layers named as keras.applications', so
        ImageNet weights load by name), or "efficientnet_b0"
        (`keras.applications.EfficientNetB0`).
      attention: for a ResNet, one of `CLASSIFIER_ATTENTIONS` ("se": SE-ResNet);
        None for EfficientNet-B0.
      se_ratio: squeeze-excitation bottleneck reduction r of the SE-ResNet.
      batch_norm_momentum: momentum of every batch norm's moving statistics (as
        `DefectAuxNetConfig.batch_norm_momentum`; set on EfficientNet's too).
      backbone_weights: None (random init), "imagenet" (keras.applications' weights,
        downloaded; for resnet50, resnet101 and efficientnet_b0), or the path of a
        weights file of that keras.applications network without top. The attention
        layers of an SE-ResNet keep their initialisation.
      input_normalization: None for what the weights expect: "caffe" (ResNet) or
        "raw" (EfficientNet: 0-255 pixels, which its first layers rescale) with
        `backbone_weights`, "min_max" (the paper) without; or one of
        `RESNET_NORMALIZATIONS` / `EFFICIENTNET_NORMALIZATIONS`.
      tasks: always `CLASSIFIER_TASKS`; stored so that consumers read it as from any
        model.
    """

    num_classes: int = 1
    input_shape: tuple = (600, 600, 3)
    backbone: str = "resnet50"
    attention: Optional[str] = "none"
    se_ratio: int = 16
    batch_norm_momentum: float = 0.99
    backbone_weights: Optional[str] = None
    input_normalization: Optional[str] = None
    tasks: tuple = CLASSIFIER_TASKS

    def __post_init__(self):
        # Tuples, not lists: configs round-trip through JSON and `.keras` files.
        for name in ("input_shape", "tasks"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        self._validate()

    @property
    def resolved_input_normalization(self) -> str:
        """The input normalisation in use: the field, or what the backbone weights expect."""
        if self.input_normalization is not None:
            return self.input_normalization
        if self.backbone_weights is None:
            return "min_max"
        return "raw" if self.backbone == EFFICIENTNET else "caffe"

    def _validate(self):
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
        efficientnet = self.backbone == EFFICIENTNET
        check_backbone_fields(
            self,
            "ImageClassifierConfig",
            CLASSIFIER_BACKBONES,
            EFFICIENTNET_NORMALIZATIONS if efficientnet else RESNET_NORMALIZATIONS,
            (*IMAGENET_BACKBONES, EFFICIENTNET),
        )
        if efficientnet and self.attention is not None:
            _fail("attention", f"={self.attention!r}: EfficientNet-B0 has squeeze-excitation "
                               "in every block of its own and takes no attention: None.")
        if not efficientnet and self.attention not in CLASSIFIER_ATTENTIONS:
            _fail("attention", f"={self.attention!r} is unknown for a ResNet; allowed values: "
                               f"{', '.join(CLASSIFIER_ATTENTIONS)}.")
        if self.tasks != CLASSIFIER_TASKS:
            _fail("tasks", f"={self.tasks!r}: a classifier has the classification head "
                           f"only, {CLASSIFIER_TASKS}.")
        if not isinstance(self.se_ratio, int) or self.se_ratio < 1:
            _fail("se_ratio", f"={self.se_ratio!r} must be an integer >= 1.")
        if not 0 <= self.batch_norm_momentum < 1:
            _fail("batch_norm_momentum", f"={self.batch_norm_momentum!r} must be in [0, 1).")


def _fail(field: str, message: str):
    name = f"ImageClassifierConfig.{field}"
    raise ConfigError(name, name + message)


PRESETS = {
    # Table III: TekErreka images at 600x600, one defect class; the paper's min-max
    # normalisation and no pretrained weights, as for Defect-Aux-Net (section IV-B).
    "tekerreka": ImageClassifierConfig(num_classes=1, input_shape=(600, 600, 3)),
    # Table III: Severstal images at 128x800, four defect classes.
    "severstal": ImageClassifierConfig(num_classes=4, input_shape=(128, 800, 3)),
    # A small network for CPUs and tests: ResNet-18 (EfficientNet-B0 as it is, the
    # smallest of its family) at 64x64, with the batch norm momentum of short runs.
    "small": ImageClassifierConfig(
        num_classes=4, input_shape=(64, 64, 3), backbone="resnet18", batch_norm_momentum=0.9
    ),
}
ImageClassifierConfig.presets = PRESETS
