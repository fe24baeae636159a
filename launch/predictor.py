"""The serving functions of an exported SavedModel or of a `.keras` checkpoint, and a
check of their outputs."""

import dataclasses
import os
from typing import Callable

import numpy as np
import tensorflow as tf

from defect_aux_net.export.serving import ServingModule
from defect_aux_net.training import run_files


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


def non_finite_outputs(outputs: dict) -> list:
    """The names of the floating outputs (numpy arrays) holding NaN or inf."""
    return [
        key
        for key, value in outputs.items()
        if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value))
    ]
