"""launch.cross_validate: one launch.train run per fold of KolektorSDD's dummy data, the
papers' summary, a resumed run that trains nothing, and flags it refuses."""

import json
import os

import pytest
import tensorflow_datasets as tfds
from etils import epath

from defect_aux_net.data import datasets
from tests.launch.conftest import check_success, files_in, run_launch

_DUMMY_DATA = (
    epath.Path(__file__).parents[2] / "tfds_builders" / "kolektor_sdd" / "dummy_data" / "original"
)
# The dummy kos01..kos05 cut 2 / 2 / 1 folders: the parts each fold tests, one crack each.
FOLD_IMAGES = {"fold1": 3, "fold2": 3, "fold3": 2}
# segdec_small at 128x128 (its least): one epoch of 5 or 6 images per fold.
TRAINING = (
    "--preset=segdec_small",
    "--dataset=kolektor_sdd",
    "--input_size=128,128",
    "--batch_size=1",
    "--epochs=1",
    "--noexport",
    "--jit_compile=false",
)


@pytest.fixture(scope="module")
def fold_data_dir(tmp_path_factory):
    """A TFDS data_dir holding kolektor_sdd/fold1..3 built from the dummy original layout."""
    data_dir = tmp_path_factory.mktemp("kolektor_folds")
    # The registered class, imported here and not at collection: pytest imports the
    # builder's own tests as `kolektor_sdd.*`, and a second import would register it twice.
    datasets._import_our_builder("kolektor_sdd")
    builder_class = tfds.builder_cls("kolektor_sdd")
    for fold in (1, 2, 3):
        builder = builder_class(config=f"fold{fold}", data_dir=data_dir)
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=_DUMMY_DATA)
        )
    return str(data_dir)


def _cross_validate(*args):
    return run_launch("cross_validate", *args, fresh_process=False)


@pytest.mark.extended
@pytest.mark.slow(seconds=60)
def test_folds_are_trained_summarised_and_not_trained_again(fold_data_dir, tmp_path):
    model_dir = tmp_path / "cv"
    flags = (*TRAINING, "--folds=3", f"--data_dir={fold_data_dir}", f"--model_dir={model_dir}")
    check_success(_cross_validate(*flags))

    report = json.loads((model_dir / "cross_validation.json").read_text())
    folds = []
    for fold, images in FOLD_IMAGES.items():
        run = model_dir / f"fold_{fold[-1]}"
        config = json.loads((run / "config.json").read_text())
        assert (config["dataset"], config["validation_split"]) == (f"kolektor_sdd/{fold}", "test")
        image_ap = json.loads((run / "metrics_test.json").read_text())["image_ap"]
        folds.append(
            {"name": fold, "ap": image_ap["ap"], "fp": image_ap["fp"], "fn": image_ap["fn"],
             "images": images, "defective": 1}
        )
    assert report["folds"] == folds
    aggregate = report["aggregate"]
    assert aggregate["ap"] == pytest.approx(sum(fold["ap"] for fold in folds) / 3)
    assert (aggregate["fp"], aggregate["fn"]) == (
        sum(fold["fp"] for fold in folds), sum(fold["fn"] for fold in folds)
    )
    assert (aggregate["folds"], aggregate["images"], aggregate["defective"]) == (3, 8, 3)
    assert report["commands"][1].startswith(
        "python -m launch.train --preset=segdec_small --dataset=kolektor_sdd/fold2 "
        "--validation_split=test --batch_size=1 "
    )
    assert report["commands"][1].endswith(f"--model_dir={model_dir / 'fold_2'}")
    markdown = (model_dir / "cross_validation.md").read_text()
    assert "| all (AP mean, counts summed) |" in markdown
    config = json.loads((model_dir / "cross_validation_config.json").read_text())
    assert config["fold_datasets"] == [f"kolektor_sdd/{fold}" for fold in FOLD_IMAGES]
    assert config["experiment"]["model_name"] == "segdec"

    folds_before = {
        name: files_in(model_dir / name) for name in ("fold_1", "fold_2", "fold_3")
    }
    again = _cross_validate(*flags)
    check_success(again)
    assert again.stdout.count("holds this run, complete: nothing to train") == 3
    assert {name: files_in(model_dir / name) for name in folds_before} == folds_before
    assert json.loads((model_dir / "cross_validation.json").read_text()) == report


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--dataset=kolektor_sdd/fold1", "--dataset=kolektor_sdd/fold1: give the dataset "
         "without a config or version; its configs fold1 .. fold3 are the folds."),
        ("--folds=4", "--dataset=kolektor_sdd --folds=4: "),
        ("--test_split=", "--test_split='' skips the evaluation each fold is scored by."),
    ],
    ids=["config", "fold4", "no_test"],
)
def test_flags_that_cannot_make_folds_stop_before_training(
    flag, message, fold_data_dir, tmp_path
):
    model_dir = tmp_path / "cv"
    result = _cross_validate(
        *TRAINING, flag, f"--data_dir={fold_data_dir}", f"--model_dir={model_dir}"
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert not os.path.exists(model_dir / "fold_1")


def test_help_lists_the_folds_and_launch_train_flags():
    result = run_launch("cross_validate", "--helpshort", timeout=120)
    # absl's help flags exit with status 1, the module docstring as the usage.
    assert "Trains one launch.train run per fold" in result.stdout
    for flag in ("--folds", "--model_dir", "--preset", "--dataset", "--epochs"):
        assert f"  {flag}" in result.stdout, flag
