import dataclasses
import time

import keras
import numpy as np
import pytest
from PIL import Image

from defect_aux_net.experiments import ExperimentConfig
from defect_aux_net.models.model_builders import build_model
from defect_aux_net.training import auto_recipe, run_files
from defect_aux_net.training.auto_recipe import (
    apply_recipe,
    balanced_loss_weights,
    measure_initial_losses,
    range_test_learning_rate,
    rescale_for_epochs,
    reuse_stored,
    starting_model,
    write_range_test_plot,
)
from defect_aux_net.training.time_budget import fit_epochs_to_budget
from defect_aux_net.training.training_run import TrainingData, prepare_training_data
from defect_aux_net.training.warm_up import StepTiming
from tests.data.synthetic_fixture import NAME, synthetic_small_builder


@pytest.mark.parametrize(
    "losses, expected",
    [
        # Geometric mean 1: each weight is 1 / loss; detection has no head (weight 1).
        ({"classification": 0.5, "segmentation": 2.0}, (2.0, 0.5, 1.0)),
        # Geometric mean 1 again; 10 and 0.1 are bounded to 2 and 0.5.
        ({"classification": 0.1, "segmentation": 1.0, "detection": 10.0}, (2.0, 1.0, 0.5)),
        # (0.69 x 1.0 x 2.7) ** (1/3) = 1.2306: 1.78, 1.23, 0.456 -> bounded and rounded.
        ({"classification": 0.69, "segmentation": 1.0, "detection": 2.7}, (1.8, 1.2, 0.5)),
    ],
)
def test_loss_weights_start_every_head_equal_within_bounds(losses, expected):
    weights, reason = balanced_loss_weights(losses)
    assert weights == pytest.approx(expected)
    assert "geometric mean" in reason


def test_loss_weights_refuse_a_loss_that_is_not_positive():
    with pytest.raises(ValueError, match="finite and > 0"):
        balanced_loss_weights({"classification": 0.0, "segmentation": 1.0})


def stored_run(**changes):
    changes = {"recipe": {"epochs": {"value": 12, "reason": "measured"}}} | changes
    experiment = ExperimentConfig.from_preset("auto", epochs=12, **changes)
    return run_files.config_dict(experiment, ["a", "b", "c", "d"])


def test_a_rerun_takes_the_stored_measurements():
    new = ExperimentConfig.from_preset("auto")  # Epochs not measured yet: the preset's.
    reused = reuse_stored(stored_run(), new, ["a", "b", "c", "d"], ("epochs",))
    assert reused.epochs == 12
    assert reused.recipe["epochs"] == {"value": 12, "reason": "measured"}
    assert run_files.config_dict(reused, ["a", "b", "c", "d"]) == stored_run()


def test_another_run_measures_anew():
    new = ExperimentConfig.from_preset("auto")
    classes = ["a", "b", "c", "d"]
    assert reuse_stored(stored_run(batch_size=4), new, classes, ("epochs",)) is None
    assert reuse_stored(None, new, classes, ("epochs",)) is None
    # A stored run without the measurement (trained for given epochs) is another run.
    fixed = run_files.config_dict(ExperimentConfig.from_preset("auto", epochs=12), classes)
    assert reuse_stored(fixed, new, classes, ("epochs",)) is None


def test_fields_not_measured_yet_are_left_out_of_the_comparison():
    stored = stored_run(recipe={"epochs": {"value": 12, "reason": "measured"}, "x": {"value": 1}})
    new = ExperimentConfig.from_preset("auto", recipe={"x": {"value": 1}})
    assert reuse_stored(stored, new, ["a", "b", "c", "d"], ("epochs",)) is not None
    assert reuse_stored(stored, new, ["a", "b", "c", "d"], ("model.loss_weights",)) is None


@pytest.mark.parametrize("stored", [[], {"model": []}, {"model": {}, "recipe": None}])
def test_a_broken_stored_config_is_another_run(stored):
    # model_dir_state then names the broken file.
    assert reuse_stored(stored, ExperimentConfig.from_preset("auto"), ["a"], ("epochs",)) is None


@pytest.mark.parametrize("epochs, augment", [(7, False), (20, True)])
def test_the_measured_epochs_decide_the_augmentation_the_recipe_chose(epochs, augment):
    chosen = {"augment": {"value": True, "reason": "until the time budget has measured"}}
    data = TrainingData(
        ExperimentConfig.from_preset("auto", epochs=epochs, recipe=chosen), None, ("a",), 10
    )
    experiment = auto_recipe.augment_for_epochs(data).experiment
    assert experiment.augment is augment
    assert experiment.recipe["augment"]["value"] is augment
    assert f"{epochs} pass" in experiment.recipe["augment"]["reason"]
    # A flag given stays, whatever the epochs.
    given = {"augment": {"value": True, "reason": "given as a flag"}}
    kept = dataclasses.replace(data, experiment=dataclasses.replace(data.experiment, recipe=given))
    assert auto_recipe.augment_for_epochs(kept) == kept


# Session-wide: the suite's ordering runs slow tests apart from their module.
@pytest.fixture(scope="session")
def synthetic_recipe(tmp_path_factory):
    builder = synthetic_small_builder(tmp_path_factory)
    experiment = ExperimentConfig.from_preset(
        "auto", dataset=NAME, train_fraction=0.125, validation_split="validation[:32]"
    )
    data = apply_recipe(prepare_training_data(experiment, builder.data_dir_root))
    return builder, experiment, data


def test_the_recipe_of_the_synthetic_set_starts_every_head_equal(synthetic_recipe):
    data = synthetic_recipe[2]
    experiment = data.experiment
    assert experiment.model.tasks == ("classification", "segmentation", "detection")
    # 64 training images, a batch of 64 // 8 = 8 at most: 8 steps per epoch.
    assert (experiment.batch_size, data.train_steps) == (8, 8)
    losses = measure_initial_losses(data)
    weights = dict(zip(experiment.model.tasks, experiment.model.loss_weights))
    assert experiment.recipe["model.loss_weights"]["value"] == list(weights.values())
    mean = np.exp(np.mean(np.log(list(losses.values()))))
    for task, loss in losses.items():
        # Each weighted loss starts at the geometric mean, unless its weight is bounded.
        if 0.5 < weights[task] < 2:
            assert weights[task] * loss == pytest.approx(mean, rel=0.05), task
        else:
            assert weights[task] == (2.0 if loss < mean / 2 else 0.5), task
    assert {"survey", "model.input_shape", "model.anchor_size", "batch_size"} <= set(
        experiment.recipe
    )


def test_the_recipe_measures_on_the_init_checkpoints_weights(synthetic_recipe, tmp_path):
    experiment = synthetic_recipe[2].experiment
    keras.utils.set_random_seed(experiment.seed + 1)
    pretrained = build_model(experiment.model)
    path = str(tmp_path / "pretrained.keras")
    pretrained.save(path)
    started = starting_model(dataclasses.replace(experiment, init_checkpoint=path))
    for theirs, ours in zip(pretrained.weights, started.weights, strict=True):
        np.testing.assert_array_equal(theirs.numpy(), ours.numpy(), err_msg=ours.path)
    # Without it, the run's own seed: other weights.
    assert not np.array_equal(
        starting_model(experiment).weights[0].numpy(), pretrained.weights[0].numpy()
    )


@pytest.mark.slow(seconds=30)
def test_the_learning_rate_comes_from_a_range_test_and_a_rerun_keeps_it(
    synthetic_recipe, monkeypatch, tmp_path
):
    builder, start, data = synthetic_recipe
    rule = data.experiment.learning_rate
    # 64x64 images: no input smaller than 128x128 pixels trains more epochs.
    assert rescale_for_epochs(data, 1) is None
    # Without lr_range_test, the rule's rate as it was.
    assert range_test_learning_rate(data, False, StepTiming(0.0, 0.5), 2000.0) is data
    data = dataclasses.replace(
        data, experiment=dataclasses.replace(data.experiment, lr_range_test=True)
    )
    # A step of 1 s leaves 10 s of a 100 s budget: not the 50 steps of a test.
    kept = range_test_learning_rate(data, False, StepTiming(0.0, 1.0), 100.0)
    assert kept.experiment.learning_rate == rule
    assert "no range test" in kept.experiment.recipe["learning_rate"]["reason"]
    # 20 steps at most (a tenth of 2000 s of budget at 0.5 s a step would be 400), of
    # the classifier alone: its training step compiles in a few seconds.
    monkeypatch.setattr(auto_recipe, "RANGE_TEST_STEPS", (10, 20))
    model = dataclasses.replace(
        data.experiment.model, tasks=("classification",), attention="none"
    )
    classifier = dataclasses.replace(
        data, experiment=dataclasses.replace(data.experiment, model=model)
    )
    measured = range_test_learning_rate(classifier, False, StepTiming(0.0, 0.5), 2000.0)
    choice = measured.experiment.recipe["learning_rate"]
    assert measured.experiment.learning_rate == choice["value"]
    if "unusable" in choice["reason"]:
        assert choice["value"] == rule
    else:
        # A tenth of the rate at the recorded curve's lowest loss, within 10x the rule.
        curve = choice["range_test"]
        rates = curve["learning_rates"]
        assert 10 <= len(rates) <= 20 and rates[0] == pytest.approx(1e-5)
        peak = rates[int(np.argmin(curve["losses"]))] / 10
        assert choice["value"] == pytest.approx(
            float(f"{min(max(peak, rule / 10), rule * 10):.2g}")
        )
        write_range_test_plot(measured.experiment, str(tmp_path))
        with Image.open(tmp_path / auto_recipe.RANGE_TEST_PLOT) as image:
            assert image.format == "PNG"
    # A rerun (rule learning rate again) takes the stored one, without measuring.
    stored_experiment = dataclasses.replace(
        data.experiment,
        learning_rate=0.0042, epochs=3, passes_per_epoch=1.5,
        recipe=measured.experiment.recipe | {
            "learning_rate": dict(choice, value=0.0042), "epochs": {"value": 3, "reason": "m"},
            "passes_per_epoch": {"value": 1.5, "reason": "m"},
        },
    )
    stored = run_files.config_dict(stored_experiment, data.class_names)
    start = dataclasses.replace(start, lr_range_test=True)  # The same command.
    again = apply_recipe(prepare_training_data(start, builder.data_dir_root), stored=stored)
    again = fit_epochs_to_budget(again, None, False, time.monotonic(), stored)
    stored_schedule = (again.experiment.learning_rate, again.experiment.epochs)
    assert stored_schedule + (again.experiment.passes_per_epoch,) == (0.0042, 3, 1.5)
    assert run_files.config_dict(again.experiment, data.class_names) == stored
