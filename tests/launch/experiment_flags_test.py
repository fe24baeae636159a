import pytest
from absl import flags
from absl.testing import flagsaver

from launch import experiment_flags


def parse(*args):
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["train", *args])


@flagsaver.flagsaver
def test_dataset_without_preset_is_the_automatic_recipe_and_its_30_minutes():
    parse("--dataset=neu_det", "--batch_size=4", "--input_size=96,96")
    assert experiment_flags.preset_name() == "auto"
    experiment = experiment_flags.experiment_from_flags()
    assert experiment.time_budget == 1800
    # What the recipe must leave alone: the flags given, whatever their values.
    assert experiment_flags.given_fields() == {"dataset", "batch_size", "model.input_shape"}


@flagsaver.flagsaver
def test_without_dataset_the_default_stays_quickstart():
    parse()
    assert experiment_flags.preset_name() == "quickstart"
    assert experiment_flags.experiment_from_flags().time_budget is None
    parse("--dataset=neu_det", "--preset=quickstart")
    assert experiment_flags.preset_name() == "quickstart"


@flagsaver.flagsaver
def test_epochs_replace_the_budget_and_a_budget_the_epochs():
    parse("--dataset=neu_det", "--epochs=3")
    experiment = experiment_flags.experiment_from_flags()
    assert (experiment.epochs, experiment.time_budget) == (3, None)
    parse("--preset=quickstart", "--time_budget=1h30m", "--early_stopping_patience=4")
    experiment = experiment_flags.experiment_from_flags()
    assert (experiment.time_budget, experiment.early_stopping_patience) == (5400, 4)


@flagsaver.flagsaver
@pytest.mark.parametrize(
    "args, message",
    [
        (["--epochs=3", "--time_budget=30m"], "--epochs or --time_budget"),
        (["--time_budget=30"], "--time_budget='30'"),
    ],
)
def test_bad_budget_flags_name_the_flag(args, message):
    parse(*args)
    with pytest.raises(ValueError, match=message):
        experiment_flags.experiment_from_flags()
