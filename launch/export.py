r"""Exports a trained model as a SavedModel for TF Serving.

  python -m launch.export --model_dir=runs/quickstart
  saved_model_cli show --dir runs/quickstart/export/2 --all

Each export of a model_dir is the next version, `<model_dir>/export/<N>` (TF Serving
serves the highest), written beside its place and renamed in when complete.

Signatures: `serving_default` (encoded image bytes) and `serving_float` (a float
batch); preprocessing, NMS and the per-class thresholds are inside the graph.
"""

from absl import app, flags

from launch import model_flags

EXPORT_DIR = flags.DEFINE_string(
    "export_dir", None, "A new folder; default: <model_dir>/export/<next version>."
)
MAX_DETECTIONS = flags.DEFINE_integer("max_detections", 100, "Boxes per image.", lower_bound=1)
SCORE_THRESHOLD = flags.DEFINE_float("score_threshold", 0.05, "Minimum box score.")
IOU_THRESHOLD = flags.DEFINE_float("iou_threshold", 0.5, "NMS IoU threshold.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from defect_aux_net.export.saved_model import export_saved_model
    from defect_aux_net.training import run_files

    try:
        model, _, class_names, thresholds = model_flags.load_trained_model()
        export_dir = EXPORT_DIR.value
        if export_dir is None:
            if not model_flags.MODEL_DIR.value:
                raise ValueError("--export_dir is required with --checkpoint.")
            export_dir = run_files.next_export_dir(
                run_files.model_dir_paths(model_flags.MODEL_DIR.value)["export"]
            )
        path = export_saved_model(
            model,
            export_dir,
            class_names,
            thresholds,
            max_detections=MAX_DETECTIONS.value,
            score_threshold=SCORE_THRESHOLD.value,
            iou_threshold=IOU_THRESHOLD.value,
        )
    except FileExistsError as error:
        raise app.UsageError(f"--export_dir: {error}") from error
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    print(f"Exported {model.name} ({', '.join(class_names)}) to {path}")


def run():
    app.run(main)


if __name__ == "__main__":
    app.run(main)
