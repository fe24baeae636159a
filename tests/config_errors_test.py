import pickle

import pytest

from defect_aux_net.config_errors import ConfigError


def test_a_config_error_is_a_value_error_that_carries_its_field():
    error = ConfigError("ExperimentConfig.batch_size", "ExperimentConfig.batch_size=8 is too big.")
    assert isinstance(error, ValueError)
    assert error.field == "ExperimentConfig.batch_size"
    assert str(error) == "ExperimentConfig.batch_size=8 is too big."
    with pytest.raises(ValueError, match="batch_size=8"):  # Callers catching ValueError.
        raise error


def test_a_message_without_its_field_is_prefixed_with_it():
    error = ConfigError("model_dir", "runs/a holds another run.")
    assert str(error) == "model_dir: runs/a holds another run."


def test_a_config_error_survives_pickling_across_processes():
    error = pickle.loads(pickle.dumps(ConfigError("tpu", "tpu='x': no TPU reachable.")))
    assert (type(error), error.field, str(error)) == (
        ConfigError, "tpu", "tpu='x': no TPU reachable."
    )
