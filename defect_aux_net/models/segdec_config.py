"""Configuration of the segmentation + decision network: a dataclass with named presets."""

import dataclasses

from defect_aux_net.config import INPUT_NORMALIZATIONS
from defect_aux_net.losses.segdec import REDUCTIONS
from defect_aux_net.preset_configs import PresetConfig

# The network always has both heads: the decision head reads the segmentation logits.
SEGDEC_TASKS = ("classification", "segmentation")
# Trunk stride 8, then three more 2x2 max-pools in the decision head: its last block
# works at 1/64 and needs 2x2 pixels there (FeatureNorm turns a 1x1 map into its bias,
# and the decision features would carry nothing).
MIN_INPUT_SIZE = 128
INPUT_MULTIPLE = 8


@dataclasses.dataclass(frozen=True)
class SegDecConfig(PresetConfig):
    """Everything that defines a `SegDecNet` and its loss (Bozic et al. 2021).

    Example:
    ```python
    config = SegDecConfig.from_preset("kolektorsdd")
    config = SegDecConfig(num_classes=4, input_shape=(256, 1600, 1))
    ```

    Attributes:
      num_classes: K defect classes: K segmentation logit maps and K decision logits
        (one decision logit per class; K=1 is the paper's single image logit).
      input_shape: `(height, width, channels)`, height and width multiples of 8 and
        at least 128 (the decision head's last block works at 1/64).
      input_normalization: one of `INPUT_NORMALIZATIONS`, how the pipeline scales
        pixels: "min_max" stretches each image to [0, 1]; "caffe" divides by 255
        (the reference code's scaling, the dataset presets'; this network has no
        ImageNet layer). `FeatureNorm` divides by the square root of the standard
        deviation, so the input's contrast still reaches the features.
      tasks: always `SEGDEC_TASKS`; stored so that consumers read it as from any model.
      trunk_channels: `(first, middle, last)` widths of the segmentation trunk: the
        first 5x5 block, the seven 5x5 blocks after it, and the 15x15 block at 1/8
        (the paper: 32, 64, 1024). The `small` preset narrows them for CPUs and tests:
        the 15x15 block holds 15 * 15 * middle * last weights, 94 % of the paper's.
      delta: weight of the decision loss at the end of the run (`delta * n/N`).
      dilation: square kernel the masks are dilated by before downsampling (1: none).
      dynamic_balance: the `1 - n/N` / `delta * n/N` schedule; False weighs the
        segmentation loss 1 and the decision loss `delta` throughout.
      gradient_adjustment: stop the decision loss's gradients at the decision head's
        input and at the global poolings of the segmentation logits, so that the
        decision head never disturbs the segmentation features.
      batch_reduction: how a batch's image losses combine, one of `REDUCTIONS`: "mean",
        or "sum" as the reference code (one backward pass per image, MEMORY_FIT 1, and
        one SGD step per batch), so that its learning rates apply unchanged to its batch
        sizes: Severstal's 0.1 at batch 10 is a step of 1.0 times the mean gradient. The
        paper presets sum; with a label-only image (mixed supervision) in the batch, the
        sum also weighs each masked image's segmentation loss as the reference does.
    """

    num_classes: int = 1
    input_shape: tuple = (1408, 512, 1)
    input_normalization: str = "min_max"
    tasks: tuple = SEGDEC_TASKS
    trunk_channels: tuple = (32, 64, 1024)
    delta: float = 1.0
    dilation: int = 1
    dynamic_balance: bool = True
    gradient_adjustment: bool = True
    batch_reduction: str = "mean"

    def __post_init__(self):
        for name in ("input_shape", "tasks", "trunk_channels"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        self._validate()

    @property
    def resolved_input_normalization(self) -> str:
        return self.input_normalization

    def _validate(self):
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ValueError(f"num_classes must be an integer >= 1, got {self.num_classes!r}.")
        if len(self.input_shape) != 3 or any(
            not isinstance(size, int) or size < 1 for size in self.input_shape
        ):
            raise ValueError(
                "input_shape must be (height, width, channels) of positive integers, "
                f"got {self.input_shape!r}."
            )
        if any(
            size < MIN_INPUT_SIZE or size % INPUT_MULTIPLE for size in self.input_shape[:2]
        ):
            raise ValueError(
                f"input_shape {self.input_shape!r}: height and width must be multiples of "
                f"{INPUT_MULTIPLE} of at least {MIN_INPUT_SIZE} pixels (the segmentation "
                "logits are at 1/8, the decision head's last block works at 1/64)."
            )
        if self.input_normalization not in INPUT_NORMALIZATIONS:
            raise ValueError(
                f"Unknown input_normalization {self.input_normalization!r}; allowed values: "
                f"{', '.join(INPUT_NORMALIZATIONS)}."
            )
        if self.tasks != SEGDEC_TASKS:
            raise ValueError(
                f"tasks of the segmentation + decision network are always {SEGDEC_TASKS}, "
                f"got {self.tasks!r}."
            )
        if len(self.trunk_channels) != 3 or any(
            not isinstance(width, int) or width < 1 for width in self.trunk_channels
        ):
            raise ValueError(
                "trunk_channels must be three positive integers (first, middle, last), "
                f"got {self.trunk_channels!r}."
            )
        if self.delta < 0:
            raise ValueError(f"delta must be >= 0, got {self.delta!r}.")
        if not isinstance(self.dilation, int) or self.dilation < 1:
            raise ValueError(f"dilation must be an integer >= 1, got {self.dilation!r}.")
        if self.batch_reduction not in REDUCTIONS:
            raise ValueError(
                f"batch_reduction must be one of {', '.join(REDUCTIONS)}, got "
                f"{self.batch_reduction!r}."
            )


PRESETS = {
    # The reference code's KolektorSDD settings: 1408x512 grey images scaled by 1/255
    # (data/dataset.py read_img_resize, as for every dataset below), dilation 7, delta
    # 0.01 (with its learning rate 1, batch 1 and 50 epochs in the experiment).
    "kolektorsdd": SegDecConfig(
        num_classes=1, input_shape=(1408, 512, 1), input_normalization="caffe", delta=0.01,
        dilation=7, batch_reduction="sum",
    ),
    # The reference code's DAGM settings (config.py: 512x512 grey; EXPERIMENTS_COMIND.sh
    # train_DAGM: DILATE 7, DELTA_CLS_LOSS 1), one texture class per run.
    "dagm": SegDecConfig(
        num_classes=1, input_shape=(512, 512, 1), input_normalization="caffe", delta=1.0,
        dilation=7, batch_reduction="sum",
    ),
    # The reference code's Severstal settings (config.py: 1600 wide x 256 high, grey;
    # EXPERIMENTS_COMIND.sh train_single STEEL: DILATE 1, DELTA_CLS_LOSS 0.1). Four
    # decision logits, one per Kaggle class: the paper keeps class-3 images only.
    "severstal": SegDecConfig(
        num_classes=4, input_shape=(256, 1600, 1), input_normalization="caffe", delta=0.1,
        dilation=1, batch_reduction="sum",
    ),
    # The same layers, a sixteenth of the trunk's widths at its end: for CPUs and tests.
    "small": SegDecConfig(
        num_classes=1, input_shape=(128, 128, 1), trunk_channels=(8, 16, 64)
    ),
}
SegDecConfig.presets = PRESETS
