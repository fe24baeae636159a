"""Table VI of the Defect-Aux-Net paper: one multi-task network against three single-task ones.

Two comparisons, each keyed by task and `MULTI_TASK`, the same multi-task network in both:
  `paper_networks`: the paper's Table VI, three networks of their own: the plain
    ResNet-50 classifier, a ResNet-50 FPN segmenter and ResNet-50 RetinaNet.
  `task_networks`: Defect-Aux-Net with one head: the same bottom-up pathway
    (attention included) for classification, plus the top-down pathway for
    segmentation, plus the pyramid levels and subnets for detection. It measures
    what sharing the network saves, the backbones being equal.
Run one after another, the single-task networks do the work the multi-task network
does in one pass.
"""

import dataclasses

import keras
import tensorflow as tf

from defect_aux_net.config import TASKS, DefectAuxNetConfig
from defect_aux_net.models.model_builders import build_model, model_config
from defect_aux_net.performance.measurement import median_seconds, peak_memory_bytes, to_numpy

MULTI_TASK = "multi_task"
# Each network of the paper's Table VI: its name there, its `MODELS` entry and the
# config fields that make it that network.
PAPER_NETWORKS = {
    "classification": ("ResNet-50", "resnet50", {}),
    # The library's FPN segmenter: Defect-Aux-Net's top-down pathway and segmentation
    # branch on a plain ResNet-50 (Table II's FPN row, without its SE + SA attention).
    "segmentation": (
        "ResNet-50 FPN", "defect_aux_net", {"tasks": ("segmentation",), "attention": "none"}
    ),
    "detection": ("ResNet-50 RetinaNet", "retinanet", {}),
    MULTI_TASK: ("Defect-Aux-Net", "defect_aux_net", {}),
}
# A cheaper top-down pathway that keeps the paper's (section III-A-2: 1x1
# laterals merged by addition down to 1/4 scale, then the segmentation branch's
# convolutions and bilinear upsampling): without FPN's 3x3 output convolution at P2,
# which the paper does not name, and the branch at half the paper-size network's 128
# channels (a width, not a fraction: the flags a user gives; the small networks' branch
# has 32, so there it widens). Not the default: its accuracy at equal budget is in
# benchmarks/README.md. Keyed as the network it slims, plus `LEAN`: (name, that key).
LEAN = "_lean"
LEAN_TOP_DOWN = {"p2_output_conv": False, "segmentation_channels": 64}
LEAN_NETWORKS = {
    f"segmentation{LEAN}": ("ResNet-50 FPN, lean top-down", "segmentation"),
    f"{MULTI_TASK}{LEAN}": ("Defect-Aux-Net, lean top-down", MULTI_TASK),
}
# The paper's Table VI (one Xeon core at 2.2 GHz; TekErreka's 600x600 input), keyed as
# `table6`'s results; parameters in millions.
PAPER_TABLE6 = {
    "latency_s": {
        "classification": 0.0654, "segmentation": 0.1106, "detection": 0.1780,
        "single_task_sum": 0.3540, MULTI_TASK: 0.1927,
    },
    "params_millions": {
        "classification": 23.5, "segmentation": 26.9, "detection": 34.0,
        "single_task_sum": 84.4, MULTI_TASK: 36.2,
    },
}


def paper_networks(preset: str, lean: bool = False) -> dict:
    """The configs of the paper's Table VI networks, keyed as `task_networks`' result.

    Each is its model's preset named `preset` (the paper's sizes for "tekerreka" and
    "severstal", the small networks for "small"), at the input size and class count
    of Defect-Aux-Net's, so that all four take the same images. With `lean`, the
    `LEAN_NETWORKS` follow, keyed as there.
    """
    multi_task = model_config("defect_aux_net", preset)
    same_input = {"input_shape": multi_task.input_shape, "num_classes": multi_task.num_classes}
    networks = {
        key: model_config(model, preset, **fields, **same_input)
        for key, (_, model, fields) in PAPER_NETWORKS.items()
    }
    if lean:
        for key, (_, slimmed) in LEAN_NETWORKS.items():
            networks[key] = dataclasses.replace(networks[slimmed], **LEAN_TOP_DOWN)
    return networks


def task_networks(config: DefectAuxNetConfig) -> dict:
    """The single-task configs of `config`'s network, keyed by task, and the multi-task one."""
    networks = {task: dataclasses.replace(config, tasks=(task,)) for task in TASKS}
    networks[MULTI_TASK] = dataclasses.replace(config, tasks=TASKS)
    return networks


def inference_latency(config, warmup: int, repeats: int, jit_compile: bool = False) -> dict:
    """Batch-1 inference time of the network of `config` (any `MODELS` config) on a random image.

    The model runs as one `tf.function` graph for any batch size, as TF Serving
    runs an export (without XLA unless `jit_compile`); outputs are copied to numpy.

    Returns:
      `{"latency_s", "cpu_per_wall", "params", "peak_memory_bytes"}`.
    """
    predict, params = latency_function(config, jit_compile)
    timing = median_seconds(predict, warmup, repeats)
    return {
        "latency_s": timing["median_s"],
        "cpu_per_wall": timing["cpu_per_wall"],
        "params": params,
        "peak_memory_bytes": peak_memory_bytes(),
    }


def latency_function(config, jit_compile: bool = False):
    """(a call that predicts one random image with the network of `config` and waits for
    it, the network's parameter count): what `inference_latency` times."""
    model = build_model(config)
    images = keras.random.uniform((1, *config.input_shape), seed=0)
    predict = tf.function(
        lambda images: model(images, training=False),
        input_signature=[tf.TensorSpec([None, *config.input_shape], tf.float32)],
        jit_compile=jit_compile,
    )
    return lambda: to_numpy(predict(images)), model.count_params()


def table6(measurements: dict) -> dict:
    """Table VI from `inference_latency` results keyed as `task_networks`' result.

    Returns:
      `latency_s` and `params` per network plus `single_task_sum`; the multi-task
      network's `latency_ratio` and `params_ratio` to that sum, and its
      `detection_latency_ratio` to the detection network's latency (the issue's
      bound: detection is the costliest single task).
    """
    table = {"latency_s": {}, "params": {}, "cpu_per_wall": {}}
    for name, measured in measurements.items():
        for key in table:
            table[key][name] = measured[key]
    for key in ("latency_s", "params"):
        table[key]["single_task_sum"] = sum(table[key][task] for task in TASKS)
    latency = table["latency_s"]
    table["latency_ratio"] = latency[MULTI_TASK] / latency["single_task_sum"]
    table["params_ratio"] = table["params"][MULTI_TASK] / table["params"]["single_task_sum"]
    table["detection_latency_ratio"] = latency[MULTI_TASK] / latency["detection"]
    return table


def lean_table6(measurements: dict) -> dict:
    """`table6` with the `LEAN_NETWORKS` of `measurements` in place of the networks they
    slim: Table VI as it would be with the lean top-down pathway in the FPN segmenter and
    in Defect-Aux-Net."""
    swapped = dict(measurements)
    for key, (_, slimmed) in LEAN_NETWORKS.items():
        swapped[slimmed] = measurements[key]
    return table6({key: swapped[key] for key in PAPER_NETWORKS})


def baseline_memory_bytes() -> int:
    """Peak memory of a process that has only imported this module (TF, Keras, the library)."""
    return peak_memory_bytes()
