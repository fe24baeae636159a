r"""Exports a trained model for TF Serving or a line-side runtime.

  python -m launch.export --model_dir=runs/quickstart
  saved_model_cli show --dir runs/quickstart/export/2 --all
  python -m launch.export --model_dir=runs/quickstart --format=openvino --precision=int8

SavedModels (`--format=saved_model`, the default): each export of a model_dir is the
next version, `<model_dir>/export/<N>` (TF Serving serves the highest), written
beside its place and renamed in when complete. Signatures: `serving_default`
(encoded image bytes) and `serving_float` (a float batch); preprocessing, NMS and
the per-class thresholds and image rule are inside the graph. `--precision=bfloat16` computes in
bfloat16 (fast on CPUs with AVX512_BF16 or AMX, and on TPUs and GPUs).

ONNX, LiteRT and OpenVINO (`pip install -e ".[export]"`) hold the model from the
prepared image to its raw outputs; `defect_aux_net.Predictor` loads them and does
preprocessing and decoding. They go to `<model_dir>/export_<format>` (float32) or
`<model_dir>/export_<format>_<precision>`; INT8 (LiteRT, OpenVINO) is calibrated on
images of the run's training split; OpenVINO's bfloat16 is its float32 model, run in
bfloat16 where the CPU has AVX512_BF16 or AMX.
"""

import os

from absl import app, flags

import launch
from launch import flag_errors, model_flags

# --help lists the flags it shares with the other scripts too.
flags.adopt_module_key_flags(model_flags)

FORMATS = ("saved_model", "onnx", "litert", "openvino")

EXPORT_DIR = flags.DEFINE_string(
    "export_dir",
    None,
    "A new folder; default: <model_dir>/export/<next version> for SavedModels, "
    "<model_dir>/export_<format>[_<precision>] for the others.",
)
FORMAT = flags.DEFINE_enum("format", "saved_model", FORMATS, "What to export to.")
PRECISION = flags.DEFINE_enum(
    "precision",
    "float32",
    ("float32", "bfloat16", "int8"),
    "bfloat16: saved_model and openvino; int8: litert and openvino, calibrated on the "
    "training split.",
)
DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "TFDS data_dir of the run's dataset (for --precision=int8)."
)
CALIBRATION_IMAGES = flags.DEFINE_integer(
    "calibration_images", 200, "Training images that calibrate INT8 ranges.", lower_bound=1
)
MAX_DETECTIONS = flags.DEFINE_integer("max_detections", 100, "Boxes per image.", lower_bound=1)
SCORE_THRESHOLD = flags.DEFINE_float("score_threshold", 0.05, "Minimum box score.")
IOU_THRESHOLD = flags.DEFINE_float("iou_threshold", 0.5, "NMS IoU threshold.")
flags.register_validator(
    "precision",
    lambda precision: precision != "bfloat16" or flags.FLAGS.format in ("saved_model", "openvino"),
    message="--precision=bfloat16 is for --format=saved_model or --format=openvino.",
)
flags.register_validator(
    "precision",
    lambda precision: precision != "int8" or flags.FLAGS.format in ("litert", "openvino"),
    message="--precision=int8 is for --format=litert or --format=openvino.",
)


def default_export_dir(model_dir: str) -> str:
    from defect_aux_net.training import run_files

    if FORMAT.value == "saved_model":
        return run_files.next_export_dir(run_files.model_dir_paths(model_dir)["export"])
    suffix = "" if PRECISION.value == "float32" else f"_{PRECISION.value}"
    return os.path.join(model_dir, f"export_{FORMAT.value}{suffix}")


def calibration_images(experiment):
    from defect_aux_net.data import datasets
    from defect_aux_net.export.int8_quantization import training_images

    if experiment is None:
        raise ValueError("--precision=int8 calibrates on the training split: give --model_dir.")
    builder = datasets.load_builder(experiment.dataset, DATA_DIR.value)
    return training_images(
        builder, experiment.train_split_slice, experiment.model, CALIBRATION_IMAGES.value
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from defect_aux_net.export.edge_formats import export_edge_model
    from defect_aux_net.export.precision import with_precision
    from defect_aux_net.export.saved_model import export_saved_model

    try:
        model, experiment, class_names, thresholds = model_flags.load_trained_model()
        image_rule = model_flags.load_image_rule()
        export_dir = EXPORT_DIR.value
        if export_dir is None:
            if not model_flags.MODEL_DIR.value:
                raise ValueError("--export_dir is required with --checkpoint.")
            export_dir = default_export_dir(model_flags.MODEL_DIR.value)
        if FORMAT.value == "saved_model":
            path = export_saved_model(
                with_precision(model, PRECISION.value),
                export_dir,
                class_names,
                thresholds,
                max_detections=MAX_DETECTIONS.value,
                score_threshold=SCORE_THRESHOLD.value,
                iou_threshold=IOU_THRESHOLD.value,
                image_rule=image_rule,
            )
        else:
            calibration = calibration_images(experiment) if PRECISION.value == "int8" else None
            path = export_edge_model(model, export_dir, FORMAT.value, PRECISION.value, calibration)
    except FileExistsError as error:
        raise app.UsageError(f"--export_dir: {error}") from error
    except (ValueError, ImportError) as error:
        raise app.UsageError(flag_errors.flag_message(error)) from error
    print(f"Exported {model.name} ({', '.join(class_names)}) as {FORMAT.value} to {path}")


def run():
    launch.run_command(main, __name__)


if __name__ == "__main__":
    app.run(main)
