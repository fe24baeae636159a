"""The automatic recipe of a run: the survey's rules, then the loss weights measured on the model.

`apply_recipe` is what `launch.train --preset=auto` (and `--dataset` without `--preset`)
does after `prepare_training_data`: survey the training split, choose the recipe
(`defect_aux_net.recipes`), balance the heads' losses, and log each choice with its
reason. Once the time budget has measured the step (`training.time_budget`), a run
that would train too few epochs gets a smaller input (`rescale_for_epochs`), and, when
`lr_range_test` asks for it, the learning rate comes from a short range test when the
budget has room for it (`range_test_learning_rate`). A rerun of the same command in the
same model_dir takes the measured choices from its config.json (`reuse_stored`), so it
resumes instead of differing in the last digit of a measurement.
"""

import dataclasses
import math
import os
import time

import keras
import numpy as np
from absl import logging

from defect_aux_net.config import TASKS
from defect_aux_net.data import datasets
from defect_aux_net.data.dataset_survey import survey_split
from defect_aux_net.data.pipeline import make_dataset
from defect_aux_net.models.model_builders import build_model
from defect_aux_net.recipes import (
    GIVEN,
    augmentation_for_epochs,
    choose_recipe,
    given_fields,
    has_field,
    recipe_chose,
    scale_for_epochs,
)
from defect_aux_net.training import run_files
from defect_aux_net.training.init_checkpoint import initialize_from_checkpoint
from defect_aux_net.training.lr_finder import (
    LRFinderResult,
    find_learning_rate,
    peak_learning_rate,
    plot_lr_finder,
)
from defect_aux_net.training.training_run import (
    TrainingData,
    steps_per_pass,
    training_input_options,
)
from defect_aux_net.training.weight_average import average_for_steps

# A head's weight moves at most this far from 1: its loss at initialisation says how
# loud it starts, not how much it has to learn.
LOSS_WEIGHT_BOUNDS = (0.5, 2.0)
# The learning-rate range test: steps at most and at least (fewer cannot draw a
# curve through the noise of batch losses), the share of the budget it may take, and
# its range of rates (Adam trains between about 1e-4 and 1e-2; the ends show the
# flat start and the divergence). Its smoothing window, 1 / (1 - beta) steps, is a
# tenth of the steps, so the curve lags the rates by a tenth of their range at most.
RANGE_TEST_STEPS = (50, 100)
RANGE_TEST_SHARE = 0.1
RANGE_TEST_RATES = (1e-5, 1.0)
# A measured rate is trusted within this factor of the rule's: a short test on noisy
# batches can place its minimum far off, and the rule is safe where it is not tuned.
RANGE_TEST_TRUST = 10.0
# The range test's plot in the run folder.
RANGE_TEST_PLOT = "lr_range_test.png"


def balanced_loss_weights(initial_losses: dict) -> tuple:
    """`(loss_weights, reason)` that bring each head's initial loss to the same level.

    Rule: `b_k = g / L_k`, where `L_k` is head k's loss at initialisation and `g` the
    geometric mean of the `L_k`, so that each weighted loss starts equal (at `g`) and
    no head's gradient drowns the others' in the shared backbone; bounded to
    `LOSS_WEIGHT_BOUNDS` and rounded to two digits. Heads without a loss keep 1.

    Args:
      initial_losses: `{task: loss}` of the model's heads, losses > 0.
    """
    losses = {task: float(loss) for task, loss in initial_losses.items()}
    if any(not math.isfinite(loss) or loss <= 0 for loss in losses.values()):
        raise ValueError(f"Initial losses must be finite and > 0, got {losses}.")
    mean = math.exp(sum(math.log(loss) for loss in losses.values()) / len(losses))
    low, high = LOSS_WEIGHT_BOUNDS
    weights = {
        task: float(f"{min(max(mean / loss, low), high):.2g}") for task, loss in losses.items()
    }
    reason = (
        "losses at initialisation "
        + ", ".join(f"{task} {loss:.3g}" for task, loss in losses.items())
        + f"; b = geometric mean / loss, in [{low:g}, {high:g}], so every head starts equal"
    )
    return tuple(weights.get(task, 1.0) for task in TASKS), reason


def starting_model(experiment) -> keras.Model:
    """A new model with the weights `fit` starts from: seeded, then `init_checkpoint`'s.

    The recipe's measurements (initial losses, the range test) must see those weights:
    a pretrained backbone starts at lower losses and tolerates other rates than a
    random one.
    """
    keras.utils.set_random_seed(experiment.seed)
    model = build_model(experiment.model)
    if experiment.init_checkpoint:
        initialize_from_checkpoint(model, experiment.init_checkpoint)
    return model


def measure_initial_losses(data: TrainingData) -> dict:
    """Each head's loss on the first training batch, with the weights `fit` starts from."""
    experiment = data.experiment
    model = starting_model(experiment)
    dataset = make_dataset(
        data.builder,
        experiment.train_split_slice,
        experiment.model,
        training_input_options(experiment),
    )
    images, targets, weights = next(iter(dataset))
    # training=True: the batch statistics the first step normalises with.
    losses = model.multi_task_loss(targets, model(images, training=True), weights)
    return {task: float(losses[task]) for task in experiment.model.tasks}


def reuse_stored(stored: dict | None, experiment, class_names, fields, unresolved=()):
    """`experiment` with `fields` taken from a stored config.json, when it is the same run.

    Args:
      stored: the model_dir's config.json, or None.
      experiment: the experiment about to run.
      class_names: the dataset's classes.
      fields: measured fields (`"epochs"`, `"model.loss_weights"`): their values and
        recipe entries come from `stored`.
      unresolved: fields not measured yet, left out of the comparison.

    Returns:
      The experiment with the stored measurements, or None when `stored` is None or
      differs in any other field (a new run: measure).
    """
    if not isinstance(stored, dict) or not all(
        isinstance(stored.get(key), dict) for key in ("model", "recipe")
    ):
        return None  # None, or a broken config.json: model_dir_state names it.
    candidate = experiment
    recipe = dict(experiment.recipe or {})
    for field in fields:
        owner = stored["model"] if field.startswith("model.") else stored
        value = owner.get(field.removeprefix("model."))
        if value is None or field not in stored["recipe"]:
            return None
        recipe[field] = stored["recipe"][field]
        candidate = _replace(candidate, field, value)
    candidate = dataclasses.replace(candidate, recipe=recipe)
    new = run_files.config_dict(candidate, class_names)
    old = dict(stored, recipe=dict(stored["recipe"]))
    for field in unresolved:
        for values in (new, old):
            values.pop(field, None)
            values["recipe"].pop(field, None)
    return candidate if not run_files.config_differences(old, new) else None


def _replace(experiment, field: str, value):
    if isinstance(value, list):
        value = tuple(value)
    if field.startswith("model."):
        model = dataclasses.replace(experiment.model, **{field.removeprefix("model."): value})
        return dataclasses.replace(experiment, model=model)
    return dataclasses.replace(experiment, **{field: value})


def apply_recipe(
    data: TrainingData, keep=(), stored: dict | None = None, scale: tuple | None = None
) -> TrainingData:
    """`data` with the recipe chosen from its training split; each choice logged.

    Args:
      data: from `prepare_training_data` (classes and splits resolved).
      keep: fields the user set, which the recipe keeps (dotted: `model.tasks`; the
        launch scripts' `experiment_flags.given_fields`).
      stored: the model_dir's config.json, whose measured loss weights (and input
        scale, `rescale_for_epochs`) a rerun reuses.
      scale: `(scale, reason)` of the input size (`recipes.choose_recipe`).

    Raises:
      ConfigError: naming the field, when the chosen recipe does not suit the split.
    """
    experiment = data.experiment
    survey = survey_split(data.builder, experiment.train_split_slice)
    stored_scale = _stored_recipe(stored).get("input_scale")
    if scale is None and isinstance(stored_scale, dict):
        value, reason = stored_scale.get("value"), stored_scale.get("reason")
        if isinstance(value, (int, float)) and value > 0 and isinstance(reason, str):
            scale = (value, reason)  # Else the comparison with config.json names it.
    experiment, choices = choose_recipe(survey, experiment, keep, scale)
    tasks = experiment.model.tasks
    experiment = dataclasses.replace(experiment, recipe={"survey": survey.to_dict(), **choices})
    summary = survey.split_summary()
    datasets.check_tasks(tasks, summary, experiment.dataset, experiment.train_split)
    data = dataclasses.replace(
        data, experiment=experiment, pass_steps=steps_per_pass(experiment, summary)
    )
    field = "model.loss_weights"
    reused = reuse_stored(
        stored, experiment, data.class_names, (field,),
        ("epochs", "learning_rate", "augment", "ema_momentum"),
    )
    if reused is not None:
        experiment = reused
    else:
        if not has_field(experiment, field):
            weights = None  # A network that weighs its losses itself.
            reason = f"{type(experiment.model).__name__} weighs its losses itself"
        elif field in keep or len(tasks) == 1:
            weights = experiment.model.loss_weights
            reason = GIVEN if field in keep else "one head: nothing to balance"
        else:
            weights, reason = balanced_loss_weights(measure_initial_losses(data))
        if weights is not None:
            experiment = _replace(experiment, field, weights)
        choice = {field: {"value": weights, "reason": reason}}
        experiment = dataclasses.replace(experiment, recipe=experiment.recipe | choice)
    logging.info("Training split surveyed: %s", experiment.recipe["survey"])
    for name, choice in experiment.recipe.items():
        if name != "survey":
            logging.info("Recipe: %s = %s (%s)", name, choice["value"], choice["reason"])
    # From the planned steps: chosen again when a time budget has measured the epochs.
    return average_for_steps(dataclasses.replace(data, experiment=experiment), keep)


def _stored_recipe(stored) -> dict:
    recipe = stored.get("recipe") if isinstance(stored, dict) else None
    return recipe if isinstance(recipe, dict) else {}


def rescale_for_epochs(data: TrainingData, passes: float) -> TrainingData | None:
    """The recipe again at a smaller input (`recipes.scale_for_epochs`), or None.

    None when the input size was not the recipe's (a flag, or no recipe), was already
    made smaller, or `passes` over the training split (what the budget buys at it) are
    enough.
    """
    experiment = data.experiment
    if not recipe_chose(experiment, "model.input_shape") or "input_scale" in experiment.recipe:
        return None
    survey = survey_split(data.builder, experiment.train_split_slice)
    scale = scale_for_epochs(survey, experiment.model.input_shape, passes)
    if scale is None:
        return None
    logging.info("Recipe: a smaller input for more epochs: %s", scale[1])
    return apply_recipe(data, given_fields(experiment), scale=scale)


def augment_for_epochs(data: TrainingData) -> TrainingData:
    """`data` with `augment` chosen again for the passes over the training split the
    budget measured (`recipes.augmentation_for_epochs`), where the recipe chose it."""
    experiment = data.experiment
    if not recipe_chose(experiment, "augment"):
        return data
    augment, reason = augmentation_for_epochs(
        round(experiment.epochs * experiment.passes_per_epoch, 1)
    )
    logging.info("Recipe: augment = %s (%s)", augment, reason)
    experiment = dataclasses.replace(
        experiment,
        augment=augment,
        recipe=experiment.recipe | {"augment": {"value": augment, "reason": reason}},
    )
    return dataclasses.replace(data, experiment=experiment)


def range_test_learning_rate(data: TrainingData, jit_compile, timing, budget: float):
    """`data` with the learning rate of a range test, when the budget has room for it.

    Runs when `experiment.lr_range_test` is set and the recipe chose the learning rate
    (not a flag): `find_learning_rate` on the `starting_model` for up to
    `RANGE_TEST_STEPS[1]` steps, fewer when that would take more than `RANGE_TEST_SHARE`
    of `budget` (none below `RANGE_TEST_STEPS[0]`), at the step time `timing` measured.
    The peak is `lr_finder.peak_learning_rate`, within `RANGE_TEST_TRUST` of the rule's;
    the rule stays when the curve is unusable. The choice records the curve
    (`range_test`), drawn by `write_range_test_plot`.
    """
    experiment = data.experiment
    if not experiment.lr_range_test or not recipe_chose(experiment, "learning_rate"):
        return data
    rule = experiment.recipe["learning_rate"]
    room = RANGE_TEST_SHARE * budget - timing.setup_seconds - timing.compile_seconds
    steps = min(RANGE_TEST_STEPS[1], int(room / max(timing.step_seconds, 1e-6)))
    if steps < RANGE_TEST_STEPS[0]:
        reason = (
            f"{rule['reason']}; no range test: {RANGE_TEST_STEPS[0]} steps of "
            f"{timing.step_seconds:.2f} s and its compilation take more than "
            f"{RANGE_TEST_SHARE:.0%} of the budget"
        )
        return _with_learning_rate(data, rule["value"], reason)
    started = time.monotonic()
    model = starting_model(experiment)
    optimizer = (
        keras.optimizers.SGD if experiment.optimizer == "sgd" else keras.optimizers.Adam
    )(RANGE_TEST_RATES[0])
    model.compile(optimizer=optimizer, jit_compile=jit_compile)
    dataset = make_dataset(
        data.builder, experiment.train_split_slice, experiment.model,
        training_input_options(experiment),
    )
    try:
        result = find_learning_rate(
            model, dataset, *RANGE_TEST_RATES, num_steps=steps, smoothing=1 - 10 / steps
        )
        peak, problem = peak_learning_rate(result)
    except ValueError as error:  # Diverged before the curve had enough points.
        result, peak, problem = None, None, str(error)
    seconds = time.monotonic() - started
    if peak is None:
        value = rule["value"]
        reason = f"{rule['reason']}: the range test's curve is unusable ({problem})"
    else:
        low, high = rule["value"] / RANGE_TEST_TRUST, rule["value"] * RANGE_TEST_TRUST
        value = float(f"{min(max(peak, low), high):.2g}")
        reason = (
            f"range test of {len(result.losses)} steps from {RANGE_TEST_RATES[0]:g} to "
            f"{RANGE_TEST_RATES[1]:g} in {seconds:.0f} s: a tenth of the rate at the "
            f"lowest smoothed loss, {peak:.2g}"
            + (f", bounded to {RANGE_TEST_TRUST:g}x the rule's {rule['value']:g}"
               if not low <= peak <= high else "")
        )
    extra = {"range_test_seconds": round(seconds, 1)}
    if result is not None:
        finite = np.isfinite(result.losses)  # config.json holds no NaN.
        extra["range_test"] = {
            "learning_rates": [float(f"{lr:.4g}") for lr in result.learning_rates[finite]],
            "losses": [float(f"{loss:.4g}") for loss in result.losses[finite]],
        }
    logging.info("Recipe: learning_rate = %s (%s)", value, reason)
    return _with_learning_rate(data, value, reason, extra)


def _with_learning_rate(data, value, reason, extra=None):
    experiment = data.experiment
    choice = {"value": value, "reason": reason, **(extra or {})}
    experiment = dataclasses.replace(
        experiment, learning_rate=value, recipe=experiment.recipe | {"learning_rate": choice}
    )
    return dataclasses.replace(data, experiment=experiment)


def write_range_test_plot(experiment, model_dir: str):
    """Draws the recorded range test, if any, as `RANGE_TEST_PLOT` in `model_dir`."""
    choice = (experiment.recipe or {}).get("learning_rate") or {}
    curve = choice.get("range_test")
    if not curve:
        return
    result = LRFinderResult(
        np.array(curve["learning_rates"]), np.array(curve["losses"]), choice["value"]
    )
    plot_lr_finder(result, os.path.join(model_dir, RANGE_TEST_PLOT))
