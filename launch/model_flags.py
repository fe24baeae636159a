"""Flags that pick a trained model: a launch.train model_dir or a .keras checkpoint."""

import os

from absl import flags

from defect_aux_net.training import run_files, thresholds_file

MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "A launch.train model_dir: its best.keras, config and thresholds."
)
CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "A .keras checkpoint; defaults to <model_dir>/best.keras."
)
flags.register_multi_flags_validator(
    ["model_dir", "checkpoint"],
    lambda values: bool(values["model_dir"] or values["checkpoint"]),
    message="Give --model_dir (a launch.train output) or --checkpoint (a .keras file).",
)


def run_dir() -> str:
    """The model_dir given, or the checkpoint's folder."""
    return MODEL_DIR.value or os.path.dirname(CHECKPOINT.value)


def load_trained_model() -> tuple:
    """`(model, experiment or None, class_names, thresholds or None)` from the flags.

    Class names and thresholds come from the model_dir (or the checkpoint's folder)
    when it has launch.train's files; otherwise names are `class_<i>`. Without
    thresholds.json the thresholds are None (0.5 each), with a warning.

    Raises:
      ValueError: naming the file (best.keras, config.json, thresholds.json) that is
        missing, truncated or incomplete.
    """
    model_dir = run_dir()
    checkpoint = CHECKPOINT.value or run_files.model_dir_paths(model_dir)["best"]
    model = run_files.load_model(checkpoint)
    experiment, class_names, thresholds = None, None, None
    if MODEL_DIR.value or run_files.has_config(model_dir):
        experiment, class_names = run_files.read_config(model_dir)
        thresholds = thresholds_file.read_thresholds(model_dir, class_names)
    else:
        class_names = tuple(f"class_{index}" for index in range(model.config.num_classes))
    return model, experiment, class_names, thresholds


def load_image_rule():
    """The image rule of the run folder's thresholds.json (`thresholds_file.read_image_rule`).

    None without one, or without launch.train's files: the per-class rule decides.
    """
    model_dir = run_dir()
    if MODEL_DIR.value or run_files.has_config(model_dir):
        return thresholds_file.read_image_rule(model_dir)
    return None
