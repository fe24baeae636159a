import pytest

from defect_aux_net.data.datasets import SplitSummary
from defect_aux_net.experiments import ExperimentConfig
from defect_aux_net.training.training_run import steps_per_epoch


def test_an_epoch_is_one_pass_over_the_split():
    experiment = ExperimentConfig.from_preset("quickstart", batch_size=16)
    assert steps_per_epoch(experiment, SplitSummary(100, 50, 50, 30)) == 6


def test_negative_sampling_epochs_pair_every_defective_image():
    experiment = ExperimentConfig.from_preset("quickstart", batch_size=4, negative_sampling=True)
    assert steps_per_epoch(experiment, SplitSummary(100, 50, 50, 10)) == 5


def test_a_batch_larger_than_the_split_names_the_flag():
    experiment = ExperimentConfig.from_preset("quickstart", batch_size=128)
    with pytest.raises(ValueError, match="--batch_size=128"):
        steps_per_epoch(experiment, SplitSummary(100, 0, 0, 0))


def test_negative_sampling_without_defects_names_the_flag():
    experiment = ExperimentConfig.from_preset("quickstart", negative_sampling=True)
    with pytest.raises(ValueError, match="--negative_sampling"):
        steps_per_epoch(experiment, SplitSummary(100, 0, 0, 0))
