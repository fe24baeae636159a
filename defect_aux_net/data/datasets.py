"""Finding, building and describing the TFDS datasets the launch scripts train on."""

import dataclasses
import difflib
import importlib
import importlib.util
import pkgutil

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.data import splits

# Builders that generate their data: `load_builder` prepares them when missing.
SELF_GENERATING = ("synthetic_defects",)

# What `load_builder`'s errors name: the field its `name` comes from in a training run.
_FIELD = "ExperimentConfig.dataset"


@dataclasses.dataclass(frozen=True)
class SplitSummary:
    """What one split holds, read once on the host before training.

    Attributes:
      num_examples: images in the split.
      with_masks: images with a pixel mask annotation.
      with_boxes: images with box annotations.
      defective: images with at least one defect.
    """

    num_examples: int
    with_masks: int
    with_boxes: int
    defective: int


def load_builder(name: str, data_dir: str | None = None) -> tfds.core.DatasetBuilder:
    """Returns the prepared TFDS builder `name` ("dataset" or "dataset/config").

    Our builders in `tfds_builders/` are imported so TFDS knows them; other names
    go to the TFDS catalogue. Self-generating datasets are built when missing;
    the others need `tfds build` first (they need files the user downloads).

    Raises:
      ConfigError: naming `ExperimentConfig.dataset` (this `name`) when the name is
        unknown or not built.
    """
    base_name = name.split("/")[0].split(":")[0]
    ours = _import_our_builder(base_name)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError as error:
        # TFDS's message lists its whole catalogue: ours would scroll away.
        raise ConfigError(_FIELD, _unknown_dataset_message(name, base_name)) from error
    except ValueError as error:  # An unknown config, mostly.
        message = _unloadable_message(name, base_name, data_dir, error)
        raise ConfigError(_FIELD, message) from error
    if builder.is_prepared():
        return builder
    if base_name in SELF_GENERATING:
        builder.download_and_prepare()
        return builder
    # Without a config flag, `tfds build` builds every config of the builder; it takes
    # an empty `--config=` for none, so a config named "" is given by its index.
    config, config_flag = builder.builder_config, ""
    if config is not None and config.name:
        config_flag = f" --config={config.name}"
    elif config is not None:
        names = [each.name for each in type(builder).BUILDER_CONFIGS]
        config_flag = f" --config_idx={names.index(config.name)}"
    if ours:
        command = (
            f"tfds build tfds_builders/{base_name}{config_flag} --manual_dir=<your files> "
            f"--data_dir={builder.data_dir_root} (see tfds_builders/{base_name}/README.md)"
        )
    else:
        command = f"tfds build {base_name}{config_flag} --data_dir={builder.data_dir_root}"
    raise ConfigError(
        _FIELD,
        f"{_FIELD}={name!r} is not built in {builder.data_dir_root}. Build it first: "
        f"{command}.",
    )


def _our_builders() -> list:
    if importlib.util.find_spec("tfds_builders") is None:
        return []
    return sorted(
        module.name
        for module in pkgutil.iter_modules(importlib.import_module("tfds_builders").__path__)
        if module.ispkg
    )


def _unknown_dataset_message(name: str, base_name: str) -> str:
    ours = _our_builders()
    known = set(ours) | set(tfds.list_builders(with_community_datasets=False))
    close = difflib.get_close_matches(base_name, sorted(known), n=3, cutoff=0.8)
    suggestion = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    return (
        f"{_FIELD}={name!r}: no dataset {base_name!r}, neither among this project's "
        f"builders ({', '.join(ours)}) nor in the TFDS catalogue (tfds.list_builders())."
        f"{suggestion}"
    )


def _unloadable_message(name: str, base_name: str, data_dir, error: ValueError) -> str:
    config = name.split("/")[1].split(":")[0] if "/" in name else None
    try:
        configs = [config.name for config in tfds.builder_cls(base_name).BUILDER_CONFIGS]
    except tfds.core.DatasetNotFoundError:
        configs = []
    if config is not None and config not in configs:
        where = data_dir or tfds.core.constants.DATA_DIR
        known = f"its configs are {', '.join(configs)}" if configs else "it has no configs"
        return (
            f"{_FIELD}={name!r}: {base_name} has no config {config!r} ({known}) and "
            f"none of that name is built in {where}."
        )
    return f"{_FIELD}={name!r} cannot be loaded: {str(error).splitlines()[0]}"


def _import_our_builder(base_name: str) -> bool:
    """Imports `tfds_builders/<base_name>` so TFDS knows it; False if there is none."""
    if not base_name.isidentifier():
        return False
    if importlib.util.find_spec("tfds_builders") is None or importlib.util.find_spec(
        f"tfds_builders.{base_name}"
    ) is None:
        return False  # Not one of ours: a TFDS catalogue dataset.
    # Already registered when its module was imported under another name (by
    # `tfds build` or pytest); importing it again would register it twice.
    if base_name not in tfds.list_builders(with_community_datasets=False):
        # `tfds new` layout: the builder class is in <name>/<name>_dataset_builder.py
        # and the package's `__init__.py` is empty, so import the module itself.
        importlib.import_module(f"tfds_builders.{base_name}.{base_name}_dataset_builder")
    return True


def class_names(builder: tfds.core.DatasetBuilder) -> tuple:
    """The defect class names of a dataset with the project's feature schema."""
    return tuple(builder.info.features["objects"]["label"].names)


def summarize_split(builder: tfds.core.DatasetBuilder, split: str) -> SplitSummary:
    """Counts annotations and defective images of a split (reads flags, not images).

    `split` is a TFDS split or one of the holdout forms of `holdout.py`.
    """
    flags = splits.read_split(
        builder,
        split,
        decoders=splits.UNDECODED_IMAGES,
    ).map(
        lambda example: tf.stack(
            [example["has_mask"], example["has_boxes"], example["is_defective"]]
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    counts = np.zeros(3, np.int64)
    num_examples = 0
    for batch in flags.batch(4096).as_numpy_iterator():
        counts += batch.sum(axis=0)
        num_examples += len(batch)
    return SplitSummary(num_examples, *(int(count) for count in counts))


def check_tasks(tasks: tuple, summary: SplitSummary, dataset: str, split: str):
    """Raises a ConfigError naming `DefectAuxNetConfig.tasks` when a task lacks annotations."""
    field = "DefectAuxNetConfig.tasks"
    for task, count, annotation in (
        ("segmentation", summary.with_masks, "a mask"),
        ("detection", summary.with_boxes, "boxes"),
    ):
        if task in tasks and count == 0:
            raise ConfigError(
                field,
                f"{field} includes {task} but {dataset} {split} has no image with "
                f"{annotation}; drop {task} from {field}.",
            )
