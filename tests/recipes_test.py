import dataclasses
import math

import numpy as np
import pytest

from defect_aux_net.anchor_recipe import anchor_coverage
from defect_aux_net.config import DefectAuxNetConfig
from defect_aux_net.data.dataset_survey import DatasetSurvey
from defect_aux_net.experiments import ExperimentConfig
from defect_aux_net.models.model_builders import model_config
from defect_aux_net.recipes import (
    GIVEN,
    choose_recipe,
    given_fields,
    input_scale,
    recipe_chose,
    scale_for_epochs,
)


def make_survey(image_size, boxes_pixels, num_examples, defective, with_masks=0, classes=1):
    """A survey of `num_examples` images of `image_size`, the boxes on the first images."""
    height, width = image_size
    boxes = np.array(boxes_pixels, np.float64).reshape(-1, 4) / [height, width, height, width]
    return DatasetSurvey(
        num_examples=num_examples,
        defective=defective,
        with_masks=with_masks,
        with_boxes=num_examples if len(boxes) else 0,
        class_names=tuple(f"c{index}" for index in range(classes)),
        class_counts=(defective,) * classes,
        channels=1,
        image_sizes=np.tile(image_size, (num_examples, 1)),
        boxes=boxes,
        box_images=np.arange(len(boxes)) % max(defective, 1),
    )


def test_anchor_coverage_uses_the_pipelines_matching():
    # 8x8 anchors on an 8-pixel grid at P3 (anchor_size 1, one scale, one ratio):
    # box A is an anchor (IoU 1), B is one shifted by 2 rows (IoU 48/80 = 0.6),
    # C one shifted by 2 rows and 2 columns (IoU 36/92 = 0.391); the 16- and
    # 32-pixel anchors of P4 and P5 overlap each by at most 64/256 = 0.25.
    config = DefectAuxNetConfig.from_preset(
        "small", input_shape=(64, 64, 3), max_level=5, anchor_size=1.0,
        anchor_scales_per_octave=1, anchor_aspect_ratios=(1.0,),
    )
    boxes = [[0, 0, 8, 8], [18, 16, 26, 24], [34, 34, 42, 42]]
    survey = make_survey((64, 64), boxes, num_examples=1, defective=1)
    assert anchor_coverage(survey, config, 0.5) == pytest.approx(2 / 3)
    assert anchor_coverage(survey, config, 0.6) == pytest.approx(2 / 3)
    assert anchor_coverage(survey, config, 0.61) == pytest.approx(1 / 3)
    assert anchor_coverage(survey, config, 0.39) == pytest.approx(1.0)


def test_large_defects_let_the_input_shrink_to_keep_them_16_pixels_wide():
    # 200x200 images fit the budget; the narrowest tenth of the defects is 40 px, so
    # 0.4 would keep them 16 px wide, but 128x128 pixels (scale 0.64) is the floor.
    survey = make_survey((200, 200), [[0, 0, 40, 60]] * 10, num_examples=10, defective=10)
    scale, reason = input_scale(survey)
    assert scale == pytest.approx(0.64)
    assert "40 px" in reason


def test_tall_images_with_rare_small_defects():
    # 100 images of 1000x500, 10 defective with one 40x40 box each.
    survey = make_survey(
        (1000, 500), [[100, 100, 140, 140]] * 10, num_examples=100, defective=10, with_masks=100
    )
    experiment, choices = choose_recipe(survey, ExperimentConfig.from_preset("auto"))
    # Scale sqrt(384 * 128 / (1000 * 500)) = 0.3135 keeps the 40 px defects 12.5 px wide:
    # 313.5 x 156.8, rounded to multiples of 32; 12.8 px boxes need no level above P5.
    assert experiment.model.input_shape == (320, 160, 3)
    assert experiment.model.max_level == 5
    assert experiment.model.tasks == ("classification", "segmentation", "detection")
    assert experiment.model.segmentation_loss == "dice+bce"
    assert experiment.model.anchor_aspect_ratios == (1.0,)  # Square boxes only.
    # 10 % defective: frequency-of-use sampling, an epoch of 2 x 10 images, and a
    # batch of at most 20 / 8 = 2 (the pixel rule alone would give 262144 / 51200 -> 4).
    assert experiment.negative_sampling is True
    assert experiment.batch_size == 2
    assert experiment.learning_rate == pytest.approx(float(f"{1e-3 * math.sqrt(2 / 16):.2g}"))
    # float32 images (3 channels) and masks (1 class): 4 * 100 * 320 * 160 * 4 bytes.
    assert experiment.cache is True
    assert "78 MiB" in choices["cache"]["reason"]
    assert experiment.model.positive_iou in (0.5, 0.4)
    assert experiment.model.negative_iou == pytest.approx(experiment.model.positive_iou - 0.1)


@pytest.mark.parametrize("name", ["resnet50", "unet"])
def test_another_network_takes_the_choices_its_config_has(name):
    survey = make_survey(
        (1000, 500), [[100, 100, 140, 140]] * 10, num_examples=100, defective=10, with_masks=100
    )
    auto = ExperimentConfig.from_preset("auto")
    start = dataclasses.replace(
        auto, model_name=name, model=model_config(name, "small", num_classes=1)
    )
    experiment, choices = choose_recipe(survey, start)
    tasks = start.model.tasks  # A single-head network keeps its head...
    assert experiment.model.tasks == tasks
    assert "keeps its own: it refuses" in choices["model.tasks"]["reason"]
    # ...and gets the rest of the recipe of the same survey, as Defect-Aux-Net would.
    expected, _ = choose_recipe(survey, auto)
    assert experiment.model.input_shape == expected.model.input_shape == (320, 160, 3)
    assert (experiment.batch_size, experiment.negative_sampling, experiment.cache) == (
        expected.batch_size, expected.negative_sampling, expected.cache
    )
    # Fields of Defect-Aux-Net's heads that this config lacks are not chosen.
    assert not {"model.max_level", "model.anchor_size", "model.positive_iou"} & set(choices)
    assert ("model.segmentation_loss" in choices) == (name == "unet")


def test_flags_given_are_kept_and_say_so():
    survey = make_survey((1000, 500), [[100, 100, 140, 140]] * 10, 100, 10)
    start = ExperimentConfig.from_preset("auto", batch_size=3)
    experiment, choices = choose_recipe(survey, start, keep={"batch_size", "model.input_shape"})
    assert experiment.batch_size == 3
    assert experiment.model.input_shape == start.model.input_shape
    assert choices["batch_size"] == {"value": 3, "reason": "given as a flag"}
    # The learning rate follows the batch given: sqrt(3 / 16) x 1e-3.
    assert experiment.learning_rate == pytest.approx(4.3e-4)


def test_defect_free_images_only_keep_plain_shuffling():
    survey = make_survey((64, 64), [], num_examples=40, defective=0)
    experiment, _ = choose_recipe(survey, ExperimentConfig.from_preset("auto"))
    assert experiment.negative_sampling is False
    assert experiment.model.tasks == ("classification",)


@pytest.mark.parametrize(
    "short_side, input_size, epochs, expected",
    [
        # 9 epochs at 192x192 of 200x200 images (scale 0.96): 0.96 x sqrt(9 / 20) =
        # 0.644 gives 20, above the 128x128 floor (0.64); 40 px defects stay 25 px wide.
        (40, 192, 9, 0.644),
        # 20 px defects: 16 / 20 = 0.8 keeps them 16 px wide, the floor (fewer epochs).
        (20, 192, 9, 0.8),
        # 10 px defects are below 16 px already: no smaller input.
        (10, 192, 9, None),
        # 20 epochs are enough; 128x128 (0.64) is already the floor.
        (40, 192, 20, None),
        (40, 128, 5, None),
        # 24 px defects: the floor 16 / 24 = 0.667 is 0.96 - 0.667 = 0.29 of 200 px, 59
        # px smaller: worth it. 18 px defects: 0.889, 14 px smaller: not worth a change.
        (24, 192, 9, 0.667),
        (18, 192, 9, None),
    ],
)
def test_few_epochs_take_a_smaller_input_down_to_the_defects_floor(
    short_side, input_size, epochs, expected
):
    survey = make_survey((200, 200), [[0, 0, short_side, 60]] * 10, 10, 10)
    choice = scale_for_epochs(survey, (input_size, input_size, 3), epochs)
    if expected is None:
        assert choice is None
        return
    scale, reason = choice
    assert scale == pytest.approx(expected)
    assert f"{epochs} pass(es) at {input_size}x{input_size}" in reason
    assert ("16 px wide" in reason) == (short_side < 40)


def test_a_given_scale_sets_the_input_and_is_recorded():
    survey = make_survey((200, 200), [[0, 0, 40, 60]] * 10, num_examples=10, defective=10)
    experiment, choices = choose_recipe(
        survey, ExperimentConfig.from_preset("auto"), scale=(0.8, "for more epochs")
    )
    # 200 x 0.8 = 160, a multiple of 32.
    assert experiment.model.input_shape == (160, 160, 3)
    assert choices["input_scale"] == {"value": 0.8, "reason": "for more epochs"}
    assert choices["model.input_shape"]["reason"].startswith("for more epochs; ")


@pytest.mark.parametrize("epochs, augment", [(7, False), (19, False), (20, True), (50, True)])
def test_augmentation_follows_the_epochs_given(epochs, augment):
    survey = make_survey((200, 200), [[0, 0, 40, 60]] * 10, num_examples=10, defective=10)
    start = ExperimentConfig.from_preset("auto", time_budget=None, epochs=epochs)
    experiment, choices = choose_recipe(survey, start)
    assert experiment.augment is augment
    assert choices["augment"]["value"] is augment
    assert f"{epochs} pass" in choices["augment"]["reason"]


def test_under_a_time_budget_augmentation_waits_for_the_epochs():
    survey = make_survey((200, 200), [[0, 0, 40, 60]] * 10, num_examples=10, defective=10)
    experiment, choices = choose_recipe(survey, ExperimentConfig.from_preset("auto"))
    assert experiment.augment is True
    assert "until the time budget has measured the epochs" in choices["augment"]["reason"]
    given, choices = choose_recipe(
        survey, ExperimentConfig.from_preset("auto", augment=False), keep={"augment"}
    )
    assert given.augment is False and choices["augment"]["reason"] == "given as a flag"


def test_retinanet_keeps_the_fields_that_name_it():
    # Boxes and image labels: Defect-Aux-Net would get two heads; RetinaNet's one head is
    # what makes it RetinaNet (its config is Defect-Aux-Net's), so its tasks stay.
    survey = make_survey((200, 200), [[0, 0, 40, 60]] * 10, num_examples=10, defective=10)
    auto = ExperimentConfig.from_preset("auto")
    start = dataclasses.replace(
        auto, model_name="retinanet", model=model_config("retinanet", "small", num_classes=1)
    )
    experiment, choices = choose_recipe(survey, start)
    assert experiment.model.tasks == ("detection",)
    assert choices["model.tasks"]["reason"] == (
        "retinanet keeps its own: the field names the network"
    )
    assert experiment.model_name == "retinanet"
    # The anchors are chosen for its detection path as for Defect-Aux-Net's.
    expected, _ = choose_recipe(survey, auto)
    assert experiment.model.anchor_size == expected.model.anchor_size
    assert experiment.model.input_shape == expected.model.input_shape


@pytest.mark.parametrize("name", ["faster_rcnn", "cascade_rcnn"])
def test_a_detector_with_anchors_of_its_own_keeps_them(name):
    # Faster R-CNN's RPN anchors are not laid out as Defect-Aux-Net's (no min_level or
    # scales per octave): the anchor recipe leaves them, and says so.
    survey = make_survey((200, 200), [[0, 0, 40, 60]] * 10, num_examples=10, defective=10)
    start = dataclasses.replace(
        ExperimentConfig.from_preset("auto"), model_name=name,
        model=model_config(name, "small", num_classes=1),
    )
    experiment, choices = choose_recipe(survey, start)
    assert experiment.model.anchor_size == start.model.anchor_size
    assert experiment.model.anchor_aspect_ratios == start.model.anchor_aspect_ratios
    assert "keeps its own anchors" in choices["model.anchor_size"]["reason"]
    assert "model.positive_iou" not in choices
    # The rest of the recipe as Defect-Aux-Net's: 40-pixel defects, 200x200 -> 128x128.
    assert experiment.model.input_shape == (128, 128, 3)


def test_given_fields_and_what_the_recipe_chose_are_read_from_the_recorded_recipe():
    recipe = {
        "batch_size": {"value": 4, "reason": GIVEN},
        "augment": {"value": True, "reason": "few epochs"},
    }
    model = DefectAuxNetConfig.from_preset("small")
    experiment = ExperimentConfig(model=model, dataset="neu_det", recipe=recipe)
    assert given_fields(experiment) == {"batch_size"}
    assert recipe_chose(experiment, "augment")
    assert not recipe_chose(experiment, "batch_size")
    assert not recipe_chose(experiment, "learning_rate")  # Not in the recipe at all.
    without_recipe = ExperimentConfig(model=model, dataset="neu_det")
    assert given_fields(without_recipe) == frozenset()
    assert not recipe_chose(without_recipe, "augment")
