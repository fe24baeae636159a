"""launch.train --dataset without --preset: the recipe from the data, within a time budget."""

import json

import pytest

from tests.data import folder_fixture
from tests.launch.conftest import check_success, run_launch


@pytest.mark.slow(seconds=45)
def test_the_default_recipe_and_budget_are_recorded_and_a_rerun_keeps_them(
    train_test_data_dir, tmp_path
):
    model_dir = tmp_path / "run"
    # A budget the set-up alone uses up: the fewest steps, saying so (a longer one
    # trains until it is spent; tests/training/time_budget_test.py checks the epochs
    # a budget buys). What is recorded, and kept by a rerun, is the same.
    command = (
        "train", f"--dataset={folder_fixture.NAME}", f"--data_dir={train_test_data_dir}",
        "--time_budget=5s", "--attention=none", "--export=false", "--test_split=",
        "--jit_compile=false", f"--model_dir={model_dir}",
    )
    result = run_launch(*command)
    check_success(result)
    config = json.loads((model_dir / "config.json").read_text())
    recipe = config["recipe"]
    # The folder holds 32x32 images with labels only (80 train, 8 of them held out).
    assert recipe["survey"]["images"] == 72
    assert config["model"]["tasks"] == recipe["model.tasks"]["value"] == ["classification"]
    assert config["model"]["input_shape"] == [32, 32, 3]
    assert config["model"]["attention"] == "none"  # The flag given wins.
    assert config["batch_size"] == recipe["batch_size"]["value"] == 8
    assert config["time_budget"] == 5
    epochs = recipe["epochs"]
    assert config["epochs"] == epochs["value"] == 1
    assert epochs["step_seconds"] > 0 and "per pass (9 steps of" in epochs["reason"]
    # The batch-norm pass and a prediction pass were timed in the warm-up.
    assert epochs["batch_norm_seconds"] > 0
    assert epochs["image_seconds"] > 0 and epochs["trace_seconds"] >= 0
    assert "Time budget: prediction pass timed" in result.stderr
    # --export=false: no export timed, none counted.
    assert epochs["export_seconds"] == 0 and "export timed" not in result.stderr
    # One-cycle's 4 steps, fewer than the pass's 72 / 8 = 9.
    assert "the budget is too short: 4 steps, the fewest possible" in epochs["reason"]
    passes = recipe["passes_per_epoch"]
    assert config["passes_per_epoch"] == passes["value"] == pytest.approx(4 / 9)
    assert "Recipe: batch_size = 8" in result.stderr
    # Less than a pass: no augmentation (the budget decided it).
    assert config["augment"] is recipe["augment"]["value"] is False
    assert "0.4 pass(es)" in recipe["augment"]["reason"]
    assert "Time budget: warm-up of 6 steps" in result.stderr
    # The best model's load was timed in the warm-up too.
    assert epochs["load_seconds"] > 0
    # The averaged weights span a tenth of the 4 planned steps, at least 10: m = 1 - 1/10.
    assert config["ema_momentum"] == recipe["ema_momentum"]["value"] == 0.9
    assert "the run's 4 planned steps" in recipe["ema_momentum"]["reason"]
    # The learning rate: the rule's, saying so; the range test is asked for with
    # --lr_range_test (tests/training/auto_recipe_test.py runs it).
    rate = recipe["learning_rate"]
    # 1e-3 * sqrt(8 / 16) to two digits.
    assert config["learning_rate"] == rate["value"] == 7.1e-4
    assert "sqrt" in rate["reason"] and "range_test" not in rate
    assert config["lr_range_test"] is False
    assert not (model_dir / "lr_range_test.png").exists()
    # Batch-norm statistics recomputed on the 72 training images, in whole batches of 8.
    assert config["batch_norm_images"] == recipe["batch_norm_images"]["value"] == 72
    assert "statistics of the best model recomputed on 72 un-augmented images" in result.stderr

    # The same command again: the stored epochs, no new measurement, nothing to train.
    again = run_launch(*command)
    check_success(again)
    assert "holds this run, complete" in again.stdout
    assert "warm-up" not in again.stderr
    assert json.loads((model_dir / "config.json").read_text()) == config
