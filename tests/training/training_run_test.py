import dataclasses

import keras
import pytest
import tensorflow as tf

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.data.datasets import SplitSummary
from defect_aux_net.experiments import ExperimentConfig
from defect_aux_net.training.training_run import (
    TrainingData,
    fit,
    one_cycle_schedule,
    prepare_training_data,
    steps_per_pass,
)
from tests.data import folder_fixture


def test_an_epoch_is_one_pass_over_the_split():
    experiment = ExperimentConfig.from_preset("quickstart", batch_size=16)
    assert steps_per_pass(experiment, SplitSummary(100, 50, 50, 30)) == 6


def test_negative_sampling_epochs_pair_every_defective_image():
    experiment = ExperimentConfig.from_preset("quickstart", batch_size=4, negative_sampling=True)
    assert steps_per_pass(experiment, SplitSummary(100, 50, 50, 10)) == 5


def names_only(error, field: str):
    """The error names `field` as the Python API spells it, and no flag."""
    assert isinstance(error, ConfigError) and error.field == field
    assert field in str(error) and "--" not in str(error)


def test_a_batch_larger_than_the_split_names_the_field():
    experiment = ExperimentConfig.from_preset("quickstart", batch_size=128)
    with pytest.raises(ValueError, match=r"^ExperimentConfig.batch_size=128 .* 100 ") as error:
        steps_per_pass(experiment, SplitSummary(100, 0, 0, 0))
    names_only(error.value, "ExperimentConfig.batch_size")


def test_negative_sampling_without_defects_names_the_field():
    experiment = ExperimentConfig.from_preset("quickstart", negative_sampling=True)
    with pytest.raises(ValueError, match=r"^ExperimentConfig.negative_sampling=True") as error:
        steps_per_pass(experiment, SplitSummary(100, 0, 0, 0))
    names_only(error.value, "ExperimentConfig.negative_sampling")


@pytest.mark.parametrize("passes, steps", [(1.0, 7), (2.5, 18), (0.3, 2), (0.01, 1)])
def test_an_epoch_is_its_passes_times_a_pass_rounded(passes, steps):
    # 7 steps a pass: 17.5 rounds to 18 (half to even), 2.1 to 2; at least one step.
    experiment = ExperimentConfig.from_preset("quickstart", passes_per_epoch=passes)
    assert TrainingData(experiment, None, (), pass_steps=7).train_steps == steps


@pytest.mark.parametrize("passes", [0, -1.0, True, "2"])
def test_passes_per_epoch_must_be_a_positive_number(passes):
    with pytest.raises(ValueError, match=r"^ExperimentConfig.passes_per_epoch must be") as error:
        ExperimentConfig.from_preset("quickstart", passes_per_epoch=passes)
    names_only(error.value, "ExperimentConfig.passes_per_epoch")


def test_a_run_too_short_for_one_cycle_names_the_fields():
    experiment = ExperimentConfig.from_preset("quickstart", epochs=1, batch_size=16)
    schedule = one_cycle_schedule(TrainingData(experiment, None, (), pass_steps=4))
    assert schedule.total_steps == 4
    expected = r"^ExperimentConfig.epochs=1 x 2 steps .*ExperimentConfig.batch_size=16.* = 2 steps"
    with pytest.raises(ValueError, match=expected) as error:
        one_cycle_schedule(TrainingData(experiment, None, (), pass_steps=2))
    names_only(error.value, "ExperimentConfig.epochs")


def test_a_dataset_without_validation_trains_with_the_defaults_on_a_holdout(tmp_path_factory):
    data_dir = folder_fixture.build_train_test_folder(tmp_path_factory.mktemp("train_test"))
    experiment = ExperimentConfig.from_preset("quickstart", dataset=folder_fixture.NAME, batch_size=4)
    experiment = dataclasses.replace(
        experiment, model=dataclasses.replace(experiment.model, tasks=("classification",))
    )
    assert (experiment.validation_split, experiment.test_split) == ("validation", "test")

    data = prepare_training_data(experiment, data_dir)

    assert data.experiment.validation_split == "holdout(train,10%,seed=0)"
    assert data.experiment.test_split == "test"
    assert data.experiment.train_split_slice == "train-holdout(train,10%,seed=0)"
    assert data.train_steps == (80 - 8) // 4  # Training leaves the 8 held-out images out.
    for field, split in (("validation_split", "val"), ("test_split", "tset")):
        expected = f"^ExperimentConfig.{field}='{split}'.*its splits are test, train"
        with pytest.raises(ValueError, match=expected) as error:
            prepare_training_data(dataclasses.replace(experiment, **{field: split}), data_dir)
        names_only(error.value, f"ExperimentConfig.{field}")


def test_fit_does_not_warn_of_a_validation_split_of_unknown_size_and_reads_all_of_it(recwarn):
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    train = tf.data.Dataset.from_tensors(([1.0], [2.0])).repeat().batch(2)
    examples = tf.data.Dataset.range(5).map(lambda x: ([tf.cast(x, tf.float32)], [0.0]))
    # Filtered, as a holdout of train: tf.data cannot count it.
    unknown = examples.filter(lambda x, y: True).batch(2)
    assert unknown.cardinality() == tf.data.UNKNOWN_CARDINALITY
    with pytest.warns(UserWarning, match="ran out of data"):  # Keras alone.
        model.fit(train, epochs=1, steps_per_epoch=3, validation_data=unknown, verbose=0)
    recwarn.clear()

    history = fit(
        model, train, epochs=2, steps_per_epoch=3, validation_data=unknown, verbose=0
    )

    assert not [w for w in recwarn if "ran out of data" in str(w.message)]
    # The last epoch validated on all 5 examples (3 batches), as on the counted split.
    assert history.history["val_loss"][-1] == pytest.approx(
        model.evaluate(examples.batch(2), verbose=0), rel=1e-6
    )
