r"""Measures Table VI, gated inference, training and pipeline throughput, precision, memory,
and the DeepLabV3+ paper's Table 1 (its backbones' speed).

  python -m launch.train --preset=quickstart --model_dir=runs/quickstart
  python -m launch.benchmark --output=benchmarks/results.json \
    --gate_model_dir=runs/quickstart
  python -m launch.benchmark --output=benchmarks/precision.json --parts=precision \
    --precision_model_dir=runs/quickstart
  python -m launch.benchmark --output=benchmarks/deeplab_speed.json --parts=deeplab_speed

Writes `--output` (JSON) and a markdown report beside it (`.md`), and prints the
report. Every figure is measured in a fresh process (peak memory of its own,
thread count fixed), one after another: run nothing else meanwhile. The library is
imported inside the functions: each measuring process is spawned, re-imports this
module first, and must set TensorFlow's thread counts before TensorFlow runs anything.

The table6 part writes two tables: `table6`, the paper's (the ResNet-50 classifier,
ResNet-50 FPN and ResNet-50 RetinaNet against Defect-Aux-Net), and
`table6_shared_backbone`, Defect-Aux-Net with one head each (what sharing alone saves).
"""

import dataclasses
import datetime
import os
import sys

from absl import app, flags

import launch
from defect_aux_net.config import PRESETS
from defect_aux_net.models.deeplab_config import PRESETS as DEEPLAB_PRESET_CONFIGS

PARTS = ("table6", "gated", "train", "pipeline", "precision", "deeplab_speed")
ON_REQUEST = ("precision", "deeplab_speed")  # A trained run; four large networks.

OUTPUT = flags.DEFINE_string("output", None, "Results JSON path; the report goes beside it (.md).")
PARTS_FLAG = flags.DEFINE_multi_enum(
    "parts", [part for part in PARTS if part not in ON_REQUEST], PARTS,
    "Parts to measure (precision and deeplab_speed only when asked: precision needs "
    "--precision_model_dir).",
)
THREADS = flags.DEFINE_list(
    "threads", ["1", "all"], "Thread counts for inference: integers, or `all` (every core)."
)
TABLE6_PRESETS = flags.DEFINE_multi_enum(
    "table6_presets", ["tekerreka", "severstal"], sorted(PRESETS),
    "Model presets of Table VI, each at its input size (paper: 600x600 and 128x800): every "
    "network's preset of that name (`small`: the small networks).",
)
WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed runs before timing.", lower_bound=0)
REPEATS = flags.DEFINE_integer("repeats", 10, "Timed inference runs (median).", lower_bound=1)
JIT_COMPILE = flags.DEFINE_boolean(
    "jit_compile", False, "Compile inference with XLA (TF Serving runs exports without)."
)
GATE_MODEL_DIR = flags.DEFINE_string(
    "gate_model_dir", None,
    "A launch.train model_dir whose classification head gates (gated part): Defect-Aux-Net "
    "with two tasks or more, or faster_rcnn with the gasket gate (--model_preset=gasket, or "
    "its tasks with classification); a detector's streams also give the gated mAP as a "
    "fraction of the ungated one's.",
)
STREAM_SPLIT = flags.DEFINE_string("stream_split", "test", "Split the gated streams draw from.")
GATED_PAPER_PRESET = flags.DEFINE_string(
    "gated_paper_preset", "tekerreka",
    "Also run the streams through this preset of the gate run's model at its size "
    "(Defect-Aux-Net: tekerreka; faster_rcnn: gasket), the trained gate deciding ('' skips).",
)
STREAM_LENGTH = flags.DEFINE_integer("stream_length", 100, "Images per stream.", lower_bound=20)
DATASET = flags.DEFINE_string(
    "dataset", "synthetic_defects/quickstart",
    "TFDS dataset of the train, pipeline and deeplab_speed parts.",
)
DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data_dir (the dataset is built if missing).")
TRAIN_PRESET = flags.DEFINE_enum(
    "train_preset", "severstal", sorted(PRESETS), "Model preset of the train and pipeline parts."
)
TRAIN_BATCH_SIZE = flags.DEFINE_integer("train_batch_size", 4, "Training batch.", lower_bound=1)
TRAIN_STEPS = flags.DEFINE_integer("train_steps", 5, "Timed training steps.", lower_bound=1)
PIPELINE_BATCHES = flags.DEFINE_integer(
    "pipeline_batches", 40, "Timed pipeline batches (of --train_batch_size).", lower_bound=1
)
PRECISION_MODEL_DIR = flags.DEFINE_string(
    "precision_model_dir", None,
    "A complete launch.train run whose best model the precision part exports, times and "
    "evaluates in float32, bfloat16 and INT8.",
)
PRECISION_SPLIT = flags.DEFINE_string(
    "precision_split", "test", "Split of the run's dataset the precision part evaluates on."
)
PRECISION_VARIANTS = flags.DEFINE_list(
    "precision_variants", ["float32", "bfloat16", "int8", "openvino_float32", "openvino_bfloat16"],
    "What the precision part compares: float32 and bfloat16 (Keras on TensorFlow), int8 "
    "(OpenVINO INT8), openvino_float32 and openvino_bfloat16 (OpenVINO's float32 export with "
    "the f32 or bf16 hint). float32 is the reference and must be among them.",
)
PRECISION_CALIBRATION_IMAGES = flags.DEFINE_integer(
    "precision_calibration_images", 200, "Training images that calibrate the INT8 ranges.",
    lower_bound=1,
)
DEEPLAB_PRESETS = flags.DEFINE_multi_enum(
    "deeplab_presets", [name for name in DEEPLAB_PRESET_CONFIGS if name != "small"],
    sorted(DEEPLAB_PRESET_CONFIGS),
    "DeepLabV3+ presets of the deeplab_speed part (the paper's Table 1 rows; the first is "
    "the reference of the ratios), built without ImageNet weights.",
)
DEEPLAB_INPUT_SIZE = flags.DEFINE_list(
    "deeplab_input_size", ["256", "256"],
    "height,width of the deeplab_speed part's training and resized-image evaluation "
    "(paper: 256,256; multiples of 16).",
)
DEEPLAB_ORIGINAL_SIZE = flags.DEFINE_list(
    "deeplab_original_size", ["256", "1600"],
    "height,width of its original-image evaluation (Severstal's 256x1600; the paper "
    "writes 256x1700, not a multiple of 16); empty to skip.",
)
DEEPLAB_BATCH_SIZE = flags.DEFINE_integer(
    "deeplab_batch_size", 16, "Training batch of deeplab_speed (paper: 16).", lower_bound=1
)
DEEPLAB_ROUNDS = flags.DEFINE_integer(
    "deeplab_rounds", 2, "deeplab_speed's rounds, each over every preset; medians kept.",
    lower_bound=1,
)

flags.mark_flag_as_required("output")
flags.register_validator(
    "threads",
    lambda values: bool(values) and all(v == "all" or (v.isdigit() and int(v) > 0) for v in values),
    message="--threads takes positive integers or `all`, e.g. --threads=1,all.",
)
flags.register_multi_flags_validator(
    ["parts", "gate_model_dir"],
    lambda values: "gated" not in values["parts"] or bool(values["gate_model_dir"]),
    message="The gated part needs --gate_model_dir, a model_dir of "
    "`python -m launch.train --preset=quickstart` (or leave out --parts=gated).",
)
flags.register_multi_flags_validator(
    ["parts", "precision_model_dir"],
    lambda values: "precision" not in values["parts"] or bool(values["precision_model_dir"]),
    message="The precision part needs --precision_model_dir, a complete launch.train run.",
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if "precision" in PARTS_FLAG.value:
        from defect_aux_net.performance import precision_comparison

        checks = {
            "precision_model_dir": lambda: precision_comparison.check_complete_run(
                PRECISION_MODEL_DIR.value
            ),
            "precision_variants": lambda: precision_comparison.check_variants(
                PRECISION_VARIANTS.value
            ),
        }
        for flag, check in checks.items():
            try:
                check()
            except ValueError as error:
                raise app.UsageError(f"--{flag}: {error}") from error
    if "gated" in PARTS_FLAG.value and GATED_PAPER_PRESET.value:
        _check_gated_paper_preset()
    if "deeplab_speed" in PARTS_FLAG.value:
        deeplab_sizes = _deeplab_sizes()
    import keras
    import tensorflow as tf

    from defect_aux_net.performance import inference_latency
    from defect_aux_net.performance.measurement import run_isolated

    threads = [0 if value == "all" else int(value) for value in THREADS.value]
    parts = set(PARTS_FLAG.value)
    results = {
        "command": " ".join(["python -m launch.benchmark", *sys.argv[1:]]),
        "machine": {
            "cpu_cores": os.cpu_count(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "date": datetime.date.today().isoformat(),
        },
    }
    # Peak resident memory of each measuring process, keyed by what it measured.
    memory = {"imports only": run_isolated(inference_latency.baseline_memory_bytes)}
    results["memory"] = memory
    # Written after each part: a long run's finished parts are kept if it stops.
    if "table6" in parts:
        results |= _measure_table6(threads, memory)
        _write(results)
    if "gated" in parts:
        results["gated"] = _measure_gated(threads)
        _write(results)
    if "precision" in parts:
        precision = results["precision"] = _measure_precision(threads)
        for count, run in precision["runs"].items():
            for name, value in run["peak_memory_bytes"].items():
                memory[f"inference {name} {precision['input_size']} threads={count}"] = value
        _write(results)
    if "deeplab_speed" in parts:
        results["deeplab_speed"] = _measure_deeplab_speed(deeplab_sizes, memory)
        _write(results)
    if {"train", "pipeline"} & parts:
        results |= _measure_training(parts, memory)
    print(_write(results))


def _write(results) -> str:
    """Writes the JSON and the markdown report; returns the report."""
    import tensorflow as tf

    from defect_aux_net.performance.report import benchmark_markdown
    from defect_aux_net.training import run_files

    report = benchmark_markdown(results)
    run_files.write_json(results, OUTPUT.value)
    with tf.io.gfile.GFile(os.path.splitext(OUTPUT.value)[0] + ".md", "w") as file:
        file.write(report)
    return report


def _measure_table6(threads, memory):
    """`{"table6": ..., "table6_shared_backbone": ...}`: the paper's Table VI networks
    (`paper_networks`) and Defect-Aux-Net's one-head variants (`task_networks`)."""
    from defect_aux_net.performance import inference_latency
    from defect_aux_net.performance.measurement import run_isolated

    runs = {"table6": {}, "table6_shared_backbone": {}}
    for preset in TABLE6_PRESETS.value:
        tables = {
            "table6": inference_latency.paper_networks(preset),
            "table6_shared_backbone": inference_latency.task_networks(PRESETS[preset]),
        }
        size = _size_name(PRESETS[preset])
        for count in threads:
            # (config, result) of each network: the multi-task one, in both tables, once.
            measured = []
            for table, networks in tables.items():
                by_task = {}
                for task, config in networks.items():
                    done = [result for other, result in measured if other == config]
                    if done:
                        by_task[task] = done[0]
                        continue
                    name = task if table == "table6" else f"shared-backbone {task}"
                    label = f"{name} {size} threads={_threads_name(count)}"
                    print(f"Table VI: {label}")
                    by_task[task] = run_isolated(
                        inference_latency.inference_latency,
                        config, WARMUP.value, REPEATS.value, JIT_COMPILE.value,
                        threads=count,
                    )
                    measured.append((config, by_task[task]))
                    memory[f"inference {label}"] = by_task[task]["peak_memory_bytes"]
                by_threads = runs[table].setdefault(size, {})
                by_threads[_threads_name(count)] = inference_latency.table6(by_task)
    # Headline figures: the first preset at the first thread count (by default the
    # paper's 600x600 on one thread).
    return {
        table: next(iter(by_size.values()))[_threads_name(threads[0])] | {"runs": by_size}
        for table, by_size in runs.items()
    }


def _check_gated_paper_preset():
    """Up front: --gated_paper_preset must be a preset of the gate run's model."""
    from defect_aux_net.performance.gated_streams import paper_network_config
    from defect_aux_net.training import run_files

    try:
        experiment, class_names = run_files.read_config(GATE_MODEL_DIR.value)
    except ValueError as error:
        raise app.UsageError(f"--gate_model_dir: {error}") from error
    try:
        paper_network_config(experiment.model_name, GATED_PAPER_PRESET.value, class_names)
    except ValueError as error:
        raise app.UsageError(f"--gated_paper_preset: {error} Or '' to skip.") from error


def _measure_gated(threads):
    from defect_aux_net.performance.gated_streams import gated_streams_of_run
    from defect_aux_net.performance.measurement import run_isolated

    runs = {}
    for count in threads:
        print(f"Gated streams: threads={_threads_name(count)}")
        runs[_threads_name(count)] = run_isolated(
            gated_streams_of_run,
            GATE_MODEL_DIR.value, DATA_DIR.value, STREAM_SPLIT.value,
            STREAM_LENGTH.value, WARMUP.value, REPEATS.value, GATED_PAPER_PRESET.value or None,
            threads=count,
        )
    return runs[_threads_name(threads[0])] | {"runs": runs}


def _measure_precision(threads):
    import tempfile

    from defect_aux_net.performance.precision_comparison import compare_precisions

    with tempfile.TemporaryDirectory() as work_dir:
        return compare_precisions(
            PRECISION_MODEL_DIR.value, DATA_DIR.value, PRECISION_SPLIT.value, work_dir,
            threads, WARMUP.value, REPEATS.value, PRECISION_CALIBRATION_IMAGES.value,
            PRECISION_VARIANTS.value,
        )


def _deeplab_sizes():
    """Up front: the input and original sizes (None: skipped) as `(height, width)`,
    checked against every --deeplab_presets network."""
    from defect_aux_net.performance.deeplab_speed import speed_config

    sizes = []
    for flag in (DEEPLAB_INPUT_SIZE, DEEPLAB_ORIGINAL_SIZE):
        try:
            size = tuple(int(value) for value in flag.value)
            if size or flag is DEEPLAB_INPUT_SIZE:
                for preset in DEEPLAB_PRESETS.value:  # The config checks the values.
                    speed_config(preset, size, num_classes=1)
        except ValueError as error:
            raise app.UsageError(f"--{flag.name} (height,width): {error}") from error
        sizes.append(size or None)
    return sizes


def _measure_deeplab_speed(sizes, memory):
    from defect_aux_net.data import datasets
    from defect_aux_net.performance.deeplab_speed import measure_table1

    builder = datasets.load_builder(DATASET.value, DATA_DIR.value)
    return measure_table1(
        DEEPLAB_PRESETS.value, len(datasets.class_names(builder)), DATASET.value, DATA_DIR.value,
        *sizes, DEEPLAB_BATCH_SIZE.value, TRAIN_STEPS.value, WARMUP.value, REPEATS.value,
        DEEPLAB_ROUNDS.value, memory,
    )


def _measure_training(parts, memory):
    from defect_aux_net.data import datasets
    from defect_aux_net.performance import inference_latency, training_throughput
    from defect_aux_net.performance.measurement import run_isolated

    builder = datasets.load_builder(DATASET.value, DATA_DIR.value)
    config = dataclasses.replace(
        PRESETS[TRAIN_PRESET.value], num_classes=len(datasets.class_names(builder))
    )
    size = _size_name(config)
    data_args = (DATASET.value, DATA_DIR.value, "train", TRAIN_BATCH_SIZE.value)
    networks = inference_latency.task_networks(config)
    if "train" not in parts:  # The pipeline is compared with the multi-task network only.
        networks = {name: networks[name] for name in [inference_latency.MULTI_TASK]}
    runs = {}
    for name, network in networks.items():
        print(f"Training step: {name} {size}, all cores")
        runs[name] = run_isolated(
            training_throughput.training_throughput, network, *data_args, TRAIN_STEPS.value
        )
        memory[f"training {name} {size}"] = runs[name]["peak_memory_bytes"]
    results = {}
    if "train" in parts:
        results["train"] = {
            "images_per_s": {name: run["images_per_s"] for name, run in runs.items()},
            "xla_compiles": all(run["xla_compiles"] for run in runs.values()),
            "input_size": size,
            "batch_size": TRAIN_BATCH_SIZE.value,
            "runs": runs,
        }
    if "pipeline" in parts:
        print(f"Input pipeline: {size}, one thread")
        pipeline = run_isolated(
            training_throughput.pipeline_throughput, config, *data_args, PIPELINE_BATCHES.value,
            threads=1,
        )
        model_rate = runs[inference_latency.MULTI_TASK]["images_per_s"]
        results["pipeline"] = {
            "images_per_s_per_core": pipeline["images_per_s"],
            "cpu_per_wall": pipeline["cpu_per_wall"],
            "model_images_per_s": model_rate,
            "ratio": pipeline["images_per_s"] / model_rate,
            "input_size": size,
        }
    return results


def _size_name(config) -> str:
    return "x".join(map(str, config.input_shape[:2]))


def _threads_name(count: int) -> str:
    return "all" if count == 0 else str(count)


def run():
    launch.run_command(main, __name__)


if __name__ == "__main__":
    app.run(main)
