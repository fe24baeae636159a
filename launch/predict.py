r"""Predicts defects in image files and draws the predictions over them.

  python -m launch.predict --model=runs/quickstart/export/1 \
      --inputs=images/,more/part_7.png --output_dir=predictions

`--model` is an exported SavedModel (launch.export) or a `.keras` checkpoint. Writes to
`--output_dir`: `<stem>.png` overlays (masks and boxes over the original image),
`predictions.csv` (one row per image) and `predictions.json` (probabilities, boxes and
mask areas per image). Files that cannot be read or decoded are reported and skipped;
the exit status is non-zero only when no file could be processed. Paths may be `gs://`.
"""

import csv
import dataclasses
import io
import os
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags, logging
from PIL import Image

from defect_aux_net.data.preprocessing import convert_channels
from defect_aux_net.export.serving import ServingModule
from defect_aux_net.training import run_files
from defect_aux_net.visualization.overlays import binary_masks, draw_overlay

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


@dataclasses.dataclass(frozen=True)
class Predictor:
    """The serving functions of a model, and what their callers need to know.

    Attributes:
      serve_bytes: string `[B]` encoded images -> outputs (see `ServingModule`).
      serve_float: float32 `[B, h, w, channels]` pixels -> outputs.
      channels: channels the model takes.
      class_names: the class names, in the model's class order.
    """

    serve_bytes: Callable
    serve_float: Callable
    channels: int
    class_names: list


def load_predictor(model_path: str, class_names=None) -> Predictor:
    """The `Predictor` of an exported SavedModel or of a `.keras` checkpoint.

    Args:
      model_path: an exported SavedModel directory or a `.keras` checkpoint.
      class_names: names for a checkpoint; None to read them (and the thresholds)
        from the config.json of its launch.train model_dir (the checkpoint's folder
        or the one above), else `class_<i>`.
    """
    if tf.saved_model.contains_saved_model(model_path):
        loaded = tf.saved_model.load(model_path)
        # Calling through `loaded` keeps it alive: it owns the signatures' variables.
        return Predictor(
            lambda images: loaded.signatures["serving_default"](images=images),
            lambda images: loaded.signatures["serving_float"](images=images),
            int(loaded.channels.numpy()),
            [name.decode() for name in loaded.class_names.numpy()],
        )
    model = run_files.load_model(model_path)
    num_classes = model.config.num_classes
    thresholds = None
    if class_names is None:
        class_names, thresholds = _run_class_names(model_path)
    if class_names is None:
        class_names = [f"class_{index}" for index in range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(
            f"Got {len(class_names)} class names ({','.join(class_names)}) for the "
            f"{num_classes} classes of {model_path}: give one per class with --class_names."
        )
    module = ServingModule(model, list(class_names), thresholds)
    return Predictor(
        lambda images: module.serve_bytes(images=images),
        lambda images: module.serve_float(images=images),
        model.config.input_shape[2],
        list(class_names),
    )


def _run_class_names(checkpoint: str) -> tuple:
    """`(class_names, thresholds)` of the launch.train run holding `checkpoint`, or Nones."""
    folder = os.path.dirname(checkpoint)
    for model_dir in (folder, os.path.dirname(folder)):
        if run_files.has_config(model_dir):
            path = run_files.model_dir_paths(model_dir)["config"]
            class_names = run_files.read_json(path)["class_names"]
            return class_names, run_files.read_thresholds(model_dir, class_names)
    return None, None


def _read_files(paths) -> list:
    """`(path, bytes)` of the files that can be read; the others are reported."""
    items = []
    for path in paths:
        try:
            with tf.io.gfile.GFile(path, "rb") as file:
                items.append((path, file.read()))
        except (tf.errors.OpError, OSError) as error:
            logging.error("Skipping %s: cannot read it (%s)", path, error)
    return items


def predict_batch(predictor: Predictor, items) -> list:
    """Predicts `(path, bytes)` items; `(path, bytes, outputs)` for those decoded.

    A batch that fails with InvalidArgumentError (an undecodable image) is retried
    one file at a time. A file TensorFlow cannot decode but PIL can (TIFF, 16-bit
    TIFF) goes through `serve_float`; others are reported and skipped.
    """
    if not items:
        return []
    try:
        outputs = predictor.serve_bytes(tf.constant([data for _, data in items]))
    except tf.errors.InvalidArgumentError as error:
        if len(items) > 1:
            return [result for item in items for result in predict_batch(predictor, [item])]
        path, data = items[0]
        try:
            pixels = np.atleast_3d(decode_with_pil(data)).astype(np.float32)
        except (OSError, ValueError):
            logging.error("Skipping %s: cannot decode it (%s)", path, _reason(error))
            return []
        outputs = predictor.serve_float(convert_channels(pixels, predictor.channels)[None])
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


def write_tables(records: list, class_names, output_dir: str):
    """Writes predictions.csv (one row per image) and predictions.json."""
    probability_columns = [f"p_{name}" for name in class_names]
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer,
        ["file", "is_defective", *probability_columns, "num_boxes"],
        restval="",
        lineterminator="\n",
    )
    writer.writeheader()
    for record in records:
        row = {"file": record["file"], "is_defective": int(record["is_defective"])}
        row |= {
            f"p_{name}": value for name, value in record.get("probabilities", {}).items()
        }
        if "boxes" in record:
            row["num_boxes"] = len(record["boxes"])
        writer.writerow(row)
    with tf.io.gfile.GFile(os.path.join(output_dir, "predictions.csv"), "w") as file:
        file.write(buffer.getvalue())
    run_files.write_json(
        {
            "model": _MODEL.value,
            "class_names": list(class_names),
            "mask_threshold": _MASK_THRESHOLD.value,
            "score_threshold": _SCORE_THRESHOLD.value,
            "predictions": records,
        },
        os.path.join(output_dir, "predictions.json"),
    )


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
    tf.io.gfile.makedirs(output_dir)

    records, used_names, class_names = [], set(), predictor.class_names
    progress = keras.utils.Progbar(len(files), unit_name="image")
    for start in range(0, len(files), _BATCH_SIZE.value):
        batch = files[start : start + _BATCH_SIZE.value]
        for path, data, outputs in predict_batch(predictor, _read_files(batch)):
            try:
                image = decode_with_pil(data)
            except (OSError, ValueError) as error:
                logging.error("Skipping %s: cannot decode it for the overlay (%s)", path, error)
                continue
            name = _overlay_name(path, used_names)
            overlay = overlay_image(image, outputs, class_names)
            write_overlay(overlay, os.path.join(output_dir, name))
            record = prediction_record(outputs, image.shape[:2], class_names)
            records.append({"file": path, "overlay": name} | record)
        progress.add(len(batch))

    write_tables(records, class_names, output_dir)
    defective = sum(record["is_defective"] for record in records)
    logging.info(
        "Predicted %d of %d files (%d defective, %d skipped); wrote overlays, predictions.csv "
        "and predictions.json to %s",
        len(records), len(files), defective, len(files) - len(records), output_dir,
    )
    if not records:
        logging.error("No file of --inputs could be processed.")
        return 1
    return 0


def run():
    app.run(main)


if __name__ == "__main__":
    app.run(main)
