r"""Predicts defects in image files and draws the predictions over them.

  python -m launch.predict --model=runs/quickstart/export/1 \
      --inputs=images/,more/part_7.png --output_dir=predictions

`--model` is an exported SavedModel (launch.export) or a `.keras` checkpoint. Writes to
`--output_dir`: `<stem>.png` overlays (masks and boxes over the original image),
`predictions.csv` (one row per image, naming its overlay) and `predictions.json`
(probabilities, boxes and mask areas per image, and the skipped files with the reason).
Paths may be `gs://`.

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
import stat

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags, logging
from PIL import Image

from defect_aux_net.data.preprocessing import convert_channels
from defect_aux_net.visualization.overlays import binary_masks, draw_overlay
from launch.prediction_tables import PredictionTables
from launch.predictor import Predictor, load_predictor, non_finite_outputs

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

_MODEL = flags.DEFINE_string(
    "model", None, "An exported SavedModel directory (with saved_model.pb) or a .keras checkpoint."
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
    "Class names of a .keras checkpoint; default: the class_names of the config.json of "
    "its launch.train model_dir (beside or above it), else class_<i>.",
)
_MASK_THRESHOLD = flags.DEFINE_float("mask_threshold", 0.5, "Mask probability drawn as defect.")
_SCORE_THRESHOLD = flags.DEFINE_float(
    "score_threshold", 0.3, "Boxes with at least this score are drawn and listed."
)

for _name in ("model", "inputs", "output_dir"):
    flags.mark_flag_as_required(_name)


def _is_checkpoint(path: str) -> bool:
    return path.endswith(".keras") and tf.io.gfile.exists(path)


# Required flags are reported by mark_flag_as_required: validators pass None through.
flags.register_validator(
    "model",
    lambda path: path is None or tf.saved_model.contains_saved_model(path) or _is_checkpoint(path),
    message="--model must be an exported SavedModel directory (with saved_model.pb) or an "
    "existing .keras checkpoint.",
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
flags.register_multi_flags_validator(
    ["model", "class_names"],
    lambda values: not values["class_names"] or (values["model"] or "").endswith(".keras"),
    message="--class_names is for .keras checkpoints only: a SavedModel holds its class names.",
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


def _read_files(paths, skipped: list) -> list:
    """`(path, bytes)` of the files that can be read and decoded safely; others are skipped."""
    items = []
    for path in paths:
        try:
            # Object stores hold regular objects only; a local FIFO or device never ends.
            if "://" not in path and not stat.S_ISREG(os.stat(path).st_mode):
                _skip(skipped, path, "not a regular file (a FIFO, device or socket)")
                continue
            with tf.io.gfile.GFile(path, "rb") as file:
                data = file.read()
        except (tf.errors.OpError, OSError) as error:
            _skip(skipped, path, f"cannot read it ({error})")
            continue
        too_large = _decompression_bomb(data)
        if too_large:
            _skip(skipped, path, f"too large to decode ({too_large})")
            continue
        items.append((path, data))
    return items


def _decompression_bomb(data: bytes) -> str | None:
    """PIL's decompression-bomb error for `data`, else None.

    PIL reads only the header here, so this runs before any decoder (TensorFlow's
    too) allocates the image. Files PIL cannot identify are left to TensorFlow.
    """
    try:
        Image.open(io.BytesIO(data)).close()
    except Image.DecompressionBombError as error:
        return str(error)
    except Exception:  # Any other error: TensorFlow's decoders decide below.
        return None
    return None


def predict_batch(predictor: Predictor, items, skipped: list) -> list:
    """Predicts `(path, bytes)` items; `(path, bytes, outputs)` for those predicted.

    A batch that fails (an undecodable image) is retried one file at a time. A file
    TensorFlow cannot decode but PIL can (TIFF, 16-bit TIFF) goes through
    `serve_float`; the others are skipped.
    """
    if not items:
        return []
    try:
        outputs = predictor.serve_bytes(tf.constant([data for _, data in items]))
    except tf.errors.OpError as error:
        if len(items) > 1:
            return [
                result for item in items for result in predict_batch(predictor, [item], skipped)
            ]
        path, data = items[0]
        if not isinstance(error, tf.errors.InvalidArgumentError):
            _skip(skipped, path, f"cannot predict it ({_reason(error)})")
            return []
        try:
            pixels = np.atleast_3d(decode_with_pil(data)).astype(np.float32)
        except Exception:  # PIL's decoders raise many types on malformed files.
            _skip(skipped, path, f"cannot decode it ({_reason(error)})")
            return []
        try:
            outputs = predictor.serve_float(convert_channels(pixels, predictor.channels)[None])
        except tf.errors.OpError as float_error:
            _skip(skipped, path, f"cannot predict it ({_reason(float_error)})")
            return []
    outputs = {key: value.numpy() for key, value in outputs.items()}
    return [
        (path, data, {key: value[index] for key, value in outputs.items()})
        for index, (path, data) in enumerate(items)
    ]


def _reason(error) -> str:
    """The cause in a TensorFlow error message, without its graph and node context."""
    # "Graph execution error:", "Detected at node ...:", "<stack traces ...>", the
    # cause, then "\t [[{{node ...}}]]": keep the last line that is none of those.
    lines = [
        line
        for line in error.message.splitlines()
        if line.strip() and not line.startswith((" ", "\t", "<")) and not line.endswith(":")
    ]
    return lines[-1] if lines else error.message.strip()


def decode_with_pil(data: bytes) -> np.ndarray:
    """The image of encoded `data` at its own size: uint8 grey or RGB, else float [0, 1]."""
    with Image.open(io.BytesIO(data)) as image:
        if image.mode.startswith(("I", "F")):
            # 16-bit and float images: min-max to [0, 1], as the model's preprocessing.
            pixels = np.asarray(image, np.float64)
            span = pixels.max() - pixels.min()
            return (pixels - pixels.min()) / span if span else np.zeros_like(pixels)
        return np.asarray(image.convert("L" if image.mode in ("1", "L") else "RGB"))


def prediction_record(outputs: dict, image_size: tuple, class_names) -> dict:
    """One image's JSON record (without file names) from its serving outputs.

    Boxes are those of the first `num_detections` with a score >= --score_threshold;
    `mask_pixels` counts pixels >= --mask_threshold at the original image size.
    """
    record = {}
    if "probabilities" in outputs:
        record["probabilities"] = {
            name: float(value) for name, value in zip(class_names, outputs["probabilities"])
        }
    record["is_defective"] = bool(outputs["is_defective"])
    if "boxes" in outputs:
        record["boxes"] = [
            {
                "class": class_names[outputs["classes"][index]],
                "score": float(outputs["scores"][index]),
                "box": [float(value) for value in outputs["boxes"][index]],
            }
            for index in _kept_boxes(outputs)
        ]
    if "masks" in outputs:
        on = binary_masks(outputs["masks"], image_size, _MASK_THRESHOLD.value)
        record["mask_pixels"] = {
            name: int(on[..., index].sum()) for index, name in enumerate(class_names)
        }
    return record


def _kept_boxes(outputs: dict) -> np.ndarray:
    valid = np.arange(len(outputs["scores"])) < outputs["num_detections"]
    return np.flatnonzero(valid & (outputs["scores"] >= _SCORE_THRESHOLD.value))


def overlay_image(image: np.ndarray, outputs: dict, class_names):
    """The overlay of one image's outputs: masks resized, kept boxes with labels."""
    detections = {}
    if "boxes" in outputs:
        kept = _kept_boxes(outputs)
        detections = {key: outputs[key][kept] for key in ("boxes", "scores", "classes")}
    return draw_overlay(
        image,
        masks=outputs.get("masks"),
        class_names=class_names,
        mask_threshold=_MASK_THRESHOLD.value,
        **detections,
    )


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
    class_names = predictor.class_names
    progress = keras.utils.Progbar(len(files), unit_name="image")
    for start in range(0, len(files), _BATCH_SIZE.value):
        batch = files[start : start + _BATCH_SIZE.value]
        for path, data, outputs in predict_batch(predictor, _read_files(batch, skipped), skipped):
            non_finite = non_finite_outputs(outputs)
            if non_finite:
                # Exports older than serving's own check answer NaN, which fails every
                # threshold comparison: it would read as "not defective".
                reason = f"the model's {', '.join(non_finite)} hold NaN or inf: it cannot judge it"
                _skip(skipped, path, reason)
                continue
            try:
                image = decode_with_pil(data)
                overlay = overlay_image(image, outputs, class_names)
                record = prediction_record(outputs, image.shape[:2], class_names)
            except Exception as error:  # PIL's decoders raise many types on odd files.
                _skip(skipped, path, f"cannot make its overlay ({error!r})")
                continue
            name = _overlay_name(path, used_names)
            write_overlay(overlay, os.path.join(output_dir, name))
            records.append({"file": path, "overlay": name} | record)
            tables.add(records[-1])
        progress.add(len(batch))
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
        predictor = load_predictor(_MODEL.value, _CLASS_NAMES.value)
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    output_dir = _OUTPUT_DIR.value
    try:
        with PredictionTables(output_dir, predictor.class_names) as tables:
            records, skipped = _predict_files(predictor, files, output_dir, tables)
            tables.finish(
                {
                    "model": _MODEL.value,
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
    app.run(main)


if __name__ == "__main__":
    app.run(main)
