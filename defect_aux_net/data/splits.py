"""Reading a split string (TFDS's, or a holdout form of `holdout.py`) and checking it early."""

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.data.holdout import (
    Holdout,
    SplitSpec,
    parse_split,
    split_names,
    stratified_holdout,
    without_holdout,
)

# `(builder.data_dir, split)` -> image ids and strata: one read of a split per process.
_STRATA = {}

# Decoders that leave images and masks encoded: reads of labels and flags only.
UNDECODED_IMAGES = {
    "image": tfds.decode.SkipDecoding(),
    "segmentation_mask": tfds.decode.SkipDecoding(),
}


def check_split(builder: tfds.core.DatasetBuilder, split: str, field: str) -> SplitSpec:
    """Parses `split` and checks that the dataset has the splits and slices it names.

    Args:
      builder: the dataset.
      split: a TFDS split or a holdout form.
      field: the config field `split` comes from, e.g. `ExperimentConfig.train_split`.

    Raises:
      ConfigError: naming `field`, the dataset and the splits it has.
    """
    dataset = dataset_name(builder)
    available = ", ".join(sorted(builder.info.splits))
    try:
        spec = parse_split(split)
    except ValueError as error:
        raise ConfigError(field, f"{field}={split!r}: {error}") from error
    tfds_splits = [spec.tfds_split] + ([spec.holdout.split] if spec.holdout else [])
    for tfds_split in tfds_splits:
        missing = sorted(split_names(tfds_split) - set(builder.info.splits))
        if missing:
            raise ConfigError(
                field,
                f"{field}={split!r}: {dataset} has no split {', '.join(missing)}; its "
                f"splits are {available}.",
            )
        try:
            builder.info.splits[tfds_split]  # Raises for bad slices.
        except ValueError as error:
            detail = " ".join(str(error).split())  # TFDS's message spans lines.
            raise ConfigError(
                field, f"{field}={split!r}: {detail} ({dataset} has {available})."
            ) from error
    return spec


def dataset_name(builder: tfds.core.DatasetBuilder) -> str:
    """`name/config` of a builder, as `ExperimentConfig.dataset` names it."""
    return builder.info.full_name.rsplit("/", 1)[0]


def resolve_validation_split(
    builder: tfds.core.DatasetBuilder, validation_split: str, train_split: str
) -> str:
    """The validation split a run reads, checked.

    "validation", the presets' default, on a dataset without one becomes a stratified
    holdout of `train_split` (logged): datasets with only train and test splits train
    with the presets' defaults. Any other split must exist.
    """
    if validation_split == "validation" and "validation" not in builder.info.splits:
        check_split(builder, train_split, "ExperimentConfig.train_split")
        return str(default_holdout(builder, train_split))
    check_split(builder, validation_split, "ExperimentConfig.validation_split")
    return validation_split


def resolve_test_split(builder: tfds.core.DatasetBuilder, test_split: str | None) -> str | None:
    """The test split a run evaluates, checked; None for none.

    "test", the presets' default, on a dataset without one becomes None (logged): the
    run trains and reports no test metrics. Any other split must exist.
    """
    if test_split == "test" and "test" not in builder.info.splits:
        logging.warning(
            "%s has no test split (splits: %s): no test evaluation after training.",
            dataset_name(builder),
            ", ".join(sorted(builder.info.splits)),
        )
        return None
    if test_split:
        check_split(builder, test_split, "ExperimentConfig.test_split")
    return test_split or None


def default_holdout(builder: tfds.core.DatasetBuilder, train_split: str) -> Holdout:
    """The validation holdout of `train_split`, logged with what it holds.

    Raises:
      ConfigError: naming `ExperimentConfig.validation_split` when the split is too
        small to hold out.
    """
    holdout = Holdout(train_split)
    ids, strata = _ids_and_strata(builder, train_split)
    held = holdout_image_ids(builder, holdout)
    is_held = np.array([image_id in held for image_id in ids], bool)
    if not 0 < is_held.sum() < len(ids):
        raise ConfigError(
            "ExperimentConfig.validation_split",
            f"{dataset_name(builder)} has no validation split, and {holdout.percent:g}% "
            f"of the {len(ids)} images of {train_split} leaves none to validate or train "
            "on: set ExperimentConfig.validation_split.",
        )
    defective = np.array([stratum[0] for stratum in strata])
    logging.warning(
        "%s has no validation split (splits: %s): validation_split=%s holds out %d of the "
        "%d images of %s (%d of its %d defective ones), stratified by defect classes and "
        "seeded; training reads %s.",
        dataset_name(builder),
        ", ".join(sorted(builder.info.splits)),
        holdout,
        is_held.sum(),
        len(ids),
        train_split,
        defective[is_held].sum(),
        defective.sum(),
        without_holdout(train_split, holdout),
    )
    return holdout


def holdout_image_ids(builder: tfds.core.DatasetBuilder, holdout: Holdout) -> frozenset:
    """The `image_id`s `holdout` holds out of its split (read once per process).

    Strata are (defective, multi-hot classes), so defect-free images, each class and
    each mix of classes keep their share. Images that share an id stay together.
    """
    by_id = {}
    for image_id, stratum in zip(*_ids_and_strata(builder, holdout.split)):
        # A repeated id takes every class of its copies.
        previous = by_id.get(image_id, stratum)
        by_id[image_id] = tuple(max(pair) for pair in zip(previous, stratum))
    return frozenset(
        stratified_holdout(list(by_id), list(by_id.values()), holdout.percent, holdout.seed)
    )


def _ids_and_strata(builder, split: str) -> tuple:
    """`(image ids, (is_defective, *labels) per image)` of a TFDS split, in file order."""
    key = (builder.data_dir, split)
    if key in _STRATA:
        return _STRATA[key]
    dataset = builder.as_dataset(split=split, shuffle_files=False, decoders=UNDECODED_IMAGES).map(
        lambda example: (
            example["image_id"],
            tf.concat(
                [
                    tf.cast(example["is_defective"], tf.int32)[None],
                    tf.cast(example["labels"], tf.int32),
                ],
                axis=0,
            ),
        )
    )
    ids, strata = [], []
    for batch_ids, batch_strata in dataset.batch(4096).as_numpy_iterator():
        ids += [image_id.decode() for image_id in batch_ids]
        strata += [tuple(int(value) for value in row) for row in batch_strata]
    _STRATA[key] = ids, strata
    return ids, strata


def read_split(
    builder: tfds.core.DatasetBuilder, split: str | SplitSpec, **as_dataset_kwargs
) -> tf.data.Dataset:
    """`builder.as_dataset` of a split string, the holdout forms filtered by `image_id`."""
    spec = parse_split(split) if isinstance(split, str) else split
    dataset = builder.as_dataset(split=spec.tfds_split, **as_dataset_kwargs)
    if spec.holdout is None:
        return dataset
    ids = sorted(holdout_image_ids(builder, spec.holdout))
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(ids, tf.string), tf.ones(len(ids), tf.int64)
        ),
        default_value=0,
    )
    wanted = 1 if spec.held_out else 0
    return dataset.filter(lambda example: tf.equal(table.lookup(example["image_id"]), wanted))
