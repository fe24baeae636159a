"""launch.train on a dataset without a validation split, and --dataset/--*_split naming none."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds

from defect_aux_net.data import datasets, splits
from defect_aux_net.data.preprocessing import prepare_image
from defect_aux_net.evaluation.precision_recall import best_f1_thresholds
from tests.data import folder_fixture
from tests.launch.conftest import check_success, run_launch

HOLDOUT = "holdout(train,10%,seed=0)"


def last_line(output: str) -> str:
    return [line for line in output.splitlines() if line.strip()][-1]


@pytest.mark.parametrize("flag", ["--validation_split=val", "--test_split=tset"])
def test_a_split_the_dataset_lacks_stops_before_anything_is_written(
    flag, train_test_data_dir, tmp_path
):
    model_dir = tmp_path / "run"
    result = run_launch(
        "train", f"--dataset={folder_fixture.NAME}", f"--data_dir={train_test_data_dir}",
        "--tasks=classification", flag, f"--model_dir={model_dir}", timeout=120,
    )
    assert result.returncode != 0
    name, split = flag.split("=")
    assert last_line(result.stderr) == (
        f"{name}='{split}': {folder_fixture.NAME} has no split {split}; its splits are "
        "test, train."
    )
    assert not (model_dir / "config.json").exists()


def test_unknown_dataset_is_the_last_thing_printed(tmp_path):
    # In a process of its own: after absl's usage text, as a user sees it.
    result = run_launch(
        "train", "--dataset=neu_dett", f"--model_dir={tmp_path}", timeout=120,
        fresh_process=True,
    )
    assert result.returncode != 0
    assert last_line(result.stderr).startswith("--dataset='neu_dett': no dataset 'neu_dett'")
    assert last_line(result.stderr).endswith("Did you mean 'neu_det'?")
    assert "abstract_reasoning" not in result.stderr  # TFDS's catalogue.
    # The library's ExperimentConfig.dataset, told as the flag the user gave.
    assert "ExperimentConfig" not in result.stderr


@pytest.mark.extended
@pytest.mark.slow(seconds=60)
def test_train_and_test_only_trains_with_defaults_validating_on_a_holdout(
    train_test_data_dir, tmp_path
):
    model_dir = tmp_path / "run"
    result = run_launch(
        # The preset's splits (validation, test); the small model, classification only.
        "train", "--preset=quickstart", f"--dataset={folder_fixture.NAME}",
        f"--data_dir={train_test_data_dir}", "--input_size=32,32", "--batch_size=8",
        "--epochs=1", "--tasks=classification", "--attention=none", "--export=false",
        "--jit_compile=false", f"--model_dir={model_dir}",
    )
    check_success(result)
    config = json.loads((model_dir / "config.json").read_text())
    assert (config["validation_split"], config["test_split"]) == (HOLDOUT, "test")
    assert (
        f"has no validation split (splits: test, train): validation_split={HOLDOUT} holds "
        "out 8 of the 80 images of train"
    ) in result.stderr
    assert f"training reads train-{HOLDOUT}" in result.stderr
    assert (model_dir / "metrics_test.json").exists()

    # The holdout again, from config.json alone, in this process: stratified.
    builder = datasets.load_builder(config["dataset"], train_test_data_dir)
    held = list(tfds.as_numpy(splits.read_split(builder, config["validation_split"])))
    train = list(tfds.as_numpy(builder.as_dataset(split="train")))
    held_ids = {example["image_id"] for example in held}
    assert len(held) == 8 and held_ids < {example["image_id"] for example in train}
    for classes in ((0, 0), (1, 0), (0, 1), (1, 1)):
        in_train = sum(tuple(example["labels"]) == classes for example in train)
        in_holdout = sum(tuple(example["labels"]) == classes for example in held)
        assert abs(in_holdout - 0.1 * in_train) < 1, classes

    # The thresholds were chosen on those 8 images: best F1 of the best model on them.
    model = keras.models.load_model(model_dir / "best.keras")
    images = np.stack([prepare_image(example["image"], (32, 32), 3) for example in held])
    probabilities = model(images, training=False)["classification"].numpy()
    labels = np.stack([example["labels"] for example in held]).astype(np.float32)
    chosen = json.loads((model_dir / "thresholds.json").read_text())
    np.testing.assert_allclose(
        [chosen[name] for name in folder_fixture.CLASS_NAMES],
        best_f1_thresholds(labels, probabilities),
        rtol=1e-6,
    )
