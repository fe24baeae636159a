"""What a training run writes to its `model_dir`, and reading it back.

Paths go through `tf.io.gfile`, so `model_dir` may be on GCS (Cloud TPU).
"""

import csv
import json
import math
import os

import keras
import numpy as np
import tensorflow as tf

from defect_aux_net.experiments import ExperimentConfig


def model_dir_paths(model_dir: str) -> dict:
    """Where a run writes what, relative to `model_dir`."""
    return {
        "config": os.path.join(model_dir, "config.json"),
        "backup": os.path.join(model_dir, "backup"),
        "best": os.path.join(model_dir, "best.keras"),
        "history": os.path.join(model_dir, "history.csv"),
        "logs": os.path.join(model_dir, "logs"),
        "thresholds": os.path.join(model_dir, "thresholds.json"),
        # TF Serving reads numbered versions under --model_base_path=<model_dir>/export.
        "export": os.path.join(model_dir, "export", "1"),
    }


def write_json(value, path: str):
    tf.io.gfile.makedirs(os.path.dirname(path) or ".")
    with tf.io.gfile.GFile(path, "w") as file:
        json.dump(value, file, indent=2)


def read_json(path: str):
    with tf.io.gfile.GFile(path) as file:
        return json.load(file)


def write_config(experiment: ExperimentConfig, class_names, path: str):
    """Writes the resolved configuration (what actually ran) as JSON."""
    write_json(experiment.to_dict() | {"class_names": list(class_names)}, path)


def has_config(model_dir: str) -> bool:
    return tf.io.gfile.exists(model_dir_paths(model_dir)["config"])


def read_config(model_dir: str) -> tuple:
    """`(ExperimentConfig, class_names)` of the run in `model_dir`."""
    path = model_dir_paths(model_dir)["config"]
    if not tf.io.gfile.exists(path):
        raise ValueError(f"{path} does not exist: is --model_dir a launch.train model_dir?")
    values = read_json(path)
    class_names = tuple(values.pop("class_names"))
    return ExperimentConfig.from_dict(values), class_names


def write_thresholds(class_names, thresholds, path: str):
    write_json(dict(zip(class_names, map(float, thresholds))), path)


def read_thresholds(model_dir: str, class_names) -> np.ndarray | None:
    """Per-class thresholds chosen on validation, in `class_names` order, or None."""
    path = model_dir_paths(model_dir)["thresholds"]
    if not tf.io.gfile.exists(path):
        return None
    values = read_json(path)
    return np.array([values[name] for name in class_names], np.float32)


def load_model(path: str) -> keras.Model:
    """Loads a `.keras` checkpoint (local or GCS) with a clear error when it is missing."""
    if not tf.io.gfile.exists(path):
        raise ValueError(f"No model at {path}: expected a .keras file written by launch.train.")
    return keras.models.load_model(path)


def best_validation_loss(history_path: str) -> float | None:
    """The best `val_loss` of the epochs already run, so a resumed run keeps its best model."""
    if not tf.io.gfile.exists(history_path):
        return None
    with tf.io.gfile.GFile(history_path) as file:
        losses = [float(row["val_loss"]) for row in csv.DictReader(file) if row.get("val_loss")]
    finite = [loss for loss in losses if math.isfinite(loss)]
    return min(finite) if finite else None
