"""A run's thresholds.json: the per-class thresholds and the image rule chosen on
validation, written by training and read by inference.

Paths go through `tf.io.gfile` (GCS on Cloud TPU); the file is written whole.
"""

import numpy as np
import tensorflow as tf
from absl import logging

from defect_aux_net.inference.postprocessing import ImageRule
from defect_aux_net.training.run_files import model_dir_paths, read_json, write_json

# The key of the image rule in thresholds.json, beside the class names.
IMAGE_RULE_KEY = "image_score"


def write_thresholds(class_names, thresholds, path: str, image_rule: ImageRule | None = None):
    """Writes the per-class thresholds and, when one was chosen, the image rule.

    thresholds.json maps each class name to its threshold; the rule is under
    `IMAGE_RULE_KEY`: `{"weights": {source: weight}, "threshold": t}`.
    """
    values = dict(zip(class_names, map(float, thresholds)))
    if image_rule is not None:
        if IMAGE_RULE_KEY in values:
            raise ValueError(
                f"A class is named {IMAGE_RULE_KEY!r}, the key of the image rule in {path}: "
                "rename the class."
            )
        values[IMAGE_RULE_KEY] = {
            "weights": image_rule.weights_by_source(),
            "threshold": image_rule.threshold,
        }
    write_json(values, path)


def read_thresholds(model_dir: str, class_names) -> np.ndarray | None:
    """Per-class thresholds chosen on validation, in `class_names` order.

    None, with a warning, when the run has no thresholds.json (0.5 each is then used).

    Raises:
      ValueError: naming thresholds.json when it is not JSON, lacks a class or holds a
        value that is not a number in [0, 1].
    """
    path = model_dir_paths(model_dir)["thresholds"]
    if not tf.io.gfile.exists(path):
        logging.warning("%s does not exist: every class uses the threshold 0.5.", path)
        return None
    values = read_json(path)
    if not isinstance(values, dict):
        raise ValueError(f"{path} must map class names to thresholds, got {values!r}.")
    missing = [name for name in class_names if name not in values]
    if missing:
        raise ValueError(
            f"{path} has no threshold for class(es) {missing}: it has {sorted(values)}, "
            f"the run's classes are {list(class_names)}."
        )
    for name in class_names:
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError(f"{path}: the threshold of {name!r} must be in [0, 1], got {value!r}.")
    return np.array([values[name] for name in class_names], np.float32)


def read_image_rule(model_dir: str) -> ImageRule | None:
    """The image rule chosen on validation (`write_thresholds`); None without one.

    Runs that chose none (single-head models, files written before image rules) keep
    the per-class rule.

    Raises:
      ValueError: naming thresholds.json when its rule is malformed.
    """
    path = model_dir_paths(model_dir)["thresholds"]
    if not tf.io.gfile.exists(path):
        return None
    values = read_json(path)
    rule = values.get(IMAGE_RULE_KEY) if isinstance(values, dict) else None
    if rule is None:
        return None
    try:
        if not isinstance(rule, dict) or set(rule) != {"weights", "threshold"}:
            raise ValueError("it must hold exactly `weights` and `threshold`")
        if not isinstance(rule["weights"], dict) or not all(
            isinstance(value, (int, float)) and not isinstance(value, bool)
            for value in [*rule["weights"].values(), rule["threshold"]]
        ):
            raise ValueError("`weights` must map sources to numbers, `threshold` be a number")
        return ImageRule.from_weights(rule["weights"], rule["threshold"])
    except ValueError as error:
        raise ValueError(f"{path}: bad {IMAGE_RULE_KEY!r} ({error}), got {rule!r}.") from error
