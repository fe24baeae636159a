import pytest

from defect_aux_net.config import DefectAuxNetConfig
from defect_aux_net.performance.training_throughput import pipeline_throughput, training_throughput
from tests.data.synthetic_fixture import NAME, synthetic_small_builder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return synthetic_small_builder(tmp_path_factory).data_dir_root


# One head and no attention: compiling the step with XLA takes seconds, not minutes
# (tests/models/defect_aux_net_test.py compiles the whole network).
CONFIG = DefectAuxNetConfig.from_preset(
    "small", input_shape=(64, 64, 3), num_classes=4, tasks=("classification",), attention="none"
)


def test_training_step_compiles_with_xla(data_dir):
    measured = training_throughput(CONFIG, NAME, data_dir, "train", batch_size=2, steps=2)
    assert measured["xla_compiles"] and measured["xla_error"] is None
    assert measured["images_per_s"] == pytest.approx(2 / measured["step_s"])


def test_pipeline_runs_on_one_thread(data_dir):
    measured = pipeline_throughput(CONFIG, NAME, data_dir, "train", batch_size=4, batches=5)
    assert measured["images_per_s"] > 0
    assert measured["cpu_per_wall"] < 1.5
