"""float32, bfloat16 and INT8 side by side on a trained run: batch-1 latency and test metrics.

Each precision of the run's best model is one *variant*, a model `evaluate_model`
can run (`config`, `anchors`, `model(images, training=False)`):

  float32: the Keras model on TensorFlow, as trained.
  bfloat16: the weights rounded to bfloat16 (`with_precision`), on TensorFlow.
  int8: the OpenVINO INT8 export (`export_edge_model`), calibrated on the run's
    training split, its other layers in float32.
  openvino_float32, openvino_bfloat16: the OpenVINO float32 export with the f32 and
    the bf16 inference hint: how much of INT8's speed-up is OpenVINO's alone, and
    OpenVINO's own bfloat16.

The metrics of every variant come from one path, `evaluate_model` (decoding by
`postprocessing.decode_outputs`, the run's thresholds); the latency is the median
over repeated calls on one prepared test image, each variant in a fresh process
with the thread count asked for (`measurement.run_isolated`).
"""

import os

import keras
import numpy as np
import tensorflow as tf

from defect_aux_net.data import datasets
from defect_aux_net.data.pipeline import InputOptions, make_dataset
from defect_aux_net.evaluation.model_evaluation import evaluate_model
from defect_aux_net.export import edge_runtimes
from defect_aux_net.export.edge_formats import export_edge_model
from defect_aux_net.export.int8_quantization import CALIBRATION_IMAGES, training_images
from defect_aux_net.export.precision import with_precision
from defect_aux_net.performance.measurement import (
    median_seconds,
    peak_memory_bytes,
    run_isolated,
    to_numpy,
)
from defect_aux_net.training import run_files, thresholds_file

FLOAT32 = "float32"
# Variant -> (OpenVINO export precision, inference precision hint), None for Keras.
VARIANTS = {
    FLOAT32: None,
    "bfloat16": None,
    "int8": ("int8", "f32"),
    "openvino_float32": ("float32", "f32"),
    "openvino_bfloat16": ("float32", "bf16"),
}
# The x86 instructions each variant's fast kernels use (oneDNN in TensorFlow, the
# OpenVINO CPU plugin). Without them the variant still runs, more slowly: bfloat16
# is converted to float32 around each operation (slower than float32 on CPUs
# without avx512_bf16 or amx_bf16), INT8 falls back to AVX2/AVX-512 byte
# arithmetic without VNNI or AMX.
CPU_FEATURES = {
    FLOAT32: ("avx512f",),
    "bfloat16": ("avx512_bf16", "amx_bf16"),
    "int8": ("avx512_vnni", "amx_int8"),
    "openvino_float32": ("avx512f",),
    "openvino_bfloat16": ("avx512_bf16", "amx_bf16"),
}
_LISTED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
                 "amx_tile", "amx_int8", "amx_bf16")
# The summary metrics compared, `(task, field)`, those of the model's tasks.
HEADLINE_METRICS = (
    ("classification", "accuracy"),
    ("classification", "top1_accuracy"),
    ("classification", "exact_match"),
    ("image_ap", "ap"),
    ("detection", "map50"),
    ("detection", "map"),
    ("segmentation", "dice"),
    ("segmentation", "iou"),
)


def check_complete_run(model_dir: str):
    """Raises ValueError naming what makes `model_dir` not a complete launch.train run."""
    paths = run_files.model_dir_paths(model_dir)
    for name in ("complete", "config", "best"):
        if not tf.io.gfile.exists(paths[name]):
            raise ValueError(
                f"{model_dir} is not a complete training run: {paths[name]} is missing "
                "(train it with launch.train until it writes complete.json)."
            )


def check_variants(variants):
    """Raises ValueError unless `variants` are names of `VARIANTS` with float32 among them."""
    if not set(variants) <= set(VARIANTS) or FLOAT32 not in variants:
        raise ValueError(
            f"variants must be among {list(VARIANTS)} and include {FLOAT32!r} (the "
            f"reference), got {list(variants)}."
        )


def cpu_features(cpuinfo: str = "/proc/cpuinfo") -> dict:
    """`{"model_name", "flags"}`: the CPU and which low-precision instruction flags it has."""
    with open(cpuinfo) as file:
        lines = file.read().splitlines()
    values = {}
    for line in lines:
        key, _, value = line.partition(":")
        values.setdefault(key.strip(), value.strip())
    flags = values.get("flags", "").split()
    return {
        "model_name": values.get("model name", "unknown"),
        "flags": [flag for flag in _LISTED_FLAGS if flag in flags],
    }


class ExportedModel:
    """An `edge_runtimes` export seen as `evaluate_model` sees a model."""

    def __init__(self, edge_model, config):
        self.edge_model = edge_model
        self.config = config
        self.anchors = edge_model.anchors

    def __call__(self, images, training=False):
        del training  # An export is always in inference mode.
        return self.edge_model(np.asarray(images))


def load_variant(model_dir: str, variant: str, export_dirs: dict, threads: int = 0):
    """The run's best model as `variant` (see the module docstring).

    Args:
      export_dirs: OpenVINO export folder per export precision (`prepare_variants`).
      threads: OpenVINO's CPU threads; 0 for all (TensorFlow's are set per process).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {list(VARIANTS)}, got {variant!r}.")
    model = run_files.load_model(run_files.model_dir_paths(model_dir)["best"])
    if VARIANTS[variant] is None:
        return with_precision(model, variant)
    precision, hint = VARIANTS[variant]
    edge_model = edge_runtimes.load_edge_model(export_dirs[precision], threads, hint)
    return ExportedModel(edge_model, model.config)


def prepare_variants(
    model_dir, data_dir, split, work_dir, variants=tuple(VARIANTS),
    calibration_images=CALIBRATION_IMAGES,
) -> tuple:
    """`(export_dirs, image)`: the OpenVINO exports `variants` need, and the image to time.

    The exports go into `work_dir`; INT8 is calibrated on `calibration_images` of
    the run's training split, as `launch.export --precision=int8` does. The image
    is the first of `split`, prepared as the model takes it: float32 `[1, H, W, C]`.
    """
    model = run_files.load_model(run_files.model_dir_paths(model_dir)["best"])
    experiment, _ = run_files.read_config(model_dir)
    builder = datasets.load_builder(experiment.dataset, data_dir)
    export_dirs = {}
    for precision in sorted({VARIANTS[name][0] for name in variants if VARIANTS[name]}):
        calibration = None
        if precision == "int8":
            calibration = training_images(
                builder, experiment.train_split_slice, model.config, calibration_images
            )
        export_dirs[precision] = export_edge_model(
            model, os.path.join(work_dir, f"openvino_{precision}"), "openvino", precision,
            calibration,
        )
    dataset = make_dataset(builder, split, model.config, InputOptions(1, training=False))
    for images, *_ in dataset.take(1):
        return export_dirs, images.numpy()
    raise ValueError(f"{split} holds no image.")


def variant_latency(model_dir, variant, export_dirs, image, warmup, repeats, threads=0) -> dict:
    """`{"latency_s", "cpu_per_wall", "peak_memory_bytes"}` of `variant` on `image` [1, H, W, C].

    Keras variants run as one `tf.function` graph without XLA, as `inference_latency`
    times Table VI; exports run in their runtime with `threads`.
    """
    model = load_variant(model_dir, variant, export_dirs, threads)
    if isinstance(model, keras.Model):
        predict = tf.function(
            lambda images: model(images, training=False),
            input_signature=[tf.TensorSpec([None, *image.shape[1:]], tf.float32)],
        )
        call = lambda: to_numpy(predict(image))  # noqa: E731
    else:
        call = lambda: model(image)  # noqa: E731
    timing = median_seconds(call, warmup, repeats)
    return {
        "latency_s": timing["median_s"],
        "cpu_per_wall": timing["cpu_per_wall"],
        "peak_memory_bytes": peak_memory_bytes(),
    }


def variant_metrics(model_dir, data_dir, split, export_dirs, variants, batch_size=16) -> dict:
    """`evaluate_model`'s result of each of `variants` on `split`, with the run's thresholds."""
    experiment, class_names = run_files.read_config(model_dir)
    thresholds = thresholds_file.read_thresholds(model_dir, class_names)
    builder = datasets.load_builder(experiment.dataset, data_dir)
    return {
        variant: evaluate_model(
            load_variant(model_dir, variant, export_dirs), builder, split, class_names,
            thresholds, batch_size,
        ).result()
        for variant in variants
    }


def headline_metrics(result: dict) -> dict:
    """`{"<task>/<field>": value}` of the `HEADLINE_METRICS` an evaluation result holds."""
    return {
        f"{task}/{field}": float(result[task][field])
        for task, field in HEADLINE_METRICS
        if task in result and field in result[task]
    }


def metric_values(result, prefix="") -> dict:
    """Every metric of an evaluation result, flattened to `{"a/b/c": float}`.

    Counts (ints), flags and lists (confusion matrices) are left out, and so are
    thresholds: they are chosen, not measured.
    """
    values = {}
    for key, value in result.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            values |= metric_values(value, f"{name}/")
        elif isinstance(value, float) and key != "threshold":
            values[name] = value
    return values


def comparison(latency: dict, metrics: dict) -> dict:
    """Speed-ups and metric changes of each variant against float32.

    Args:
      latency: `{threads: {variant: variant_latency result}}`; the first thread
        count gives the headline `latency_s` and `speedup`.
      metrics: `{variant: evaluation result}` (`variant_metrics`).

    Returns:
      `latency_s`, `speedup` (float32 latency / the variant's) and `metrics`
      (headline metrics) per variant; `metric_change` (variant - float32, per
      headline metric) and `max_metric_change` (the largest absolute one) per
      variant; `largest_change_any_metric` (`{"metric", "change"}` over every
      metric, per class included); and `runs`: latency, speed-up, cpu/wall and peak
      memory per thread count.
    """
    runs = {}
    for threads, by_variant in latency.items():
        base = by_variant[FLOAT32]["latency_s"]
        runs[threads] = {
            "latency_s": {name: run["latency_s"] for name, run in by_variant.items()},
            "speedup": {name: base / run["latency_s"] for name, run in by_variant.items()},
            "cpu_per_wall": {name: run["cpu_per_wall"] for name, run in by_variant.items()},
            "peak_memory_bytes": {
                name: run["peak_memory_bytes"] for name, run in by_variant.items()
            },
        }
    headline = {name: headline_metrics(result) for name, result in metrics.items()}
    every = {name: metric_values(result) for name, result in metrics.items()}
    change, largest, any_metric = {}, {}, {}
    for name, values in headline.items():
        change[name] = {key: value - headline[FLOAT32][key] for key, value in values.items()}
        largest[name] = max((abs(value) for value in change[name].values()), default=0.0)
        changes = {key: value - every[FLOAT32][key] for key, value in every[name].items()}
        worst = max(changes, key=lambda key: abs(changes[key]), default=None)
        any_metric[name] = {"metric": worst, "change": changes[worst] if worst else 0.0}
    first = runs[next(iter(runs))]
    return {
        "latency_s": first["latency_s"],
        "speedup": first["speedup"],
        "metrics": headline,
        "metric_change": change,
        "max_metric_change": largest,
        "largest_change_any_metric": any_metric,
        "runs": runs,
    }


def compare_precisions(
    model_dir, data_dir, split, work_dir, threads=(1, 0), warmup=2, repeats=10,
    calibration_images=CALIBRATION_IMAGES, variants=tuple(VARIANTS), batch_size=16,
) -> dict:
    """Exports, times and evaluates every variant of a complete run; see `comparison`.

    Each step runs in its own fresh process (`run_isolated`): the timings get the
    thread counts asked for and none pays for another's memory.

    Args:
      model_dir: a complete launch.train run.
      data_dir: TFDS data_dir of the run's dataset.
      split: the split the metrics come from (its first image is timed).
      work_dir: an empty folder for the OpenVINO exports.
      threads: thread counts; 0 is every core. The first gives the headline figures.
      variants: names of `VARIANTS`, float32 among them (the reference); the
        OpenVINO ones need `pip install -e ".[export]"`.
    """
    check_complete_run(model_dir)
    check_variants(variants)
    export_dirs, image = run_isolated(
        prepare_variants, model_dir, data_dir, split, work_dir, variants, calibration_images
    )
    latency = {}
    for count in threads:
        name = "all" if count == 0 else str(count)
        latency[name] = {}
        for variant in variants:
            print(f"Precision: {variant} threads={name}", flush=True)
            latency[name][variant] = run_isolated(
                variant_latency, model_dir, variant, export_dirs, image, warmup, repeats, count,
                threads=count,
            )
    print("Precision: test metrics of every variant", flush=True)
    metrics = run_isolated(
        variant_metrics, model_dir, data_dir, split, export_dirs, variants, batch_size
    )
    experiment, _ = run_files.read_config(model_dir)
    return comparison(latency, metrics) | {
        "model_dir": model_dir,
        "split": f"{experiment.dataset} {split}",
        "input_size": "x".join(map(str, image.shape[1:3])),
        "calibration_images": calibration_images,
        "cpu": cpu_features(),
        "cpu_features_needed": {name: list(CPU_FEATURES[name]) for name in variants},
        "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
    }

