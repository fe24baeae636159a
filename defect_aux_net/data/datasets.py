"""Finding, building and describing the TFDS datasets the launch scripts train on."""

import dataclasses
import importlib
import importlib.util

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

# Builders that generate their data: `load_builder` prepares them when missing.
SELF_GENERATING = ("synthetic_defects",)


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
      ValueError: naming `--dataset` when the name is unknown or not built.
    """
    base_name = name.split("/")[0].split(":")[0]
    ours = _import_our_builder(base_name)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except ValueError as error:  # DatasetNotFoundError, or an unknown config.
        raise ValueError(f"--dataset={name!r} cannot be loaded: {error}") from error
    if builder.is_prepared():
        return builder
    if base_name in SELF_GENERATING:
        builder.download_and_prepare()
        return builder
    # Without --config, `tfds build` builds every config of the builder.
    config = builder.builder_config
    config_flag = f" --config={config.name}" if config is not None else ""
    if ours:
        command = (
            f"tfds build tfds_builders/{base_name}{config_flag} --manual_dir=<your files> "
            f"--data_dir={builder.data_dir_root} (see tfds_builders/{base_name}/README.md)"
        )
    else:
        command = f"tfds build {base_name}{config_flag} --data_dir={builder.data_dir_root}"
    raise ValueError(
        f"--dataset={name!r} is not built in {builder.data_dir_root}. Build it first: "
        f"{command}."
    )


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
    """Counts annotations and defective images of a split (reads flags, not images)."""
    flags = builder.as_dataset(
        split=split,
        decoders={
            "image": tfds.decode.SkipDecoding(),
            "segmentation_mask": tfds.decode.SkipDecoding(),
        },
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
    """Raises a ValueError naming `--tasks` when the split lacks a task's annotations."""
    if "segmentation" in tasks and summary.with_masks == 0:
        raise ValueError(
            f"--tasks includes segmentation but {dataset} {split} has no image with a "
            "mask; drop segmentation from --tasks."
        )
    if "detection" in tasks and summary.with_boxes == 0:
        raise ValueError(
            f"--tasks includes detection but {dataset} {split} has no image with boxes; "
            "drop detection from --tasks."
        )
