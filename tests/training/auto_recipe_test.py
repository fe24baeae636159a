import numpy as np
import pytest

from defect_aux_net.experiments import ExperimentConfig
from defect_aux_net.training import run_files
from defect_aux_net.training.auto_recipe import (
    apply_recipe,
    balanced_loss_weights,
    measure_initial_losses,
    reuse_stored,
)
from defect_aux_net.training.training_run import prepare_training_data
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


def test_the_recipe_of_the_synthetic_set_starts_every_head_equal(tmp_path_factory):
    builder = synthetic_small_builder(tmp_path_factory)
    experiment = ExperimentConfig.from_preset(
        "auto", dataset=NAME, train_fraction=0.125, validation_split="validation[:32]"
    )
    data = apply_recipe(prepare_training_data(experiment, builder.data_dir_root))
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
