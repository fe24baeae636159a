"""The serving functions of a run folder, a SavedModel, an edge export or a `.keras` file.

Whatever the source, `serve_bytes` (string `[B]` encoded images) and `serve_float`
(float32 `[B, h, w, C]` raw pixels) return the serving outputs of `ServingModule`:
the graph's own for a SavedModel, a `ServingModule` around a `.keras` model, and for
an ONNX/LiteRT/OpenVINO export (whose graph holds the model only) the same
preprocessing and `decode_outputs` run eagerly around the format's runtime.
"""

import dataclasses
import os
from typing import Callable

import numpy as np
import tensorflow as tf

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.export.edge_runtimes import METADATA_FILE, load_edge_model
from defect_aux_net.export.precision import POLICIES, with_precision
from defect_aux_net.export.serving import (
    ServingModule,
    prepare_encoded_images,
    prepare_pixel_images,
)
from defect_aux_net.inference.postprocessing import decode_outputs
from defect_aux_net.models.model_builders import DEFAULT_MODEL, config_class
from defect_aux_net.training import run_files, thresholds_file


@dataclasses.dataclass(frozen=True)
class ServingFunctions:
    """A model's serving functions, and what their callers need to know.

    Attributes:
      serve_bytes: string `[B]` encoded images -> dict of serving outputs.
      serve_float: float32 `[B, h, w, channels]` pixels -> dict of serving outputs.
      channels: channels the model takes.
      class_names: the class names, in the model's class order.
      source: the file or folder the model was loaded from.
    """

    serve_bytes: Callable
    serve_float: Callable
    channels: int
    class_names: tuple
    source: str


def load_serving_functions(path: str, class_names=None, precision=None) -> ServingFunctions:
    """The `ServingFunctions` of the model at `path`.

    Args:
      path: a launch.train run folder (its latest SavedModel export, else its
        best.keras), an exported SavedModel folder, an ONNX/LiteRT/OpenVINO export
        folder (`edge_formats`) or a `.keras` checkpoint.
      class_names: class names for a `.keras` checkpoint or an edge export; None to
        read them (and the thresholds and image rule) from the run folder holding it
        (the file's folder or the one above), else `class_<i>`. A SavedModel holds
        its own.
      precision: None to compute as stored; "float32" or "bfloat16" (weights stored in
        bfloat16, for CPUs with avx512_bf16 or AMX) to rebuild a `.keras` checkpoint in that
        precision (a run folder then uses its best.keras). An export's precision was
        fixed when it was exported (`launch.export --precision`).

    Raises:
      ValueError: `path` is none of those, or `class_names` do not fit the model.
      ConfigError: naming `precision` when it is unknown or `path` is an export.
    """
    path = os.fspath(path)
    if precision is not None and precision not in POLICIES:
        raise ConfigError(
            "precision", f"precision must be one of {sorted(POLICIES)} or None, got {precision!r}."
        )
    if run_files.has_config(path) and precision is not None:
        path = run_files.model_dir_paths(path)["best"]
    elif run_files.has_config(path):
        try:
            path = run_files.latest_export(path)
        except ValueError:
            best = run_files.model_dir_paths(path)["best"]
            if not tf.io.gfile.exists(best):
                raise ValueError(
                    f"The run folder {path} holds neither a SavedModel export nor best.keras: "
                    "train it (launch.train) first."
                ) from None
            path = best
    if precision is not None and not path.endswith(".keras"):
        raise ConfigError(
            "precision",
            f"precision={precision!r} applies to .keras checkpoints and run folders; the "
            f"export {path} computes in the precision it was exported with "
            "(launch.export --precision).",
        )
    if tf.saved_model.contains_saved_model(path):
        if class_names is not None:
            raise ValueError(
                f"class_names are for .keras checkpoints and edge exports: the SavedModel "
                f"{path} holds its own."
            )
        return _saved_model_functions(path)
    if tf.io.gfile.exists(os.path.join(path, METADATA_FILE)):
        return _edge_functions(path, class_names)
    if path.endswith(".keras") and tf.io.gfile.exists(path):
        return _checkpoint_functions(path, class_names, precision)
    raise ValueError(
        f"{path} is not a model: expected a launch.train run folder, an exported SavedModel "
        "folder (with saved_model.pb), an ONNX/LiteRT/OpenVINO export folder (with "
        f"{METADATA_FILE}) or an existing .keras file."
    )


def _saved_model_functions(path):
    loaded = tf.saved_model.load(path)
    # Calling through `loaded` keeps it alive: it owns the signatures' variables.
    return ServingFunctions(
        lambda images: loaded.signatures["serving_default"](images=images),
        lambda images: loaded.signatures["serving_float"](images=images),
        int(loaded.channels.numpy()),
        tuple(name.decode() for name in loaded.class_names.numpy()),
        path,
    )


def _checkpoint_functions(path, class_names, precision=None):
    model = run_files.load_model(path)
    if precision is not None:
        model = with_precision(model, precision)
    class_names, thresholds, image_rule = _names_and_rules(
        path, model.config.num_classes, class_names
    )
    module = ServingModule(model, class_names, thresholds, image_rule=image_rule)
    return ServingFunctions(
        lambda images: module.serve_bytes(images=images),
        lambda images: module.serve_float(images=images),
        model.config.input_shape[2],
        class_names,
        path,
    )


def _edge_functions(path, class_names):
    edge_model = load_edge_model(path)
    # Exports written before segdec existed name no model: they hold a Defect-Aux-Net.
    model = edge_model.metadata.get("model_name", DEFAULT_MODEL)
    config = config_class(model)(**edge_model.metadata["config"])
    class_names, thresholds, image_rule = _names_and_rules(path, config.num_classes, class_names)
    image_spec = tf.TensorSpec([None, None, None, config.input_shape[2]], tf.float32)
    prepare_encoded = tf.function(
        lambda images: prepare_encoded_images(images, config),
        input_signature=[tf.TensorSpec([None], tf.string)],
    )
    prepare_pixels = tf.function(
        lambda images: prepare_pixel_images(images, config), input_signature=[image_spec]
    )

    def run(prepared):
        outputs = edge_model(prepared.numpy())
        results = decode_outputs(
            outputs, config, edge_model.anchors, thresholds, image_rule=image_rule
        )
        batch_size = len(prepared)
        results["class_names"] = tf.constant(np.tile(np.array(class_names)[None], (batch_size, 1)))
        return results

    return ServingFunctions(
        lambda images: run(prepare_encoded(images)),
        lambda images: run(prepare_pixels(images)),
        config.input_shape[2],
        class_names,
        path,
    )


def _names_and_rules(path, num_classes, class_names) -> tuple:
    """`(class_names, thresholds, image_rule)` of a checkpoint or edge export at `path`.

    Given names come with the default rule; otherwise all come from the run folder
    holding `path` (its folder or the one above), else `class_<i>`, None and None.
    """
    thresholds = image_rule = None
    if class_names is None:
        folder = os.path.dirname(os.path.normpath(path))
        for model_dir in (folder, os.path.dirname(folder)):
            if run_files.has_config(model_dir):
                config_path = run_files.model_dir_paths(model_dir)["config"]
                class_names = run_files.read_json(config_path)["class_names"]
                thresholds = thresholds_file.read_thresholds(model_dir, class_names)
                image_rule = thresholds_file.read_image_rule(model_dir)
                break
        else:
            class_names = [f"class_{index}" for index in range(num_classes)]
    class_names = tuple(class_names)
    if len(class_names) != num_classes:
        raise ValueError(
            f"Got {len(class_names)} class names ({','.join(class_names)}) for the "
            f"{num_classes} classes of {path}: give one per class."
        )
    return class_names, thresholds, image_rule
