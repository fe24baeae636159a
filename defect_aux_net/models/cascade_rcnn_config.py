"""Configuration of Cascade R-CNN: Faster R-CNN's fields and the stages' loss weights."""

import dataclasses

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.detection.roi_sampling import CASCADE_STAGES
from defect_aux_net.models.faster_rcnn_config import FASTER_RCNN_TASKS, FasterRCNNConfig

NUM_STAGES = len(CASCADE_STAGES)


@dataclasses.dataclass(frozen=True)
class CascadeRCNNConfig(FasterRCNNConfig):
    """Cascade R-CNN (Cai and Vasconcelos, CVPR 2018) on `FasterRCNNConfig`'s detector.

    Three box heads in sequence: the first is trained on the RoIs sampled at
    `roi_foreground_iou` (0.5), each later one on the previous head's refined boxes,
    with the foreground IoU and the delta weights of `roi_sampling.CASCADE_STAGES`
    (0.6 and 0.7; (20, 20, 10, 10) and (30, 30, 15, 15), stds 0.05 and 0.033). Every
    other field is Faster R-CNN's; Fig. 11 of the Defect-Aux-Net paper compares with it.

    Example:
    ```python
    config = CascadeRCNNConfig.from_preset("small", num_classes=6)
    ```

    Attributes:
      stage_loss_weights: factor of each stage's classification and box losses in the
        total. Model Garden's mean, 1/3 each, by default; the paper's Detectron code
        weighs (1, 0.5, 0.25).
    """

    stage_loss_weights: tuple = (1 / NUM_STAGES,) * NUM_STAGES

    def __post_init__(self):
        object.__setattr__(self, "stage_loss_weights", tuple(self.stage_loss_weights))
        # Before Faster R-CNN's checks, which allow its classification gate.
        if tuple(self.tasks) != FASTER_RCNN_TASKS:
            _fail("tasks", f"={self.tasks!r}: Cascade R-CNN has the detection task only, "
                           f"{FASTER_RCNN_TASKS}.")
        super().__post_init__()
        weights = self.stage_loss_weights
        if len(weights) != NUM_STAGES or min(weights) < 0 or sum(weights) <= 0:
            _fail("stage_loss_weights", f"={weights!r} must be {NUM_STAGES} numbers >= 0, "
                                        "not all 0 (one per stage).")
        # The later stages' IoUs rise from the first's.
        if self.roi_foreground_iou > CASCADE_STAGES[1][0]:
            _fail("roi_foreground_iou", f"={self.roi_foreground_iou!r}: the first stage's IoU "
                                        f"must not exceed the second's, {CASCADE_STAGES[1][0]}.")


def _fail(field: str, message: str):
    name = f"CascadeRCNNConfig.{field}"
    raise ConfigError(name, name + message)


def _from_faster_rcnn(preset: str, **fields) -> CascadeRCNNConfig:
    return CascadeRCNNConfig(**{**FasterRCNNConfig.presets[preset].to_dict(), **fields})


PRESETS = {
    # Faster R-CNN's small network for CPUs and tests at 64x64, with three box heads.
    "small": _from_faster_rcnn("small"),
    # The paper's FPN setting on an ImageNet-pretrained ResNet-50 (Model Garden's
    # Mask R-CNN defaults without masks; 800-pixel inputs).
    "resnet50_fpn": CascadeRCNNConfig(backbone_weights="imagenet"),
}
CascadeRCNNConfig.presets = PRESETS
