"""Mixed supervision (Bozic et al. 2021, Table III): masks for some defective images only.

The paper trains the segmentation + decision network with N of the defective training
images segmented and the other defective images labelled per image only; defect-free
images count as segmented (their empty mask is known). The official code reads which
images are segmented from a fixed split file per N and skips the segmentation loss of
the others, the decision loss of every image still counts.

Here `segmentation_label_fraction` of the defective training images that have a mask
keep it, chosen by image id alone (seeded): the same images whatever the read order,
number of hosts or epoch. The others become label-only: `has_mask` 0, which every
model's segmentation loss reads as "no mask" (weight 0), and an empty mask, so that
their mask reaches no loss or sample weight.
"""

import hashlib

import tensorflow as tf

from defect_aux_net.data import splits


def segmented_image_ids(builder, split: str, fraction: float, seed: int) -> frozenset:
    """The `image_id`s of the defective, masked images of `split` that keep their masks.

    The ids are ordered by the SHA-256 of `"<seed>:<id>"` and the first
    `round(fraction * n)` of the n kept (halves round up), so the chosen set grows
    with `fraction` for a given seed. Copies of an id share its choice.

    Raises:
      ValueError: unless 0 <= fraction <= 1.
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}.")
    dataset = splits.read_split(builder, split, decoders=splits.UNDECODED_IMAGES).map(
        lambda example: (example["image_id"], example["is_defective"] & example["has_mask"])
    )
    candidates = set()
    for ids, masked in dataset.batch(4096).as_numpy_iterator():
        candidates.update(image_id.decode() for image_id in ids[masked])
    order = sorted(
        candidates, key=lambda image_id: hashlib.sha256(f"{seed}:{image_id}".encode()).digest()
    )
    return frozenset(order[: int(fraction * len(order) + 0.5)])


def label_only_table(image_ids) -> tf.lookup.StaticHashTable:
    """A table of the ids that keep their masks (1; others 0) for `drop_masks`."""
    ids = sorted(image_ids)
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(ids, tf.string), tf.ones(len(ids), tf.int64), tf.string, tf.int64
        ),
        default_value=0,
    )


def drop_masks(features: dict, segmented) -> dict:
    """A TFDS example with its mask dropped unless it is defect-free or in `segmented`.

    Args:
      features: a TFDS example of the project's schema (`datasets.features`).
      segmented: `label_only_table` of the ids that keep their masks.
    """
    label_only = features["is_defective"] & tf.equal(segmented.lookup(features["image_id"]), 0)
    return features | {
        "has_mask": features["has_mask"] & ~label_only,
        "segmentation_mask": tf.where(
            label_only,
            tf.zeros_like(features["segmentation_mask"]),
            features["segmentation_mask"],
        ),
    }
