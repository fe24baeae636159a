"""The automatic recipe of a run: the survey's rules, then the loss weights measured on the model.

`apply_recipe` is what `launch.train --preset=auto` (and `--dataset` without `--preset`)
does after `prepare_training_data`: survey the training split, choose the recipe
(`defect_aux_net.recipes`), balance the heads' losses, and log each choice with its
reason. A rerun of the same command in the same model_dir takes the measured choices
from its config.json (`reuse_stored`), so it resumes instead of differing in the last
digit of a measurement.
"""

import dataclasses
import math

import keras
from absl import logging

from defect_aux_net.config import TASKS
from defect_aux_net.data import datasets
from defect_aux_net.data.dataset_survey import survey_split
from defect_aux_net.data.pipeline import make_dataset
from defect_aux_net.models.model_builders import build_model
from defect_aux_net.recipes import choose_recipe
from defect_aux_net.training import run_files
from defect_aux_net.training.training_run import (
    TrainingData,
    steps_per_epoch,
    training_input_options,
)

# A head's weight moves at most this far from 1: its loss at initialisation says how
# loud it starts, not how much it has to learn.
LOSS_WEIGHT_BOUNDS = (0.5, 2.0)


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


def measure_initial_losses(data: TrainingData) -> dict:
    """Each head's loss on the first training batch, with the weights `fit` starts from."""
    experiment = data.experiment
    keras.utils.set_random_seed(experiment.seed)
    model = build_model(experiment.model)
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


def apply_recipe(data: TrainingData, keep=(), stored: dict | None = None) -> TrainingData:
    """`data` with the recipe chosen from its training split; each choice logged.

    Args:
      data: from `prepare_training_data` (classes and splits resolved).
      keep: fields the user set, which the recipe keeps (dotted: `model.tasks`; the
        launch scripts' `experiment_flags.given_fields`).
      stored: the model_dir's config.json, whose measured loss weights a rerun reuses.

    Raises:
      ConfigError: naming the field, when the chosen recipe does not suit the split.
    """
    experiment = data.experiment
    survey = survey_split(data.builder, experiment.train_split_slice)
    experiment, choices = choose_recipe(survey, experiment, keep)
    tasks = experiment.model.tasks
    experiment = dataclasses.replace(experiment, recipe={"survey": survey.to_dict(), **choices})
    summary = survey.split_summary()
    datasets.check_tasks(tasks, summary, experiment.dataset, experiment.train_split)
    data = dataclasses.replace(
        data, experiment=experiment, train_steps=steps_per_epoch(experiment, summary)
    )
    field = "model.loss_weights"
    reused = reuse_stored(stored, experiment, data.class_names, (field,), ("epochs",))
    if reused is not None:
        experiment = reused
    else:
        if field in keep or len(tasks) == 1:
            weights = experiment.model.loss_weights
            reason = "given as a flag" if field in keep else "one head: nothing to balance"
        else:
            weights, reason = balanced_loss_weights(measure_initial_losses(data))
        experiment = _replace(experiment, field, weights)
        choice = {field: {"value": weights, "reason": reason}}
        experiment = dataclasses.replace(experiment, recipe=experiment.recipe | choice)
    logging.info("Training split surveyed: %s", experiment.recipe["survey"])
    for name, choice in experiment.recipe.items():
        if name != "survey":
            logging.info("Recipe: %s = %s (%s)", name, choice["value"], choice["reason"])
    return dataclasses.replace(data, experiment=experiment)
