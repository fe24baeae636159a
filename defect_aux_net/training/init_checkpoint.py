"""Starting a run from a trained run's weights: fine-tuning on the next product.

A model trained on one product is the best start for the next, which often has only a
few images. Every layer whose name and weight shapes match is copied; a layer whose
shapes differ (the last layer of each head when the class count changes, `conv1`
when the channels change) or that the checkpoint lacks keeps its initialisation, as
Detectron2 and Ultralytics load checkpoints. The optimizer starts afresh.
"""

import collections
import dataclasses
import json
import os
import zipfile

import keras
import tensorflow as tf

from defect_aux_net.config import DefectAuxNetConfig
from defect_aux_net.models.model_builders import MODELS
from defect_aux_net.config_errors import ConfigError
from defect_aux_net.training.run_files import load_model, model_dir_paths


def checkpoint_file(init_checkpoint: str) -> str:
    """The `.keras` file of `init_checkpoint`: a run folder's `best.keras`, or the file.

    Raises:
      ValueError: naming init_checkpoint when it is neither.
    """
    if tf.io.gfile.isdir(init_checkpoint):
        path = model_dir_paths(init_checkpoint)["best"]
        if not tf.io.gfile.exists(path):
            raise ValueError(
                f"init_checkpoint {init_checkpoint!r} is a folder without best.keras: not "
                "a launch.train model_dir, or a run that has not finished an epoch yet."
            )
        return path
    if not tf.io.gfile.exists(init_checkpoint):
        raise ValueError(
            f"init_checkpoint {init_checkpoint!r} does not exist; give a launch.train "
            "model_dir or a .keras file."
        )
    if not init_checkpoint.endswith(".keras"):
        raise ValueError(
            f"init_checkpoint {init_checkpoint!r} is not a .keras file; give a "
            "launch.train model_dir or a .keras file (Model.save)."
        )
    return init_checkpoint


def checkpoint_config(path: str):
    """The model config stored in the `.keras` file `path`, read without building it.

    Raises:
      ValueError: naming `path` when it is not a saved model of `model_builders.MODELS`.
    """
    config_classes = {entry.model_class.__name__: entry.config_class for entry in MODELS.values()}
    try:
        with tf.io.gfile.GFile(path, "rb") as file, zipfile.ZipFile(file) as archive:
            saved = json.loads(archive.read("config.json"))
        return config_classes[saved["class_name"]](**saved["config"]["config"])
    except (zipfile.BadZipFile, tf.errors.OpError, KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"init_checkpoint {path} is not a saved model of this library "
            f"({', '.join(MODELS)}) ({type(error).__name__}: {error})."
        ) from error


def check_init_checkpoint(model_config: DefectAuxNetConfig, init_checkpoint: str):
    """ConfigError naming input_normalization if `init_checkpoint` cannot start `model_config`.

    The checkpoint's weights were trained on its input normalisation; a run that
    feeds them another would start from weights that see different images.
    """
    stored = checkpoint_config(checkpoint_file(init_checkpoint))
    theirs, ours = stored.resolved_input_normalization, model_config.resolved_input_normalization
    if theirs != ours:
        field = "DefectAuxNetConfig.input_normalization"
        raise ConfigError(
            field,
            f"init_checkpoint {init_checkpoint!r} was trained on input_normalization="
            f"{theirs!r} images, this model takes {ours!r}: set {field}={theirs} to "
            "fine-tune it.",
        )


@dataclasses.dataclass(frozen=True)
class WeightTransfer:
    """What `copy_matching_weights` did, layer by layer (layer paths as in `Variable.path`).

    Attributes:
      copied: layers whose weights were copied, by group (the backbone or a head).
      reinitialised: `(layer, reason)` of layers that kept their initialisation, by group.
      unused: checkpoint layers this model has no layer of that name for, by group.
    """

    copied: dict
    reinitialised: dict
    unused: dict

    def summary(self, source: str) -> str:
        """Lines for the log: per group, how many layers were copied, and what was not, why."""
        copied = sum(len(layers) for layers in self.copied.values())
        kept = sum(len(layers) for layers in self.reinitialised.values())
        lines = [f"Initialised from {source}: copied {copied} of {copied + kept} layers."]
        for group in dict.fromkeys([*self.copied, *self.reinitialised]):
            done, left = self.copied.get(group, []), self.reinitialised.get(group, [])
            line = f"  {group}: {len(done)} of {len(done) + len(left)} layers copied"
            if left:
                line += "; re-initialised: " + "; ".join(f"{n} ({why})" for n, why in left)
            lines.append(line)
        if self.unused:
            unused = ", ".join(f"{group} ({len(layers)})" for group, layers in self.unused.items())
            lines.append(f"  Checkpoint layers not in this model, unused: {unused}")
        return "\n".join(lines)


def copy_matching_weights(source: keras.Model, target: keras.Model) -> WeightTransfer:
    """Copies every layer of `source` into the `target` layer of the same name and shapes.

    Layers are matched by their variables' paths (`conv1_conv/kernel`,
    `class_head/output/bias`: explicit names, the same in every build). A layer is
    copied whole or not at all: a conv whose kernel shape differs keeps its bias too.
    """
    source_layers = _layer_variables(source)
    target_layers = _layer_variables(target)
    groups = _groups(target)
    copied, reinitialised = collections.defaultdict(list), collections.defaultdict(list)
    for layer, variables in target_layers.items():
        group = groups[id(variables[0])]
        theirs = source_layers.get(layer)
        reason = None
        if theirs is None:
            reason = "not in the checkpoint"
        else:
            shapes = {v.path.rsplit("/", 1)[1]: tuple(v.shape) for v in theirs}
            for variable in variables:
                name = variable.path.rsplit("/", 1)[1]
                if shapes.get(name) != tuple(variable.shape):
                    reason = (
                        f"{name} {list(shapes[name]) if name in shapes else 'missing'} in "
                        f"the checkpoint, {list(variable.shape)} here"
                    )
                    break
        if reason is not None:
            reinitialised[group].append((layer, reason))
            continue
        values = {v.path: v for v in theirs}
        for variable in variables:
            variable.assign(values[variable.path].value)
        copied[group].append(layer)
    unused, source_groups = collections.defaultdict(list), _groups(source)
    for layer, variables in source_layers.items():
        if layer not in target_layers:
            unused[source_groups[id(variables[0])]].append(layer)
    return WeightTransfer(dict(copied), dict(reinitialised), dict(unused))


def initialize_from_checkpoint(model: keras.Model, init_checkpoint: str) -> WeightTransfer:
    """Copies the matching layers of `init_checkpoint` (run folder or `.keras`) into `model`."""
    path = checkpoint_file(init_checkpoint)
    return copy_matching_weights(load_model(path), model)


def check_outside(init_checkpoint: str, model_dir: str):
    """Raises ConfigError when `init_checkpoint` lies in `model_dir`, which `overwrite` clears."""
    checkpoint = os.path.normpath(os.path.abspath(checkpoint_file(init_checkpoint)))
    if checkpoint.startswith(os.path.normpath(os.path.abspath(model_dir)) + os.sep):
        raise ConfigError(
            "ExperimentConfig.init_checkpoint",
            f"ExperimentConfig.init_checkpoint={init_checkpoint!r} lies in model_dir="
            f"{model_dir}, which overwrite=True deletes before training: copy it "
            "elsewhere, or train into another model_dir.",
        )


def _layer_variables(model: keras.Model) -> dict:
    """`{layer path: [variables]}` in the model's order (a variable's path less its name)."""
    layers = {}
    for variable in model.weights:
        layers.setdefault(variable.path.rsplit("/", 1)[0], []).append(variable)
    return layers


def _groups(model: keras.Model) -> dict:
    """`{id(variable): group}`: "backbone" for a nested model's, else the top-level layer."""
    groups = {}
    for layer in model.layers:
        group = "backbone" if isinstance(layer, keras.Model) else layer.name
        for variable in layer.weights:
            groups[id(variable)] = group
    return groups
