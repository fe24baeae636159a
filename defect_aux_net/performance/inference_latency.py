"""Table VI of the Defect-Aux-Net paper: one multi-task network against three single-task ones.

The single-task networks are Defect-Aux-Net with one head: the same bottom-up
pathway (attention included) for classification, plus the top-down pathway for
segmentation, plus the pyramid levels and subnets for detection. Run one after
another, they do the work the multi-task network does in one pass.
"""

import dataclasses

import keras
import tensorflow as tf

from defect_aux_net.config import TASKS, DefectAuxNetConfig
from defect_aux_net.models.defect_aux_net import build_defect_aux_net
from defect_aux_net.performance.measurement import median_seconds, peak_memory_bytes, to_numpy

MULTI_TASK = "multi_task"


def task_networks(config: DefectAuxNetConfig) -> dict:
    """The single-task configs of `config`'s network, keyed by task, and the multi-task one."""
    networks = {task: dataclasses.replace(config, tasks=(task,)) for task in TASKS}
    networks[MULTI_TASK] = dataclasses.replace(config, tasks=TASKS)
    return networks


def inference_latency(
    config: DefectAuxNetConfig, warmup: int, repeats: int, jit_compile: bool = False
) -> dict:
    """Batch-1 inference time of the network of `config` on a random image.

    The model runs as one `tf.function` graph for any batch size, as TF Serving
    runs an export (without XLA unless `jit_compile`); outputs are copied to numpy.

    Returns:
      `{"latency_s", "cpu_per_wall", "params", "peak_memory_bytes"}`.
    """
    model = build_defect_aux_net(config)
    images = keras.random.uniform((1, *config.input_shape), seed=0)
    predict = tf.function(
        lambda images: model(images, training=False),
        input_signature=[tf.TensorSpec([None, *config.input_shape], tf.float32)],
        jit_compile=jit_compile,
    )
    timing = median_seconds(lambda: to_numpy(predict(images)), warmup, repeats)
    return {
        "latency_s": timing["median_s"],
        "cpu_per_wall": timing["cpu_per_wall"],
        "params": model.count_params(),
        "peak_memory_bytes": peak_memory_bytes(),
    }


def table6(measurements: dict) -> dict:
    """Table VI from `inference_latency` results keyed by `task_networks` names.

    Returns:
      `latency_s` and `params` per network plus `single_task_sum`, and the
      multi-task network's `latency_ratio` and `params_ratio` to that sum.
    """
    table = {"latency_s": {}, "params": {}, "cpu_per_wall": {}}
    for name, measured in measurements.items():
        for key in table:
            table[key][name] = measured[key]
    for key in ("latency_s", "params"):
        table[key]["single_task_sum"] = sum(table[key][task] for task in TASKS)
    table["latency_ratio"] = table["latency_s"][MULTI_TASK] / table["latency_s"]["single_task_sum"]
    table["params_ratio"] = table["params"][MULTI_TASK] / table["params"]["single_task_sum"]
    return table


def baseline_memory_bytes() -> int:
    """Peak memory of a process that has only imported this module (TF, Keras, the library)."""
    return peak_memory_bytes()
