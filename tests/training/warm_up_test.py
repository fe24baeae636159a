import dataclasses
import tempfile

import pytest
import tensorflow as tf

from defect_aux_net.experiments import ExperimentConfig
from defect_aux_net.training.training_run import prepare_training_data
from defect_aux_net.training.warm_up import measure_step_time
from tests.data.synthetic_fixture import NAME, synthetic_small_builder


@pytest.fixture(scope="module")
def classifier_data(tmp_path_factory):
    builder = synthetic_small_builder(tmp_path_factory)
    experiment = ExperimentConfig.from_preset(
        "quickstart", dataset=NAME, train_fraction=0.125, validation_split="validation[:16]",
        batch_size=8,
    )
    model = dataclasses.replace(experiment.model, tasks=("classification",), attention="none")
    experiment = dataclasses.replace(experiment, model=model, batch_norm_images=0)
    return prepare_training_data(experiment, builder.data_dir_root)


@pytest.mark.slow(seconds=20)
def test_the_load_is_timed_and_the_export_only_for_a_run_that_exports(
    classifier_data, monkeypatch, tmp_path
):
    # The export goes to a temporary folder, removed afterwards. (AutoGraph also writes
    # its generated modules to the temporary directory; those are not ours.)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    strategy = tf.distribute.get_strategy()
    exported = measure_step_time(classifier_data, strategy, False, steps=1, export=True)
    assert exported.export_seconds > 0 and exported.load_seconds > 0
    # Nor is the best model's copy left.
    assert list(tmp_path.glob("warm_up_export_*")) == list(tmp_path.glob("warm_up_load_*")) == []
    assert measure_step_time(classifier_data, strategy, False, steps=1).export_seconds == 0.0
