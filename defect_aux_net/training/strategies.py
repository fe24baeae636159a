"""Distribution strategy by name, and the cluster role from `TF_CONFIG`."""

import json
import os
import socket
import urllib.parse

import tensorflow as tf

from defect_aux_net.config_errors import ConfigError

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def make_strategy(
    name: str, tpu: str | None = None, connect_timeout_s: float = 30.0
) -> tf.distribute.Strategy:
    """Returns the `tf.distribute` strategy called `name`.

    Args:
      name: `default` (no distribution), `mirrored` (all local GPUs, else all logical
        CPUs: see `configure_logical_cpus`), `multi_worker` (MultiWorkerMirroredStrategy
        over the cluster of `TF_CONFIG`) or `tpu`.
      tpu: for `tpu`: the TPU name or `grpc://host:port` address; None or
        "local" for the TPU attached to this VM.
      connect_timeout_s: for a `grpc://` TPU address, how long to wait for a TCP
        connection before giving up (TensorFlow itself retries for minutes).

    Returns:
      The strategy; `tpu` has connected to and initialised the TPU system.

    Raises:
      ConfigError: naming `strategy` (unknown `name`, or `multi_worker` without
        `TF_CONFIG`) or `tpu` (no TPU reachable).
      ValueError: `TF_CONFIG` is not valid.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        # MirroredStrategy() alone uses only /cpu:0 when there is no GPU.
        devices = None
        if not tf.config.list_logical_devices("GPU"):
            devices = [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        if read_tf_config() is None:
            raise ConfigError(
                "strategy",
                "strategy='multi_worker' needs the cluster in the TF_CONFIG environment "
                'variable, e.g. {"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
                '"task": {"type": "worker", "index": 0}}.',
            )
        return KerasFitMultiWorkerStrategy()
    if name == "tpu":
        return _tpu_strategy(tpu, connect_timeout_s)
    raise ConfigError(
        "strategy", f"strategy={name!r} is unknown; expected one of {', '.join(STRATEGIES)}."
    )


class KerasFitMultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """MultiWorkerMirroredStrategy whose `reduce` takes what Keras 3 `fit` gives it.

    Keras 3 `fit` reduces a whole batch structure (to build the model) and scalar
    metrics along `axis=0`; the stock strategy fails on both
    (tensorflow/tensorflow#72388, still so in Keras 3.15). Reducing each tensor on
    its own, across replicas only when it has no axis to reduce, is what `fit` means.
    """

    def reduce(self, reduce_op, value, axis=None):
        def reduce_one(tensor):
            rank = len(self.experimental_local_results(tensor)[0].shape)
            return super(KerasFitMultiWorkerStrategy, self).reduce(
                reduce_op, tensor, axis=axis if rank else None
            )

        return tf.nest.map_structure(reduce_one, value)


def supports_xla(strategy: tf.distribute.Strategy) -> bool:
    """Whether a training step compiled with XLA (`jit_compile=True`) runs under `strategy`.

    Not with several replicas on CPUs: XLA compiles no collectives for CPU devices
    (the all-reduce between CPU workers), and a step compiled for one logical CPU
    cannot read the other replicas' variables
    (https://www.tensorflow.org/xla/known_issues#tfvariable_on_a_different_device).
    """
    if strategy.num_replicas_in_sync == 1:  # The default strategy has no worker_devices.
        return True
    return not all(
        tf.DeviceSpec.from_string(device).device_type == "CPU"
        for device in strategy.extended.worker_devices
    )


def _tpu_strategy(tpu, connect_timeout_s):
    tpu = tpu or "local"
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        master = resolver.master()
        if master.startswith("grpc://"):
            # An unreachable address makes connect_to_cluster retry for minutes.
            _check_reachable(master, connect_timeout_s)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    # The resolver raises ValueError, OSError, TensorFlow and Cloud API errors alike.
    except Exception as error:
        # TensorFlow's messages go on with kernel listings: the first line says it.
        reason = (str(error).splitlines() or [""])[0]
        raise ConfigError(
            "tpu",
            f"tpu={tpu!r}: no TPU reachable ({type(error).__name__}: {reason}). Give the "
            "TPU name or grpc://host:port address, or none on a TPU VM.",
        ) from error
    return tf.distribute.TPUStrategy(resolver)


def _check_reachable(address, timeout_s):
    parts = urllib.parse.urlsplit(address)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout_s):
        pass


def configure_logical_cpus(count: int) -> None:
    """Splits the CPU into `count` logical devices, so `mirrored` has `count` replicas.

    Lets a CPU machine run the code paths of an 8-core TPU (v2-8) with 8 replicas.
    Call it first thing, before TensorFlow runs any op or creates a model or strategy.

    Args:
      count: number of logical CPU devices.

    Raises:
      ValueError: `count` is not a positive integer.
      RuntimeError: TensorFlow has already initialised its devices.
    """
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}.")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError as error:
        raise RuntimeError(
            f"configure_logical_cpus({count}) came too late: TensorFlow has already "
            "initialised its devices. Call it before any op, model or strategy is created."
        ) from error


def read_tf_config() -> dict | None:
    """Returns the parsed `TF_CONFIG` environment variable, or None when unset or empty.

    Raises:
      ValueError: `TF_CONFIG` is not JSON with a `cluster` dict and a `task` with
        `type` and `index`.
    """
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"TF_CONFIG is not valid JSON ({error}); the multi_worker strategy reads the "
            f"cluster from it. Got: {text!r}"
        ) from error
    valid = (
        isinstance(config, dict)
        and isinstance(config.get("cluster"), dict)
        and isinstance(config.get("task"), dict)
        and isinstance(config["task"].get("type"), str)
        and isinstance(config["task"].get("index"), int)
    )
    if not valid:
        raise ValueError(
            'TF_CONFIG must be {"cluster": {...}, "task": {"type": ..., "index": ...}} '
            f"(the multi_worker strategy reads it), got {text!r}."
        )
    return config


def is_chief() -> bool:
    """Whether this task writes checkpoints and exports.

    True without `TF_CONFIG` (one machine), for the `chief` task, and for worker 0
    when the cluster has no `chief` (as in MultiWorkerMirroredStrategy).
    """
    config = read_tf_config()
    if config is None:
        return True
    task_type, index = config["task"]["type"], config["task"]["index"]
    if task_type == "chief":
        return True
    return task_type == "worker" and index == 0 and "chief" not in config["cluster"]


def worker_index_and_count() -> tuple[int, int]:
    """Returns this task's index among the training workers and their number.

    The chief counts as worker 0 and shifts the workers up by one, as
    MultiWorkerMirroredStrategy numbers its input pipelines; without `TF_CONFIG`
    this is `(0, 1)`. Use it to give each worker its own slice of the data.

    Raises:
      ValueError: invalid `TF_CONFIG`, or a task that does not train (evaluator, ps).
    """
    config = read_tf_config()
    if config is None:
        return 0, 1
    cluster, task = config["cluster"], config["task"]
    has_chief = "chief" in cluster
    count = len(cluster.get("worker", ())) + (1 if has_chief else 0)
    if task["type"] == "chief":
        return 0, count
    if task["type"] == "worker":
        return task["index"] + (1 if has_chief else 0), count
    raise ValueError(
        f"TF_CONFIG task type {task['type']!r} is not a training worker "
        "(expected 'chief' or 'worker')."
    )
