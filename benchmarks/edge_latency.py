"""Latency of the edge exports, float32 against INT8, one thread, batch 1 (not a test).

Exports a `small` model with random weights at --size to ONNX, LiteRT and OpenVINO
(float32 and, for LiteRT and OpenVINO, INT8 calibrated on random images: the
timing does not depend on what the ranges are), then times each in its own fresh
process with `edge_runtimes.load_edge_model(threads=1)`, beside Keras on TensorFlow
with one thread. Prints a markdown table and the CPU's instruction-set flags that
low-precision kernels use.

  python benchmarks/edge_latency.py --size=320 --repeats=30
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

MEASUREMENT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "defect_aux_net", "performance", "measurement.py",
)
# One TensorFlow thread for the Keras row, set before TensorFlow starts.
TIME_ONE = r"""
import importlib.util, json, sys
import numpy as np

def module_from(name, file):  # Without the package's __init__, which imports TensorFlow.
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

kind, path, size, warmup, repeats, measurement = sys.argv[1:7]
size, warmup, repeats = int(size), int(warmup), int(repeats)
images = np.random.default_rng(0).uniform(0, 1, (1, size, size, 3)).astype(np.float32)
if kind == "keras":
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras
    import defect_aux_net  # Registers DefectAuxNet for load_model.
    model = keras.saving.load_model(path)
    call = tf.function(lambda x: model(x, training=False))
    run = lambda: {k: v.numpy() for k, v in call(images).items()}
else:
    edge_runtimes = module_from("edge_runtimes", kind)
    hint = sys.argv[7] if len(sys.argv) > 7 else "f32"
    model = edge_runtimes.load_edge_model(path, threads=1, openvino_precision=hint)
    run = lambda: model(images)
result = module_from("measurement", measurement).median_seconds(run, warmup, repeats)
print(json.dumps({"median_ms": 1000 * result["median_s"], "cpu_per_wall": result["cpu_per_wall"]}))
"""

CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
             "amx_tile", "amx_int8", "amx_bf16")


def cpu_features():
    with open("/proc/cpuinfo") as file:
        lines = file.read().splitlines()
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    return name, [flag for flag in CPU_FLAGS if flag in flags]


def time_one(kind, path, size, warmup, repeats, *extra):
    completed = subprocess.run(
        [sys.executable, "-c", TIME_ONE, kind, path, str(size), str(warmup), str(repeats),
         MEASUREMENT, *extra],
        capture_output=True, text=True, env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    if completed.returncode:
        raise RuntimeError(completed.stderr[-3000:])
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--calibration_images", type=int, default=32)
    args = parser.parse_args()

    import keras
    import numpy as np

    from defect_aux_net import DefectAuxNetConfig, build_defect_aux_net
    from defect_aux_net.export import edge_runtimes
    from defect_aux_net.export.edge_formats import export_edge_model

    keras.utils.set_random_seed(0)
    config = DefectAuxNetConfig.from_preset(
        "small", input_shape=(args.size, args.size, 3), num_classes=2
    )
    model = build_defect_aux_net(config)
    rng = np.random.default_rng(1)
    calibration = [
        rng.uniform(0, 1, (1, args.size, args.size, 3)).astype(np.float32)
        for _ in range(args.calibration_images)
    ]
    runtime = edge_runtimes.__file__
    rows = []
    with tempfile.TemporaryDirectory() as work:
        keras_path = os.path.join(work, "model.keras")
        model.save(keras_path)
        rows.append(("Keras (TensorFlow)", "float32",
                     time_one("keras", keras_path, args.size, args.warmup, args.repeats)))
        for format, precisions in [("onnx", ["float32"]), ("litert", ["float32", "int8"]),
                                   ("openvino", ["float32", "int8"])]:
            for precision in precisions:
                export_dir = os.path.join(work, f"{format}_{precision}")
                export_edge_model(model, export_dir, format, precision,
                                  calibration if precision == "int8" else None)
                hints = ["f32", "bf16"] if format == "openvino" else ["f32"]
                for hint in hints:
                    label = precision if hint == "f32" else f"{precision} (bf16 hint)"
                    figure = time_one(runtime, export_dir, args.size, args.warmup, args.repeats, hint)
                    rows.append((format, label, figure))
                    print(format, label, figure, flush=True)
    name, flags = cpu_features()
    baseline = rows[0][2]["median_ms"]
    print(f"\nCPU: {name}; flags: {' '.join(flags)}")
    print(f"small preset, {args.size}x{args.size}x3, batch 1, one thread, median of {args.repeats}\n")
    float32 = {name: figure["median_ms"] for name, precision, figure in rows if precision == "float32"}
    print("| runtime | precision | latency (ms) | vs its float32 | vs Keras float32 | CPU/wall |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for runtime_name, precision, figure in rows:
        latency = figure["median_ms"]
        print(f"| {runtime_name} | {precision} | {latency:.1f} | "
              f"{float32[runtime_name] / latency:.2f}x | {baseline / latency:.2f}x | "
              f"{figure['cpu_per_wall']:.2f} |")


if __name__ == "__main__":
    main()
