"""What a training run writes to its `model_dir`, and reading it back.

Paths go through `tf.io.gfile`, so `model_dir` may be on GCS (Cloud TPU). Every file
is written whole (`atomic_writes`): a kill leaves the previous version or none.
"""

import csv
import dataclasses
import json
import math
import os

import keras
import tensorflow as tf
from absl import logging

from defect_aux_net import atomic_writes
from defect_aux_net.config_errors import ConfigError
from defect_aux_net.experiments import ExperimentConfig
from defect_aux_net.models.model_builders import config_class

# The states of a model_dir for a run about to start (`model_dir_state`).
NEW, RESUME, COMPLETE = "new", "resume", "complete"


def model_dir_paths(model_dir: str) -> dict:
    """Where a run writes what, relative to `model_dir`."""
    return {
        "config": os.path.join(model_dir, "config.json"),
        "backup": os.path.join(model_dir, "backup"),
        "best": os.path.join(model_dir, "best.keras"),
        "history": os.path.join(model_dir, "history.csv"),
        # The training curves of history.csv, redrawn after each epoch.
        "results": os.path.join(model_dir, "results.png"),
        "logs": os.path.join(model_dir, "logs"),
        "thresholds": os.path.join(model_dir, "thresholds.json"),
        # TF Serving's --model_base_path: numbered versions 1, 2, ... inside.
        "export": os.path.join(model_dir, "export"),
        # Written last, when everything else is: the run is complete.
        "complete": os.path.join(model_dir, "complete.json"),
    }


def write_json(value, path: str):
    atomic_writes.write_json(path, value)


def read_json(path: str):
    """The JSON in `path`. Raises ValueError naming the file when it is not valid JSON."""
    with tf.io.gfile.GFile(path) as file:
        text = file.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} is not valid JSON ({error}; {len(text)} bytes): truncated or edited?"
        ) from error


def config_dict(experiment: ExperimentConfig, class_names) -> dict:
    """The resolved configuration as config.json holds it."""
    # Through JSON, so tuples compare equal to the lists read back.
    return json.loads(json.dumps(experiment.to_dict() | {"class_names": list(class_names)}))


def write_config(experiment: ExperimentConfig, class_names, path: str):
    """Writes the resolved configuration (what actually ran) as JSON."""
    write_json(config_dict(experiment, class_names), path)


def has_config(model_dir: str) -> bool:
    return tf.io.gfile.exists(model_dir_paths(model_dir)["config"])


def is_complete(model_dir: str) -> bool:
    """Whether `model_dir` holds a complete run (`write_completion`), of any configuration."""
    return tf.io.gfile.exists(model_dir_paths(model_dir)["complete"])


# Fields added to the configs after run folders were first written, and the class
# that has them: a config.json without them gets their defaults, which are what runs
# did before (Adam's one cycle, Defect-Aux-Net, min-max input, no budget), so older
# runs still load, resume and compare equal. Any other missing field is an error.
_ADDED_FIELDS = (
    ("init_checkpoint", "time_budget", "early_stopping_patience", "recipe", "model_name",
     "optimizer", "augmentation", "augmentation_weights", "segmentation_label_fraction",
     "batch_norm_images", "weight_decay", "lr_range_test", "ema_momentum"),
    ("input_normalization", "p2_output_conv", "batch_reduction"),
)


def _defaults_filled(values):
    """config.json's values with the defaults of the `_ADDED_FIELDS` they lack."""
    if not isinstance(values, dict):
        return values

    def filled(dictionary, config_class, names):
        defaults = {
            field.name: field.default
            for field in dataclasses.fields(config_class)
            if field.name in names and field.name not in dictionary
        }
        # Through JSON, as config.json holds them (tuples as lists).
        return json.loads(json.dumps(defaults)) | dictionary

    experiment_fields, model_fields = _ADDED_FIELDS
    values = filled(values, ExperimentConfig, experiment_fields)
    try:
        model_config_class = config_class(values["model_name"])
    except ValueError:
        return values  # read_config names the unknown model.
    if isinstance(values.get("model"), dict):
        values["model"] = filled(values["model"], model_config_class, model_fields)
    return values


def read_stored_config(model_dir: str) -> dict:
    """The values of `model_dir`'s config.json, with the defaults of `_ADDED_FIELDS` it
    lacks: what a rerun compares itself with."""
    return _defaults_filled(read_json(model_dir_paths(model_dir)["config"]))


def _check_fields(values, config_class, path: str, where: str, extra=()):
    """Raises ValueError naming `path` unless `values` holds exactly the class's fields."""
    if not isinstance(values, dict):
        raise ValueError(f"{path}: {where} must be a JSON object, got {values!r}.")
    expected = {field.name for field in dataclasses.fields(config_class)} | set(extra)
    missing, unknown = sorted(expected - set(values)), sorted(set(values) - expected)
    if missing or unknown:
        raise ValueError(
            f"{path} is incomplete or not a launch.train config: {where} lacks "
            f"{missing or 'nothing'} and has unknown fields {unknown or 'none'}."
        )


def read_config(model_dir: str) -> tuple:
    """`(ExperimentConfig, class_names)` of the run in `model_dir`.

    Raises:
      ValueError: naming config.json when it is missing, not JSON, or incomplete.
    """
    path = model_dir_paths(model_dir)["config"]
    if not tf.io.gfile.exists(path):
        raise ConfigError(
            "model_dir",
            f"model_dir={model_dir} is not the folder of a training run: {path} does not "
            "exist.",
        )
    values = _defaults_filled(read_json(path))
    _check_fields(values, ExperimentConfig, path, "the config", extra=("class_names",))
    try:
        model_config_class = config_class(values["model_name"])
    except ValueError as error:
        raise ValueError(f"{path}: model_name: {error}") from error
    _check_fields(values["model"], model_config_class, path, '"model"')
    class_names = values.pop("class_names")
    if not isinstance(class_names, list) or not all(isinstance(n, str) for n in class_names):
        raise ValueError(f"{path}: class_names must be a list of names, got {class_names!r}.")
    try:
        experiment = ExperimentConfig.from_dict(values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path} holds an invalid configuration: {error}") from error
    if experiment.model.num_classes != len(class_names):
        raise ValueError(
            f"{path}: model.num_classes is {experiment.model.num_classes} but class_names "
            f"names {len(class_names)} classes."
        )
    return experiment, tuple(class_names)


def config_differences(stored: dict, new: dict, prefix: str = "") -> list:
    """`"field: stored -> new"` for each field that differs, nested fields dotted."""
    differences = []
    for key in sorted(set(stored) | set(new)):
        old, value = stored.get(key), new.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            differences += config_differences(old, value, f"{prefix}{key}.")
        elif old != value:
            differences.append(f"{prefix}{key}: {json.dumps(old)} -> {json.dumps(value)}")
    return differences


def model_dir_state(
    model_dir: str, experiment: ExperimentConfig, class_names, overwrite: bool = False
) -> str:
    """Whether a run of `experiment` in `model_dir` is `NEW`, a `RESUME` or `COMPLETE`.

    A run resumes (after a kill) only with the configuration it started with; a
    complete run has `complete.json`, written after everything else. With `overwrite`,
    whatever is there is to be deleted (`clear_model_dir`): the run is `NEW`.

    Raises:
      ConfigError: naming `model_dir` and the differing fields, when `model_dir` holds
        another configuration's run and `overwrite` is False.
    """
    paths = model_dir_paths(model_dir)
    if overwrite or not tf.io.gfile.exists(paths["config"]):
        return NEW
    stored = read_stored_config(model_dir)
    differences = config_differences(stored, config_dict(experiment, class_names))
    if differences:
        raise ConfigError(
            "model_dir",
            f"model_dir={model_dir} holds a run of another configuration "
            f"({paths['config']}): {'; '.join(differences)}. Its best.keras, history and "
            "export belong to that run. Use a new model_dir, or overwrite=True to delete "
            "that run and start afresh.",
        )
    return COMPLETE if tf.io.gfile.exists(paths["complete"]) else RESUME


def clear_model_dir(model_dir: str):
    """Deletes the files of the run in `model_dir` (for `overwrite`); other files stay.

    Only what a run writes goes: a `model_dir` given by mistake (a home folder) keeps
    everything else.
    """
    paths = model_dir_paths(model_dir)
    run = [paths[name] for name in paths] + [os.path.join(model_dir, "workers")]
    run += tf.io.gfile.glob(os.path.join(model_dir, "metrics_*"))
    run += tf.io.gfile.glob(os.path.join(model_dir, f"*{atomic_writes.PARTIAL}*"))
    existing = [path for path in run if tf.io.gfile.exists(path)]
    if existing:
        logging.warning("Overwriting: deleting the run in %s", model_dir)
    for path in existing:
        if tf.io.gfile.isdir(path):
            tf.io.gfile.rmtree(path)
        else:
            tf.io.gfile.remove(path)


def write_completion(model_dir: str, outputs: dict):
    """Marks the run complete, listing its outputs; written last."""
    write_json({"outputs": outputs}, model_dir_paths(model_dir)["complete"])


def read_completion(model_dir: str) -> dict:
    """The outputs listed by `write_completion`."""
    return read_json(model_dir_paths(model_dir)["complete"])["outputs"]


def load_model(path: str) -> keras.Model:
    """Loads a `.keras` checkpoint (local or GCS); a clear error when it is missing or broken."""
    if not tf.io.gfile.exists(path):
        raise ValueError(f"No model at {path}: expected a .keras file written by launch.train.")
    try:
        return keras.models.load_model(path)
    except Exception as error:  # Keras raises zipfile, h5py, OS and value errors alike.
        raise ValueError(
            f"{path} cannot be loaded as a Keras model ({type(error).__name__}: {error}). "
            "Is it truncated? Rerun its training with the same configuration to write it "
            "again, or load another checkpoint."
        ) from error


def best_validation_loss(history_path: str) -> float | None:
    """The best `val_loss` of the epochs already run, so a resumed run keeps its best model."""
    if not tf.io.gfile.exists(history_path):
        return None
    with tf.io.gfile.GFile(history_path) as file:
        losses = [float(row["val_loss"]) for row in csv.DictReader(file) if row.get("val_loss")]
    finite = [loss for loss in losses if math.isfinite(loss)]
    return min(finite) if finite else None


def export_versions(export_base: str) -> list:
    """The complete export versions in `export_base` (TF Serving's base path), ascending.

    Only integer-named folders holding `saved_model.pb` count: a folder a killed export
    was writing has a partial name, and TF Serving ignores it as well.
    """
    if not tf.io.gfile.isdir(export_base):
        return []
    versions = []
    for name in tf.io.gfile.listdir(export_base):
        name = name.rstrip("/")
        if name.isdigit() and tf.io.gfile.exists(
            os.path.join(export_base, name, "saved_model.pb")
        ):
            versions.append(int(name))
    return sorted(versions)


def next_export_dir(export_base: str) -> str:
    """`<export_base>/<highest version + 1>` (1 first); removes what killed exports left."""
    names = tf.io.gfile.listdir(export_base) if tf.io.gfile.isdir(export_base) else []
    versions = [0]
    for name in (name.rstrip("/") for name in names):
        if atomic_writes.PARTIAL in name:
            tf.io.gfile.rmtree(os.path.join(export_base, name))
        elif name.isdigit():  # Complete or not, a version is never written twice.
            versions.append(int(name))
    return os.path.join(export_base, str(max(versions) + 1))


def latest_export(path: str) -> str:
    """The newest complete version in an export base (`<model_dir>/export`) or a model_dir.

    Raises:
      ValueError: when there is none.
    """
    base = model_dir_paths(path)["export"] if has_config(path) else path
    versions = export_versions(base)
    if not versions:
        raise ValueError(f"{base} holds no complete export (integer folders with saved_model.pb).")
    return os.path.join(base, str(versions[-1]))
