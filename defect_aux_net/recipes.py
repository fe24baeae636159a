"""The default recipe, derived from the training split's survey (`--preset=auto`).

`choose_recipe` turns a `DatasetSurvey` into the fields of an `ExperimentConfig`: the
tasks the annotations allow, an input size that keeps small defects visible within a
CPU budget, anchors sized to the boxes present, sampling, batch size and learning rate.
Every choice comes with its reason; fields in `keep` (given on the command line) stay
as they are. The rules read only the survey, so they hold for any dataset of the
project's schema; the loss weights and the epochs are measured on the model itself
(`training.auto_recipe`, `training.time_budget`).
"""

import dataclasses
import math

import numpy as np

from defect_aux_net import anchor_recipe
from defect_aux_net.data.dataset_survey import DatasetSurvey
from defect_aux_net.experiments import ExperimentConfig
from defect_aux_net.models.model_builders import MODELS

# Pixels of one model input: the small network trains a batch of eight at 384x128 in
# about 2 s on 2 CPU cores, so a 30-minute run gets several hundred steps.
MAX_PIXELS = 384 * 128
# Inputs are not made smaller than this to save time: below it, texture is lost.
MIN_PIXELS = 128 * 128
# "Several pixels wide": a defect narrower than one stride of the finest detection
# level (P3, 8 pixels) falls between anchor centres and into one or two mask pixels.
MIN_DEFECT_PIXELS = 8
# Shrinking an input to save time (more steps, or more epochs, in a budget) stops where the
# narrowest tenth of the defects would be narrower than two such strides: a defect one
# stride wide is still seen, but the anchor grid then places its box only to about half
# its width, which costs IoU >= 0.5 matches.
SHRINK_DEFECT_PIXELS = 2 * MIN_DEFECT_PIXELS
# Pixels per batch: a batch of 16 at 128x128, the quickstart's.
PIXELS_PER_BATCH = 16 * 128 * 128
BATCH_SIZES = (4, 32)
# An epoch has at least this many steps, so validation does not dominate the time.
MIN_STEPS_PER_EPOCH = 8
# Adam's peak learning rate at batch 16 (Keras' default rate), scaled by sqrt(batch/16).
BASE_LEARNING_RATE = 1e-3
# Frequency-of-use sampling when defect-free images outnumber defective ones 2:1.
RARE_DEFECTS = 1 / 3
# Images the batch-norm statistics are recomputed on after training: a forward pass over
# them costs about a third of a training epoch of that many images; precise BN's study
# (Wu and Johnson, 2021) finds a few thousand samples enough.
BATCH_NORM_IMAGES = 2048
# Decoded, resized training images are cached when they take at most this much memory.
CACHE_BYTES = 2**30
# Epochs a time budget should buy. A network trained from random weights needs many
# passes over the data: one-cycle training from scratch takes some 20 to 50 epochs in
# Smith and Topin's super-convergence experiments, and a run that stops after fewer
# is still learning (its validation loss still falling). When the budget buys fewer
# at the survey's input size, a smaller input trains more epochs in the same time.
MIN_EPOCHS = 20
# Augmentation is a regulariser: it pays where a run shows each defective image many
# times (every epoch shows each one once, with or without frequency-of-use sampling).
# A network trained from scratch that sees its images fewer than MIN_EPOCHS times is
# still fitting them (its validation loss still falling), and augmented copies only slow
# that; seen more often, a few dozen defects are learnt by heart without it. Measured
# (benchmarks/README.md): NEU-DET, 1,224 images, 7 epochs: mAP@0.5 0.59 without, 0.43-0.45
# with; KolektorSDD, 36 defective images, 35 epochs without: image AP 0.51-0.61
# (memorised), 0.93 with, and 0.96 with in 80 epochs.
AUGMENT_EPOCHS = MIN_EPOCHS
# The fields of anchors laid out as Defect-Aux-Net's (`detection.anchors.anchors_for_config`),
# which the anchor recipe chooses; other detectors (SSD's default boxes, Faster R-CNN's RPN
# anchors) keep their own.
ANCHOR_FIELDS = tuple(
    f"model.{name}" for name in (
        "min_level", "max_level", "anchor_size", "anchor_scales_per_octave",
        "anchor_aspect_ratios",
    )
)
# The reason the recipe gives a field the user set (which it keeps).
GIVEN = "given as a flag"


def given_fields(experiment) -> frozenset:
    """The fields the recipe kept because the user set them."""
    recipe = experiment.recipe or {}
    return frozenset(
        name for name, choice in recipe.items()
        if isinstance(choice, dict) and choice.get("reason") == GIVEN
    )


def recipe_chose(experiment, field: str) -> bool:
    """Whether the recipe chose `field`: not a flag's value, nor a run without a recipe."""
    choice = (experiment.recipe or {}).get(field)
    return choice is not None and choice["reason"] != GIVEN


def _rounded(value: float) -> float:
    return float(f"{value:.2g}")


def has_field(experiment: ExperimentConfig, field: str) -> bool:
    """Whether `experiment` (for `model.*`: its model config) has `field`."""
    owner = experiment.model if field.startswith("model.") else experiment
    return field.removeprefix("model.") in {item.name for item in dataclasses.fields(owner)}


class _Recipe:
    """An experiment being changed field by field, with the reason for each change.

    The recipe speaks of Defect-Aux-Net's fields. Another network takes the choices its
    config has fields for; a value its config refuses (a classifier's tasks, say) leaves
    the network's own, and the reason says so. So do the fields that name a network
    sharing Defect-Aux-Net's config (`retinanet`'s tasks: another value would make it
    Defect-Aux-Net).
    """

    def __init__(self, experiment: ExperimentConfig, keep):
        self.experiment, self.keep, self.choices = experiment, frozenset(keep), {}

    def has(self, field: str) -> bool:
        return has_field(self.experiment, field)

    def value(self, field: str):
        owner = self.experiment.model if field.startswith("model.") else self.experiment
        return getattr(owner, field.removeprefix("model."))

    def choose(self, field: str, value, reason: str):
        if not self.has(field):
            return
        if field in self.keep:
            self.choices[field] = {"value": self.value(field), "reason": GIVEN}
            return
        name = field.removeprefix("model.")
        if field.startswith("model."):
            network = self.experiment.model_name
            if name in MODELS[network].config_values:
                self.choices[field] = {
                    "value": self.value(field),
                    "reason": f"{network} keeps its own: the field names the network",
                }
                return
            try:
                model = dataclasses.replace(self.experiment.model, **{name: value})
            except ValueError as error:  # ConfigError, or a model's own ValueError.
                config = type(self.experiment.model).__name__
                self.choices[field] = {
                    "value": self.value(field),
                    "reason": f"{config} keeps its own: it refuses {value!r} ({error})",
                }
                return
            self.experiment = dataclasses.replace(self.experiment, model=model)
        else:
            self.experiment = dataclasses.replace(self.experiment, **{name: value})
        self.choices[field] = {"value": self.value(field), "reason": reason}


def choose_recipe(
    survey: DatasetSurvey, experiment: ExperimentConfig, keep=(), scale: tuple | None = None
) -> tuple:
    """The experiment with the recipe's fields chosen from `survey`, and the reasons.

    Args:
      survey: the training split's survey.
      experiment: the starting point (the `auto` preset with the user's flags).
      keep: field names (`"batch_size"`, `"model.input_shape"`) to leave as they are.
      scale: `(scale, reason)` from the median image size to the input size, instead of
        `input_scale`'s (`scale_for_epochs`, once the step time is measured); recorded
        as the choice `input_scale`.

    Returns:
      `(experiment, choices)`: choices maps each field to `{"value", "reason"}`.
    """
    recipe = _Recipe(experiment, keep)
    _choose_tasks(recipe, survey)
    if scale is None:
        scale, reason = input_scale(survey)
    else:
        scale, reason = scale
        recipe.choices["input_scale"] = {"value": scale, "reason": reason}
    # The anchor recipe sets Defect-Aux-Net's anchor fields; other detectors keep theirs.
    detects = "detection" in recipe.value("model.tasks")
    detection = detects and all(recipe.has(field) for field in ANCHOR_FIELDS)
    if detects and not detection and recipe.has("model.anchor_size"):
        recipe.choose(
            "model.anchor_size", recipe.value("model.anchor_size"),
            f"{type(recipe.experiment.model).__name__} keeps its own anchors: the recipe "
            "sizes anchors laid out as Defect-Aux-Net's (levels, scales and ratios)",
        )
    # Anchors are chosen at the input size rounded to 32 pixels; their top level then
    # sets the multiple the final size is rounded to.
    _choose_input_size(recipe, survey, scale, reason)
    if detection:
        anchor_recipe.choose_anchor_shapes(recipe, survey)
        level = anchor_recipe.top_level(recipe, survey)
    recipe.choose(
        "model.max_level", level if detection else 5,
        "the largest anchors cover the largest twentieth of the boxes" if detection else
        "levels above P5 only serve the detection subnets",
    )
    _choose_input_size(recipe, survey, scale, reason)
    if detection:
        anchor_recipe.choose_positive_iou(recipe, survey)
    defective = survey.defective / survey.num_examples
    recipe.choose("augment", *augmentation_for_epochs(
        None if recipe.value("time_budget")
        else recipe.value("epochs") * recipe.value("passes_per_epoch")
    ))
    images = min(survey.num_examples, BATCH_NORM_IMAGES)
    recipe.choose(
        "batch_norm_images", images,
        f"batch-norm statistics recomputed after training over {images} training images, "
        "drawn as in training but not augmented: the moving averages are of augmented "
        "images, mostly of the last few batches, and make validation and the exported "
        "model vary from epoch to epoch",
    )
    rare = 0 < survey.defective and defective < RARE_DEFECTS
    recipe.choose(
        "negative_sampling", rare,
        f"{defective:.0%} of the training images are defective"
        + (f" (< {RARE_DEFECTS:.0%}): each epoch shows every defective image and as many "
           "defect-free ones, drawn by frequency of use" if rare else
           f" (>= {RARE_DEFECTS:.0%} or none): plain shuffling keeps every image in each epoch"),
    )
    _choose_batch_and_rate(recipe, survey)
    height, width, channels = recipe.value("model.input_shape")
    # float32 images and masks (one channel per class), as the pipeline caches them.
    cache_bytes = 4 * survey.num_examples * height * width * (channels + len(survey.class_names))
    recipe.choose(
        "cache", cache_bytes <= CACHE_BYTES,
        f"decoded training images take about {cache_bytes / 2**20:.0f} MiB at the input "
        f"size (cached when <= {CACHE_BYTES / 2**20:.0f} MiB)",
    )
    return recipe.experiment, recipe.choices


def augmentation_for_epochs(passes: float | None) -> tuple:
    """`(augment, reason)` for a run of `passes` over the training split (epochs of one
    pass each, or a time budget's; None: a time budget will measure them, and the
    choice is made again then)."""
    if passes is None:
        return True, (
            "the paper's augmentation, until the time budget has measured the epochs: "
            f"then on for {AUGMENT_EPOCHS} passes or more"
        )
    shown = f"{round(passes, 1):g}"
    if passes >= AUGMENT_EPOCHS:
        return True, (
            f"the paper's augmentation: {shown} passes show each defective image {shown} "
            "times, and from scratch the heads learn them by heart without it"
        )
    return False, (
        f"{shown} pass(es) show each defective image {shown} times (< {AUGMENT_EPOCHS}): "
        "a network trained from scratch is still fitting them, and augmented copies only "
        "slow it"
    )


def _choose_tasks(recipe: _Recipe, survey: DatasetSurvey):
    tasks = ["classification"]
    if survey.with_masks:
        tasks.append("segmentation")
    if survey.with_boxes:
        tasks.append("detection")
    recipe.choose(
        "model.tasks", tuple(tasks),
        f"image labels on all {survey.num_examples} training images, masks on "
        f"{survey.with_masks}, boxes on {survey.with_boxes}: a head for each annotation present",
    )
    if "segmentation" in recipe.value("model.tasks"):
        recipe.choose(
            "model.segmentation_loss", "dice+bce",
            "Dice alone gives defect-free images no gradient; the pixel-wise BCE does",
        )


def input_scale(survey: DatasetSurvey) -> tuple:
    """`(scale, reason)`: the factor from the median image size to the input size."""
    height, width = np.median(survey.image_sizes, axis=0)
    area = height * width
    scale = min(1.0, math.sqrt(MAX_PIXELS / area))
    reason = (
        f"median image {height:.0f}x{width:.0f}"
        + (f", scaled by {scale:.3g} to fit {MAX_PIXELS} pixels" if scale < 1 else
           f" fits {MAX_PIXELS} pixels unscaled")
    )
    if not len(survey.boxes):
        return scale, reason + " (no boxes tell the defects' size)"
    short = float(np.percentile(survey.box_sides().min(axis=1), 10))
    if short * scale > SHRINK_DEFECT_PIXELS and area * scale**2 > MIN_PIXELS:
        smaller = max(SHRINK_DEFECT_PIXELS / short, math.sqrt(MIN_PIXELS / area))
        if smaller < scale:
            scale = smaller
            reason += (
                f"; the narrowest tenth of the defects ({short:.0f} px) stay "
                f">= {SHRINK_DEFECT_PIXELS} px wide at scale {scale:.3g} (not below "
                f"{MIN_PIXELS} pixels), and smaller inputs train more steps"
            )
    reason += f"; the narrowest tenth of the defects are {short * scale:.1f} px wide"
    if short * scale < MIN_DEFECT_PIXELS:
        reason += (
            f" (< {MIN_DEFECT_PIXELS}: a larger --input_size keeps them, at more time per "
            "step)"
        )
    return scale, reason


def scale_for_epochs(survey: DatasetSurvey, input_shape, epochs: float) -> tuple | None:
    """`(scale, reason)` of a smaller input that trains about `MIN_EPOCHS` epochs, or None.

    Rule: an epoch's time grows with the pixels of an input (convolutions cost the
    same per pixel, and the batch size keeps the pixels of a step about constant), so
    `epochs` measured at `input_shape` become `epochs * s0^2 / s^2` at scale `s`
    (`s0` is `input_shape`'s scale of the median image); the scale that gives
    `MIN_EPOCHS` is `s0 * sqrt(epochs / MIN_EPOCHS)`. It stops where the inputs would
    lose what they must show: the narrowest tenth of the boxes stays at least
    `SHRINK_DEFECT_PIXELS` wide (two strides of the finest detection level, as when
    `input_scale` shrinks an input to fit its pixels) and the input at least
    `MIN_PIXELS`. Fewer epochs of a model that sees the defects are worth more
    than more epochs of one that cannot.

    Args:
      survey: the training split's survey.
      input_shape: the input size the epochs were measured at.
      epochs: the passes over the training split the budget buys at `input_shape`.

    Returns:
      None when `epochs >= MIN_EPOCHS` or the limits leave no smaller input.
    """
    if epochs >= MIN_EPOCHS:
        return None
    height, width = np.median(survey.image_sizes, axis=0)
    area = height * width
    current = math.sqrt(input_shape[0] * input_shape[1] / area)
    wanted = current * math.sqrt(epochs / MIN_EPOCHS)
    floor, limit = math.sqrt(MIN_PIXELS / area), f"{MIN_PIXELS} pixels"
    if len(survey.boxes):
        short = float(np.percentile(survey.box_sides().min(axis=1), 10))
        if SHRINK_DEFECT_PIXELS / short > floor:
            floor = SHRINK_DEFECT_PIXELS / short
            limit = (
                f"the narrowest tenth of the defects ({short:.0f} px) "
                f"{SHRINK_DEFECT_PIXELS} px wide"
            )
    scale = float(f"{max(wanted, floor):.3g}")
    # Inputs are rounded to multiples of 32 pixels or more: less than that gains nothing.
    if (current - scale) * min(height, width) < 16:
        return None
    reason = (
        f"median image {height:.0f}x{width:.0f}: the budget buys {round(epochs, 1):g} "
        f"pass(es) at "
        f"{input_shape[0]}x{input_shape[1]} (< {MIN_EPOCHS}); scaled by {scale:.3g} for "
        f"about {MIN_EPOCHS} (an epoch's time grows with the input's pixels)"
        + (f", not below {limit}" if scale > wanted else "")
    )
    return scale, reason


def _choose_input_size(recipe: _Recipe, survey: DatasetSurvey, scale: float, reason: str):
    height, width = np.median(survey.image_sizes, axis=0)
    multiple = 32  # Until the anchors are chosen, and for networks without levels.
    if "model.max_level" in recipe.choices:
        multiple = 2 ** max(recipe.value("model.max_level"), 5)
    size = [max(multiple, round(side * scale / multiple) * multiple) for side in (height, width)]
    channels = recipe.value("model.input_shape")[2]
    recipe.choose(
        "model.input_shape", (*size, channels),
        f"{reason}; sides rounded to multiples of {multiple} (the coarsest stride, which "
        "the model pads to), so the aspect is kept and no padding is computed",
    )


def _choose_batch_and_rate(recipe: _Recipe, survey: DatasetSurvey):
    height, width = recipe.value("model.input_shape")[:2]
    examples = survey.num_examples
    if recipe.value("negative_sampling"):
        examples = 2 * survey.defective
    by_pixels = 2 ** round(math.log2(PIXELS_PER_BATCH / (height * width)))
    by_steps = max(1, examples // MIN_STEPS_PER_EPOCH)
    batch = min(max(by_pixels, BATCH_SIZES[0]), BATCH_SIZES[1], by_steps)
    recipe.choose(
        "batch_size", 2 ** int(math.log2(batch)),
        f"{PIXELS_PER_BATCH} pixels per batch at {height}x{width} (in "
        f"{BATCH_SIZES[0]}..{BATCH_SIZES[1]}), at most 1/{MIN_STEPS_PER_EPOCH} of the "
        f"{examples} images of an epoch, rounded down to a power of two",
    )
    batch = recipe.value("batch_size")
    recipe.choose(
        "learning_rate", _rounded(BASE_LEARNING_RATE * math.sqrt(batch / 16)),
        f"Adam's {BASE_LEARNING_RATE:g} at batch 16, scaled by sqrt(batch / 16)",
    )
