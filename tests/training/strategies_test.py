import json
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.training.strategies import (
    is_chief,
    make_strategy,
    read_tf_config,
    worker_index_and_count,
)


def tf_config(monkeypatch, task_type, index, cluster=None):
    cluster = cluster or {"worker": ["w0:2222", "w1:2222", "w2:2222"]}
    config = {"cluster": cluster, "task": {"type": task_type, "index": index}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))


def test_unknown_strategy_names_the_argument_and_the_choices():
    expected = "^strategy='gpu' is unknown.*default, mirrored, multi_worker, tpu"
    with pytest.raises(ConfigError, match=expected) as error:
        make_strategy("gpu")
    assert error.value.field == "strategy"


def test_default_strategy():
    import tensorflow as tf

    assert make_strategy("default") is tf.distribute.get_strategy()


def unused_local_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("tpu", [None, "my-missing-tpu", "grpc://127.0.0.1:{port}"])
def test_tpu_error_names_the_argument_and_comes_quickly(tpu):
    if tpu is not None:
        tpu = tpu.format(port=unused_local_port())
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"tpu=.*no TPU reachable") as error:
        make_strategy("tpu", tpu)
    # What this guards against is connect_to_cluster retrying for minutes; the error takes
    # under a second on an idle machine, and a test worker beside heavy tests may wait 10 s.
    assert time.monotonic() - start < 60
    assert str(error.value).startswith(f"tpu={tpu or 'local'!r}")
    assert error.value.field == "tpu" and "--" not in str(error.value)


@pytest.mark.parametrize("value", [None, "", "  "])
def test_multi_worker_without_tf_config(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(ConfigError, match="^strategy='multi_worker' needs .*TF_CONFIG"):
        make_strategy("multi_worker")


@pytest.mark.parametrize(
    "value",
    ['{"cluster": ', '["worker"]', '{"cluster": {"worker": []}}', '{"task": {"type": "worker"}}'],
)
def test_malformed_tf_config(monkeypatch, value):
    monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(ValueError, match="TF_CONFIG.*the multi_worker strategy reads"):
        make_strategy("multi_worker")


def test_no_tf_config_is_a_single_chief(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert read_tf_config() is None
    assert is_chief()
    assert worker_index_and_count() == (0, 1)


@pytest.mark.parametrize(
    "task_type, index, cluster, chief, worker",
    [
        ("worker", 0, None, True, (0, 3)),
        ("worker", 2, None, False, (2, 3)),
        ("chief", 0, {"chief": ["c:2222"], "worker": ["w0:2222"]}, True, (0, 2)),
        ("worker", 0, {"chief": ["c:2222"], "worker": ["w0:2222"]}, False, (1, 2)),
        ("evaluator", 0, {"chief": ["c:2222"], "evaluator": ["e:2222"]}, False, None),
    ],
)
def test_roles_from_tf_config(monkeypatch, task_type, index, cluster, chief, worker):
    tf_config(monkeypatch, task_type, index, cluster)
    assert is_chief() is chief
    if worker is None:
        with pytest.raises(ValueError, match="'evaluator' is not a training worker"):
            worker_index_and_count()
    else:
        assert worker_index_and_count() == worker


def test_configure_logical_cpus_rejects_bad_counts():
    from defect_aux_net.training.strategies import configure_logical_cpus

    with pytest.raises(ValueError, match="count"):
        configure_logical_cpus(0)


# Logical devices must be configured before TensorFlow initialises: a fresh process.
MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json
    import tensorflow as tf
    from defect_aux_net.training.strategies import (
        configure_logical_cpus, make_strategy, supports_xla
    )

    configure_logical_cpus(8)
    strategy = make_strategy("mirrored")
    # Each replica contributes its id + 1: the sum is 1 + 2 + ... + 8 = 36.
    values = strategy.run(
        lambda: tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group + 1,
                        tf.float32)
    )
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None)
    try:
        configure_logical_cpus(4)
        late = None
    except RuntimeError as error:
        late = str(error)
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "devices": list(strategy.extended.worker_devices),
        "total": float(total),
        "late": late,
        "xla": supports_xla(strategy),
        "xla_on_one_device": supports_xla(tf.distribute.OneDeviceStrategy("/cpu:0")),
        "xla_by_default": supports_xla(tf.distribute.get_strategy()),
    }))
    """
)


def test_mirrored_over_eight_logical_cpus():
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 8
    assert report["devices"] == [
        f"/job:localhost/replica:0/task:0/device:CPU:{i}" for i in range(8)
    ]
    assert report["total"] == 36.0
    assert "configure_logical_cpus(4) came too late" in report["late"]
    # XLA cannot run a step replicated over logical CPUs (launch.train then trains without).
    assert report["xla"] is False
    assert report["xla_on_one_device"] is True
    assert report["xla_by_default"] is True
