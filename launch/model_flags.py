"""Flags that pick a trained model: a launch.train model_dir or a .keras checkpoint."""

import os

from absl import flags

from defect_aux_net.training import run_files

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


def load_trained_model() -> tuple:
    """`(model, experiment or None, class_names, thresholds or None)` from the flags.

    Class names and thresholds come from the model_dir (or the checkpoint's folder)
    when it has launch.train's files; otherwise names are `class_<i>`.
    """
    model_dir = MODEL_DIR.value or os.path.dirname(CHECKPOINT.value)
    checkpoint = CHECKPOINT.value or run_files.model_dir_paths(model_dir)["best"]
    model = run_files.load_model(checkpoint)
    experiment, class_names, thresholds = None, None, None
    if MODEL_DIR.value or run_files.has_config(model_dir):
        experiment, class_names = run_files.read_config(model_dir)
        thresholds = run_files.read_thresholds(model_dir, class_names)
    else:
        class_names = tuple(f"class_{index}" for index in range(model.config.num_classes))
    return model, experiment, class_names, thresholds
