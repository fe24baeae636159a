r"""Predicts defects in image files and draws the predictions over them.

  python -m launch.predict --model=runs/quickstart \
      --inputs=images/,more/part_7.png --output_dir=predictions

`--model` is a launch.train run folder (its latest export, else its best.keras), an
exported SavedModel (launch.export), an ONNX/LiteRT/OpenVINO export or a `.keras`
checkpoint; predictions come from `defect_aux_net.Predictor`. Writes to `--output_dir`:
`<stem>.png` overlays (masks and boxes over the original image), `predictions.csv` (one
row per image, naming its overlay) and `predictions.json` (probabilities, boxes and mask
areas per image, and the skipped files with the reason). Paths may be `gs://`.

A file is reported by name and skipped when it cannot be read (or is not a regular file:
a FIFO or device would block the read forever), is too large for PIL to decode safely
(a decompression bomb), cannot be decoded, or when any model output for it is NaN or
inf: an image the model could not judge is never written as not defective. The exit
status is non-zero only when no file could be processed, or when --output_dir cannot be
written.

Tables are never stale (`prediction_tables`): the previous run's are deleted before the
first image, rows go to `predictions.partial.csv` as images are done, and only a
finished run writes `predictions.json` and renames the partial CSV to `predictions.csv`.
After a crash or kill, `--output_dir` holds no predictions.csv or predictions.json.
Overlays of earlier runs are not deleted: the tables name this run's.
"""

import io
import os

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags, logging

import launch
from defect_aux_net.inference.postprocessing import MASK_THRESHOLD
from defect_aux_net.inference.predictor import DEFAULT_SCORE_THRESHOLD, Prediction, Predictor
from launch.prediction_tables import PredictionTables

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

_MODEL = flags.DEFINE_string(
    "model",
    None,
    "A launch.train run folder (its latest export, else its best.keras), an exported "
    "SavedModel directory, an ONNX/LiteRT/OpenVINO export folder or a .keras checkpoint.",
)
_INPUTS = flags.DEFINE_list(
    "inputs",
    None,
    f"Comma-separated image files and/or folders (their {', '.join(IMAGE_EXTENSIONS)} files).",
)
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Where to write overlays, predictions.csv and predictions.json."
)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Images per model call.")
_CLASS_NAMES = flags.DEFINE_list(
    "class_names",
    None,
    "Class names of a .keras checkpoint or an edge export; default: the class_names of the "
    "config.json of its launch.train model_dir (beside or above it), else class_<i>.",
)
_MASK_THRESHOLD = flags.DEFINE_float(
    "mask_threshold", MASK_THRESHOLD, "Mask probability drawn and counted as defect."
)
_SCORE_THRESHOLD = flags.DEFINE_float(
    "score_threshold",
    DEFAULT_SCORE_THRESHOLD,
    "Boxes with at least this score are drawn and listed.",
)

for _name in ("model", "inputs", "output_dir"):
    flags.mark_flag_as_required(_name)

# Required flags are reported by mark_flag_as_required: validators pass None through.
flags.register_validator(
    "model",
    lambda path: path is None or tf.io.gfile.exists(path),
    message="--model must be an existing run folder, export folder or .keras checkpoint.",
)
flags.register_validator(
    "inputs",
    lambda paths: paths is None or (bool(paths) and all(map(tf.io.gfile.exists, paths))),
    message="--inputs must list existing image files or folders.",
)
flags.register_validator(
    "batch_size", lambda size: size >= 1, message="--batch_size must be at least 1."
)
for _name in ("mask_threshold", "score_threshold"):
    flags.register_validator(
        _name, lambda value: 0 <= value <= 1, message=f"--{_name} must be in [0, 1]."
    )


def expand_inputs(paths) -> list:
    """Image files of `paths`: files as given, folders as their sorted image files.

    Folders are not searched recursively; a file listed twice is kept once.
    """
    files = []
    for path in paths:
        if tf.io.gfile.isdir(path):
            files.extend(
                os.path.join(path, name)
                for name in sorted(tf.io.gfile.listdir(path))
                if name.lower().endswith(IMAGE_EXTENSIONS)
                and not tf.io.gfile.isdir(os.path.join(path, name))
            )
        else:
            files.append(path)
    return list(dict.fromkeys(files))


def _skip(skipped: list, path: str, reason: str):
    """Reports that `path` is skipped, and why; keeps the reason for predictions.json."""
    logging.error("Skipping %s: %s", path, reason)
    skipped.append({"file": path, "reason": reason})


def prediction_record(prediction: Prediction, image_size: tuple, class_names) -> dict:
    """One image's JSON record (without file names) from its `Prediction`.

    Boxes are normalised to [0, 1] of the image; `mask_pixels` counts each class's
    mask pixels at the image's size.
    """
    record = {}
    if prediction.probabilities is not None:
        record["probabilities"] = prediction.probabilities
    record["is_defective"] = prediction.is_defective
    if prediction.image_score is not None:
        record["image_score"] = prediction.image_score
    if prediction.boxes is not None:
        height, width = image_size
        boxes = prediction.boxes / np.array([height, width, height, width], np.float32)
        record["boxes"] = [
            {"class": label, "score": float(score), "box": [float(value) for value in box]}
            for label, score, box in zip(prediction.labels, prediction.scores, boxes)
        ]
    if prediction.masks is not None:
        record["mask_pixels"] = {
            name: int(prediction.masks[..., index].sum()) for index, name in enumerate(class_names)
        }
    return record


def _overlay_name(path: str, used: set) -> str:
    """`<stem>.png`, or `<stem>_<n>.png` when another input had the same stem."""
    stem = os.path.splitext(os.path.basename(path))[0]
    name, count = f"{stem}.png", 0
    while name in used:
        count += 1
        name = f"{stem}_{count}.png"
    used.add(name)
    return name


def write_overlay(overlay, path: str):
    buffer = io.BytesIO()
    overlay.save(buffer, format="PNG")
    with tf.io.gfile.GFile(path, "wb") as file:
        file.write(buffer.getvalue())


def _predict_files(predictor: Predictor, files, output_dir: str, tables) -> tuple:
    """`(records, skipped)` of `files`; writes their overlays and `tables` rows."""
    records, skipped, used_names = [], [], set()
    progress = keras.utils.Progbar(len(files), unit_name="image")
    for result in predictor.predict_files(files):
        progress.add(1)
        if result.error is not None:
            _skip(skipped, result.name, result.error)
            continue
        try:
            overlay = predictor.draw(result.image, result.prediction)
            record = prediction_record(
                result.prediction, result.image.shape[:2], predictor.class_names
            )
        except Exception as error:  # Odd images may fail in PIL's drawing.
            _skip(skipped, result.name, f"cannot make its overlay ({error!r})")
            continue
        name = _overlay_name(result.name, used_names)
        write_overlay(overlay, os.path.join(output_dir, name))
        records.append({"file": result.name, "overlay": name} | record)
        tables.add(records[-1])
    return records, skipped


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    files = expand_inputs(_INPUTS.value)
    if not files:
        raise app.UsageError(
            f"--inputs has no image files ({', '.join(IMAGE_EXTENSIONS)}): {_INPUTS.value}."
        )
    try:
        predictor = Predictor.load(
            _MODEL.value,
            _CLASS_NAMES.value,
            mask_threshold=_MASK_THRESHOLD.value,
            score_threshold=_SCORE_THRESHOLD.value,
            batch_size=_BATCH_SIZE.value,
        )
    except ValueError as error:
        raise app.UsageError(f"--model={_MODEL.value}: {error}") from error
    output_dir = _OUTPUT_DIR.value
    try:
        with PredictionTables(output_dir, predictor.class_names) as tables:
            records, skipped = _predict_files(predictor, files, output_dir, tables)
            tables.finish(
                {
                    "model": predictor.functions.source,
                    "class_names": list(predictor.class_names),
                    "mask_threshold": _MASK_THRESHOLD.value,
                    "score_threshold": _SCORE_THRESHOLD.value,
                    "predictions": records,
                    "skipped": skipped,
                }
            )
    except (tf.errors.OpError, OSError) as error:
        # Reading and predicting skip their files: what gets here failed to write.
        logging.error(
            "Stopped: cannot write to --output_dir=%s (%s). No predictions.csv or "
            "predictions.json was written; predictions.partial.csv holds any rows done.",
            output_dir, error,
        )
        return 1
    defective = sum(record["is_defective"] for record in records)
    logging.info(
        "Predicted %d of %d files (%d defective, %d skipped); wrote overlays, predictions.csv "
        "and predictions.json to %s",
        len(records), len(files), defective, len(skipped), output_dir,
    )
    if not records:
        logging.error("No file of --inputs could be processed.")
        return 1
    return 0


def run():
    launch.run_command(main, __name__)


if __name__ == "__main__":
    app.run(main)
