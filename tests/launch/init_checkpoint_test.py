"""Fine-tuning a trained run (`--init_checkpoint`): where it starts, and the product change."""

import dataclasses
import json
import os

import keras
import pytest
from absl import flags
from absl.testing import flagsaver

from defect_aux_net import build_defect_aux_net
from defect_aux_net.data.pipeline import InputOptions, make_dataset
from defect_aux_net.training import run_files
from defect_aux_net.training.init_checkpoint import initialize_from_checkpoint
from defect_aux_net.training.training_run import prepare_training_data
from tests.data import folder_fixture
from launch import experiment_flags
from tests.launch.conftest import TINY_TRAINING, check_success, run_launch


@flagsaver.flagsaver
def test_flags_set_the_init_checkpoint_and_the_input_normalization():
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["train", "--preset=quickstart", "--init_checkpoint=runs/a"])
    experiment = experiment_flags.experiment_from_flags()
    assert experiment.init_checkpoint == "runs/a"
    assert experiment.model.resolved_input_normalization == "min_max"
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["train", "--preset=quickstart", "--input_normalization=caffe"])
    experiment = experiment_flags.experiment_from_flags()
    assert (experiment.init_checkpoint, experiment.model.input_normalization) == (None, "caffe")


def validation_loss(model, dataset) -> float:
    model.compile(optimizer="adam")
    return model.evaluate(dataset, verbose=0, return_dict=True)["loss"]


def test_a_fine_tuned_model_starts_at_the_old_runs_validation_loss(
    trained_run, synthetic_data_dir
):
    model_dir, _ = trained_run
    experiment, _ = run_files.read_config(model_dir)
    experiment = dataclasses.replace(experiment, init_checkpoint=model_dir)
    data = prepare_training_data(experiment, synthetic_data_dir)
    validation = make_dataset(
        data.builder,
        experiment.validation_split,
        experiment.model,
        InputOptions(experiment.batch_size, training=False),
    )
    keras.utils.set_random_seed(experiment.seed)
    model = build_defect_aux_net(data.experiment.model)
    from_scratch = validation_loss(model, validation)

    initialize_from_checkpoint(model, model_dir)
    fine_tune_start = validation_loss(model, validation)

    old = run_files.best_validation_loss(run_files.model_dir_paths(model_dir)["history"])
    # The same weights on the same images: the old run's best validation loss, up to the
    # order of float32 sums over a few thousand pixels and anchors.
    assert fine_tune_start == pytest.approx(old, rel=1e-4)
    # Two epochs took the loss down by more than a fifth (measured: 5.13 -> 3.95).
    assert from_scratch > 1.2 * old, (from_scratch, old)


@pytest.mark.extended
@pytest.mark.slow(seconds=60)
def test_fine_tuning_on_the_next_product_reinitialises_its_head_and_says_so(
    trained_run, train_test_data_dir, tmp_path
):
    model_dir, _ = trained_run
    fine_tuned = str(tmp_path / "next_product")
    result = run_launch(
        "train",
        *TINY_TRAINING,
        f"--dataset={folder_fixture.NAME}",
        "--tasks=classification",
        "--validation_split=holdout(train,10%,seed=0)",
        "--train_fraction=1",
        "--test_split=",
        "--epochs=1",
        f"--init_checkpoint={model_dir}",
        f"--data_dir={train_test_data_dir}",
        f"--model_dir={fine_tuned}",
        "--noexport",
    )
    check_success(result)
    log = result.stderr
    assert f"Initialised from {model_dir}: copied" in log
    # 4 defect classes before, 2 now: the classification head starts afresh.
    assert (
        "classification_head: 0 of 1 layers copied; re-initialised: classification_head/logits "
        "(kernel [512, 4] in the checkpoint, [512, 2] here)" in log
    )
    # ResNet-18 with attention: conv1 and its norm (2), 8 blocks of 2 convs and norms (32),
    # 3 shortcut convs and norms (6), 8 squeeze-excitations (16), 8 spatial attentions (8).
    assert "backbone: 64 of 64 layers copied" in log
    # The heads of the tasks it leaves out.
    assert "unused: feature_pyramid (10), class_head (5), box_head (5)" in log
    with open(os.path.join(fine_tuned, "config.json")) as file:
        assert json.load(file)["init_checkpoint"] == model_dir


@pytest.mark.extended
@pytest.mark.slow(seconds=40)
def test_lr_find_sweeps_from_the_init_checkpoint_and_suggests_a_rate(
    trained_run, synthetic_data_dir, tmp_path
):
    # One sweep for both: the curve, its plot and the suggestion do not depend on where
    # the weights came from. Classification without attention: the sweep trains the
    # model as `fit` does, whatever its heads, and the head is copied all the same.
    model_dir, _ = trained_run
    result = run_launch(
        "lr_find", "--preset=quickstart", "--dataset=synthetic_defects/small",
        "--input_size=64,64", "--batch_size=8", "--num_steps=10", "--min_lr=1e-5",
        "--max_lr=1e-1", "--tasks=classification", "--attention=none",
        f"--init_checkpoint={model_dir}", f"--data_dir={synthetic_data_dir}",
        f"--output_dir={tmp_path}",
    )
    check_success(result)
    assert f"Initialised from {model_dir}: copied" in result.stderr
    assert "classification_head: 1 of 1 layers copied" in result.stderr
    curve = json.load(open(tmp_path / "lr_find.json"))
    assert 1e-5 <= curve["suggested_lr"] <= 1e-1
    assert len(curve["learning_rates"]) == len(curve["losses"]) <= 10
    assert os.path.getsize(tmp_path / "lr_find.png") > 0
    assert "Suggested peak learning rate" in result.stdout
