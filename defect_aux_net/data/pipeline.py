"""TPU-ready input pipeline: TFDS split -> static-shape batches for training and evaluation.

Everything after reading runs as TF graph ops (no `py_function`), so it runs on
TPU hosts; shapes are static (boxes padded, `drop_remainder` for training);
each host reads its own shard through `tf.distribute.InputContext`.
"""

import dataclasses
from typing import Optional

import tensorflow as tf
import tensorflow_datasets as tfds

from defect_aux_net.config import DefectAuxNetConfig
from defect_aux_net.data import mixed_supervision, preprocessing
from defect_aux_net.data.augmentation import AUGMENTATIONS, build_augmenter
from defect_aux_net.data.distance_weights import distance_transform_weights
from defect_aux_net.data.holdout import parse_split
from defect_aux_net.data.negative_sampling import frequency_of_use_dataset
from defect_aux_net.data.splits import read_split
from defect_aux_net.data.weighted_augmentation import (
    DEFAULT_OPERATION_WEIGHTS,
    WeightedAugmenter,
    class_proportions,
    split_class_counts,
)
from defect_aux_net.detection.anchors import anchors_for_config
from defect_aux_net.detection.box_matching import encode_detection_targets


# How a detecting model takes its ground truth, said by its config's class attribute
# `detection_targets`: "anchors" (per-anchor deltas and classes, matched here once per
# example; one-stage detectors such as Defect-Aux-Net, the default) or "boxes" (the
# padded boxes and classes as they are: two-stage detectors match their anchors and
# sample RoIs from their own proposals inside the training step).
DETECTION_TARGETS = ("anchors", "boxes")


def detection_targets(config) -> str:
    """One of `DETECTION_TARGETS`: the targets a detecting model of `config` trains on."""
    kind = getattr(config, "detection_targets", "anchors")
    if kind not in DETECTION_TARGETS:
        raise ValueError(
            f"{type(config).__name__}.detection_targets must be one of {DETECTION_TARGETS}, "
            f"got {kind!r}."
        )
    return kind


@dataclasses.dataclass(frozen=True)
class InputOptions:
    """How a split is read and batched.

    Attributes:
      batch_size: global batch size (split over replicas by `InputContext`).
      training: shuffle, augment (unless `augment=False`), repeat forever and drop
        the last partial batch; otherwise read once, in order.
      seed: seed of file order, shuffling, augmentation and negative sampling.
      augment: augment the images; defaults to `training`.
      augmentation: which augmentation, one of `augmentation.AUGMENTATIONS`:
        "defect_aux_net" (`augmentation.Augmenter`) or "weighted" (the DeepLabV3+
        paper's random weighted augmentation, `weighted_augmentation`, with the class
        proportions of `split`).
      augmentation_weights: `W` of the weighted augmentation over its operations.
      segmentation_label_fraction: the fraction of defective images with a mask that
        keep it (`mixed_supervision`); the others train with their image labels only.
      drop_remainder: defaults to `training`; evaluation on TPU needs it too.
      negative_sampling_epochs: > 0 uses frequency-of-use sampling of defect-free
        images (two-stage paper) for that many epochs instead of plain shuffling.
      max_examples: at most this many examples of a training split will be read (per
        input pipeline); frequency-of-use sampling then builds only the epochs they
        reach. Nothing is cut: reading further repeats those epochs.
      distance_weights: `(positive_weight, power)` of the distance-transform weights
        of positive mask pixels (two-stage paper), or None for uniform weights.
      max_boxes: ground truth boxes per image after padding.
      shuffle_buffer: examples in the shuffle buffer.
      cache: keep decoded examples in memory after the first epoch (small sets).
      ground_truth: yield `(images, ground_truth)` for `Evaluator` instead of the
        `(images, targets, sample_weights)` that `fit` takes.
    """

    batch_size: int
    training: bool
    seed: int = 0
    augment: Optional[bool] = None
    augmentation: str = "defect_aux_net"
    augmentation_weights: tuple = DEFAULT_OPERATION_WEIGHTS
    segmentation_label_fraction: float = 1.0
    drop_remainder: Optional[bool] = None
    negative_sampling_epochs: int = 0
    max_examples: Optional[int] = None
    distance_weights: Optional[tuple] = None
    max_boxes: int = preprocessing.MAX_BOXES
    shuffle_buffer: int = 1024
    cache: bool = False
    ground_truth: bool = False

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}.")
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(
                f"Unknown augmentation {self.augmentation!r}; allowed: "
                f"{', '.join(AUGMENTATIONS)}."
            )
        if not 0 <= self.segmentation_label_fraction <= 1:
            raise ValueError(
                "segmentation_label_fraction must be in [0, 1], got "
                f"{self.segmentation_label_fraction}."
            )
        if self.max_examples is not None and self.max_examples < 1:
            raise ValueError(f"max_examples must be >= 1 or None, got {self.max_examples}.")
        if self.augment is None:
            object.__setattr__(self, "augment", self.training)
        if self.drop_remainder is None:
            object.__setattr__(self, "drop_remainder", self.training)


def prepare_example(features: dict, config: DefectAuxNetConfig, max_boxes: int) -> dict:
    """One TFDS example -> model-input-sized image, masks, padded boxes and flags.

    Returns:
      dict with `images` float32 `[H, W, C]` in [0, 1], `masks` float32 `[H, W, K]`,
      `boxes` float32 `[max_boxes, 4]` pixel yxyx, `box_classes` int32 `[max_boxes]`
      (-1 padding), `labels` float32 `[K]`, float32 flags `has_mask` and
      `has_boxes`, and bool `is_defective`.
    """
    image_size, channels = config.input_shape[:2], config.input_shape[2]
    boxes, box_classes = preprocessing.pad_boxes(
        features["objects"]["bbox"], features["objects"]["label"], image_size, max_boxes
    )
    return {
        "images": preprocessing.prepare_image(
            features["image"], image_size, channels, config.resolved_input_normalization
        ),
        "masks": preprocessing.prepare_mask(features["segmentation_mask"], image_size),
        "boxes": boxes,
        "box_classes": box_classes,
        "labels": tf.cast(features["labels"], tf.float32),
        "has_mask": tf.cast(features["has_mask"], tf.float32),
        "has_boxes": tf.cast(features["has_boxes"], tf.float32),
        "is_defective": features["is_defective"],
    }


def augment_example(index, example: dict, augmenter) -> dict:
    """Applies `augmenter` to image, masks and boxes together; `index` seeds it."""
    augmented = augmenter(
        index,
        {
            "images": example["images"],
            "segmentation_masks": example["masks"],
            "bounding_boxes": {"boxes": example["boxes"], "labels": example["box_classes"]},
            "labels": example["labels"],  # The weighted augmentation's probability.
        }
    )
    return example | {
        "images": augmented["images"],
        "masks": augmented["segmentation_masks"],
        "boxes": augmented["bounding_boxes"]["boxes"],
        "box_classes": augmented["bounding_boxes"]["labels"],
    }


def training_inputs(
    example: dict, config: DefectAuxNetConfig, anchors, distance_weights=None
) -> tuple:
    """An example -> `(images, targets, sample_weights)` as `DefectAuxNet.fit` takes.

    Sample weights are the annotation flags, so each task's loss skips the
    examples without its annotation (image labels are always known). Detection
    targets are per-anchor (`box_regression`, `box_classification` on `anchors`) or,
    for a config whose `detection_targets` is "boxes", the padded `boxes` (pixel yxyx)
    and `box_classes` (-1 padding) with `anchors` None.
    """
    targets, weights = {}, {}
    if "classification" in config.tasks:
        targets["classification"] = example["labels"]
        weights["classification"] = tf.constant(1.0)
    if "segmentation" in config.tasks:
        targets["segmentation"] = example["masks"]
        weights["segmentation"] = example["has_mask"]
        if distance_weights is not None:
            # On the masks the loss trains on: `SegDecConfig.dilation` dilates them.
            targets["segmentation_weights"] = distance_transform_weights(
                example["masks"], *distance_weights, dilation=getattr(config, "dilation", 1)
            )
    if "detection" in config.tasks and detection_targets(config) == "boxes":
        targets["boxes"] = example["boxes"]
        targets["box_classes"] = example["box_classes"]
        weights["boxes"] = example["has_boxes"]
        weights["box_classes"] = example["has_boxes"]
    elif "detection" in config.tasks:
        box_targets, class_targets = encode_detection_targets(
            example["boxes"],
            example["box_classes"],
            anchors,
            positive_iou=config.positive_iou,
            negative_iou=config.negative_iou,
        )
        targets["box_regression"] = box_targets
        targets["box_classification"] = class_targets
        weights["box_regression"] = example["has_boxes"]
        weights["box_classification"] = example["has_boxes"]
    return example["images"], targets, weights


def evaluation_inputs(example: dict) -> tuple:
    """An example -> `(images, ground_truth)` with the keys `Evaluator.update` reads."""
    ground_truth = {
        "labels": example["labels"],
        "masks": example["masks"],
        "has_mask": example["has_mask"] > 0,
        "boxes": example["boxes"],
        "box_classes": example["box_classes"],
        "has_boxes": example["has_boxes"] > 0,
    }
    return example["images"], ground_truth


def make_dataset(
    builder: tfds.core.DatasetBuilder,
    split: str,
    config: DefectAuxNetConfig,
    options: InputOptions,
    input_context: Optional[tf.distribute.InputContext] = None,
) -> tf.data.Dataset:
    """Batches of one split: training triples or `(images, ground_truth)` for evaluation.

    Args:
      builder: a prepared TFDS builder with the project's feature schema
        (`defect_aux_net.data.datasets.load_builder`); its data may be on GCS.
      split: TFDS split, slicing allowed (`"train[:25%]"`), or a holdout form of
        `defect_aux_net.data.holdout` (`"holdout(train,10%,seed=0)"`).
      config: the model's config: input size, channels, tasks, anchors.
      options: batching, shuffling, augmentation and sampling.
      input_context: this host's share when called through
        `strategy.distribute_datasets_from_function`: with several input
        pipelines each reads `tfds.even_splits(split)[input_pipeline_id]` (any
        number of files; equal counts when `drop_remainder`) and gets the
        per-replica batch size.
    """
    batch_size = options.batch_size
    num_hosts, host = 1, 0
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(options.batch_size)
        num_hosts, host = input_context.num_input_pipelines, input_context.input_pipeline_id
    spec = parse_split(split)
    if num_hosts > 1:
        # Each host reads its own contiguous share of the examples. TFDS's own
        # sharding (`ReadConfig(input_context=...)`) deals out whole files and
        # raises when a split has fewer files than hosts (small splits have one).
        # Dropping the remainder gives every host as many examples, hence batches
        # (before a holdout's filter, which may leave hosts a few examples apart).
        spec = dataclasses.replace(
            spec,
            tfds_split=tfds.even_splits(
                spec.tfds_split, n=num_hosts, drop_remainder=options.drop_remainder
            )[host],
        )
    dataset = read_split(
        builder,
        spec,
        # Frequency-of-use sampling needs the same order in every read (it
        # counts uses by position) and shuffles its epochs itself.
        shuffle_files=options.training and not options.negative_sampling_epochs,
        # No reshuffling per read: the training stream is a function of the seed,
        # however often the dataset is iterated (the example shuffle after
        # `repeat` still orders every epoch differently).
        read_config=tfds.ReadConfig(
            shuffle_seed=options.seed,
            shuffle_reshuffle_each_iteration=False,
            try_autocache=False,
        ),
    )
    if options.segmentation_label_fraction < 1:
        # Chosen over the whole split (`split`, not the host's share): the same images
        # on every host.
        segmented = mixed_supervision.label_only_table(
            mixed_supervision.segmented_image_ids(
                builder, split, options.segmentation_label_fraction, options.seed
            )
        )
        dataset = dataset.map(
            lambda features: mixed_supervision.drop_masks(features, segmented),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    dataset = dataset.map(
        lambda features: prepare_example(features, config, options.max_boxes),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if options.cache:
        dataset = dataset.cache()
    if options.training:
        if options.negative_sampling_epochs:
            # Covers every epoch; repeating only matters when a resumed run
            # restarts the iterator.
            dataset = frequency_of_use_dataset(
                dataset, options.negative_sampling_epochs, options.seed, options.max_examples
            )[0].repeat()
        else:
            dataset = dataset.repeat().shuffle(
                options.shuffle_buffer, seed=options.seed, reshuffle_each_iteration=False
            )
    if options.augment:
        augmenter = _augmenter(builder, split, options)
        # The example's position seeds its augmentation: reproducible, and different
        # in every epoch because `enumerate` counts across repeats. Positions are
        # interleaved over hosts so that no two hosts draw the same augmentations.
        dataset = dataset.enumerate().map(
            lambda index, example: augment_example(
                index * num_hosts + host, example, augmenter
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    if options.ground_truth:
        dataset = dataset.map(evaluation_inputs, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        # Only models that detect on per-anchor targets have anchors here.
        anchors = (
            tf.constant(anchors_for_config(config), tf.float32)
            if "detection" in config.tasks and detection_targets(config) == "anchors"
            else None
        )
        dataset = dataset.map(
            lambda example: training_inputs(
                example, config, anchors, options.distance_weights
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    dataset = dataset.batch(batch_size, drop_remainder=options.drop_remainder)
    data_options = tf.data.Options()
    data_options.deterministic = True
    # A pass that is read once is not autotuned: Keras `fit` destroys each validation
    # iterator at the next epoch's validation, and with autotuning on that waited beside
    # the running training pipeline (KolektorSDD: 0.6-20 s, 3.8 s on average, of a 21 s
    # epoch; none without it, validation no slower).
    data_options.autotune.enabled = options.training
    return dataset.with_options(data_options).prefetch(tf.data.AUTOTUNE)


def _augmenter(builder, split: str, options: InputOptions):
    """The augmentation `options` names, seeded; the weighted one with `split`'s
    class proportions (read over the whole split, the same on every host)."""
    if options.augmentation == "weighted":
        return WeightedAugmenter(
            options.seed,
            class_proportions(split_class_counts(builder, split)),
            options.augmentation_weights,
        )
    return build_augmenter(options.seed)


def distributed_dataset(strategy, builder, split, config, options):
    """`make_dataset` per host through `strategy.distribute_datasets_from_function`."""
    return strategy.distribute_datasets_from_function(
        lambda input_context: make_dataset(builder, split, config, options, input_context)
    )
