import dataclasses
import hashlib
import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image
from scipy import ndimage

from defect_aux_net.config import TASKS, DefectAuxNetConfig
from defect_aux_net.data.distance_weights import distance_transform_weights
from defect_aux_net.data.pipeline import (
    InputOptions,
    distributed_dataset,
    make_dataset,
    training_inputs,
)
from defect_aux_net.data.weighted_augmentation import split_class_counts
from defect_aux_net.detection.anchors import anchors_for_config
from defect_aux_net.detection.box_matching import encode_detection_targets
from defect_aux_net.models.defect_aux_net import build_defect_aux_net

from .synthetic_fixture import synthetic_small_builder

# The stored images are 128x128 grey: the pipeline halves them and repeats the channel.
CONFIG = DefectAuxNetConfig.from_preset("small", input_shape=(64, 64, 3))
ANCHORS = anchors_for_config(CONFIG)
# A small shuffle buffer: filling the default 1024 decodes two epochs of images.
SHUFFLE_BUFFER = 16
GROUND_TRUTH_KEYS = {"labels", "masks", "has_mask", "boxes", "box_classes", "has_boxes"}


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    return synthetic_small_builder(tmp_path_factory)


@pytest.fixture(scope="module")
def validation_examples(builder):
    """The raw TFDS validation examples, in stored order."""
    return list(tfds.as_numpy(builder.as_dataset(split="validation", shuffle_files=False)))


def expected_image(example):
    """Bilinear, antialiased 128 -> 64 resize (PIL's triangle filter), min-max, 3 channels."""
    grey = Image.fromarray(example["image"][..., 0].astype(np.float32), mode="F")
    image = np.asarray(grey.resize((64, 64), Image.BILINEAR))
    image = (image - image.min()) / (image.max() - image.min())
    return np.repeat(image[..., None], 3, axis=-1)


def expected_mask(example):
    # Nearest 128 -> 64 with half-pixel centres: output pixel i samples input floor(2i + 1).
    return example["segmentation_mask"][1::2, 1::2].astype(np.float32)


def image_key(image):
    return hashlib.sha256(np.asarray(image).tobytes()).hexdigest()


def first_batch(dataset):
    return tf.nest.map_structure(np.asarray, next(iter(dataset)))


def unbatched(dataset):
    return list(tfds.as_numpy(dataset.unbatch()))


@pytest.mark.parametrize(
    "tasks", [tasks for n in (1, 2, 3) for tasks in itertools.combinations(TASKS, n)]
)
def test_training_batches_have_fully_static_shapes(builder, tasks):
    config = dataclasses.replace(CONFIG, tasks=tasks)
    # Augmentation keeps shapes whatever the tasks (checked with all tasks below).
    options = InputOptions(batch_size=4, training=True, augment=False)
    dataset = make_dataset(builder, "train", config, options)

    images, targets, weights = dataset.element_spec
    assert all(spec.shape.is_fully_defined() for spec in tf.nest.flatten(dataset.element_spec))
    assert images.shape == (4, 64, 64, 3)
    shapes = {
        "classification": (4, 4),
        "segmentation": (4, 64, 64, 4),
        "box_regression": (4, len(ANCHORS), 4),
        "box_classification": (4, len(ANCHORS)),
    }
    outputs = {"detection": ("box_regression", "box_classification")}
    expected = {output for task in tasks for output in outputs.get(task, (task,))}
    assert {key: spec.shape for key, spec in targets.items()} == {
        key: shapes[key] for key in expected
    }
    assert {key: spec.shape for key, spec in weights.items()} == {key: (4,) for key in expected}


def test_training_batches_hold_augmented_images_in_unit_range(builder):
    options = InputOptions(batch_size=8, training=True, shuffle_buffer=SHUFFLE_BUFFER)
    dataset = make_dataset(builder, "train", CONFIG, options)

    images, targets, weights = first_batch(dataset)

    assert all(spec.shape.is_fully_defined() for spec in tf.nest.flatten(dataset.element_spec))
    assert images.min() >= 0.0 and images.max() <= 1.0 and images.max() > images.min()
    assert set(np.unique(targets["segmentation"])) <= {0.0, 1.0}
    np.testing.assert_array_equal(weights["segmentation"], np.ones(8))  # all have masks


@pytest.mark.parametrize("drop_remainder, sizes", [(True, [24] * 5), (False, [24] * 5 + [8])])
def test_batch_count_with_and_without_drop_remainder(builder, drop_remainder, sizes):
    options = InputOptions(batch_size=24, training=False, drop_remainder=drop_remainder)
    dataset = make_dataset(
        builder, "validation", dataclasses.replace(CONFIG, tasks=("classification",)), options
    )

    assert [len(images) for images, _, _ in dataset.as_numpy_iterator()] == sizes
    assert dataset.element_spec[0].shape[0] == (24 if drop_remainder else None)


def test_images_for_imagenet_weights_keep_their_intensities(builder, validation_examples):
    # The config's normalisation reaches the pipeline: no min-max stretch, just / 255.
    config = dataclasses.replace(CONFIG, input_normalization="caffe")
    dataset = make_dataset(builder, "validation", config, InputOptions(4, training=False))
    images = first_batch(dataset)[0]
    for image, example in zip(images, validation_examples[:4]):
        grey = Image.fromarray(example["image"][..., 0].astype(np.float32), mode="F")
        expected = np.asarray(grey.resize((64, 64), Image.BILINEAR)) / 255.0
        assert expected.max() - expected.min() < 0.9  # Min-max would differ.
        np.testing.assert_allclose(image, np.repeat(expected[..., None], 3, -1), atol=1e-5)


def test_targets_of_unaugmented_examples_equal_independent_ones(builder, validation_examples):
    options = InputOptions(batch_size=8, training=False)
    dataset = make_dataset(builder, "validation", CONFIG, options)

    images, targets, weights = first_batch(dataset)

    examples = validation_examples[:8]
    assert any(len(example["objects"]["label"]) for example in examples)
    for i, example in enumerate(examples):
        np.testing.assert_allclose(images[i], expected_image(example), atol=1e-5)
        np.testing.assert_array_equal(targets["classification"][i], example["labels"])
        np.testing.assert_array_equal(targets["segmentation"][i], expected_mask(example))
        # One padding row: the matcher needs a box even on defect-free images.
        box_targets, class_targets = encode_detection_targets(
            np.concatenate([example["objects"]["bbox"] * 64.0, np.zeros((1, 4))]),
            np.append(example["objects"]["label"], -1),
            ANCHORS,
            positive_iou=CONFIG.positive_iou,
            negative_iou=CONFIG.negative_iou,
        )
        np.testing.assert_allclose(targets["box_regression"][i], box_targets, atol=1e-5)
        np.testing.assert_array_equal(targets["box_classification"][i], class_targets)
    has_mask = [float(example["has_mask"]) for example in examples]
    has_boxes = [float(example["has_boxes"]) for example in examples]
    np.testing.assert_array_equal(weights["classification"], np.ones(8))
    np.testing.assert_array_equal(weights["segmentation"], has_mask)
    np.testing.assert_array_equal(weights["box_regression"], has_boxes)
    np.testing.assert_array_equal(weights["box_classification"], has_boxes)


@pytest.mark.parametrize("has_mask, has_boxes", [(0.0, 1.0), (1.0, 0.0)])
def test_sample_weights_are_the_annotation_flags(has_mask, has_boxes):
    boxes = np.zeros((5, 4), np.float32)
    boxes[0] = (6, 4, 36, 36)  # 30 x 32 pixels; best anchor (4, 4, 36, 36), IoU 0.94
    example = {
        "images": tf.zeros((64, 64, 3)),
        "masks": tf.zeros((64, 64, 4)),
        "boxes": tf.constant(boxes),
        "box_classes": tf.constant([2, -1, -1, -1, -1], tf.int32),
        "labels": tf.constant([0.0, 0.0, 1.0, 0.0]),
        "has_mask": tf.constant(has_mask),
        "has_boxes": tf.constant(has_boxes),
        "is_defective": tf.constant(True),
    }

    _, targets, weights = training_inputs(example, CONFIG, tf.constant(ANCHORS))

    assert {key: float(value) for key, value in weights.items()} == {
        "classification": 1.0,
        "segmentation": has_mask,
        "box_regression": has_boxes,
        "box_classification": has_boxes,
    }
    # By hand: IoU of every anchor with the box; positives at IoU >= 0.5 and the
    # best anchor, background below 0.4, ignored in between.
    corners = np.minimum(ANCHORS[:, 2:], boxes[0, 2:]) - np.maximum(ANCHORS[:, :2], boxes[0, :2])
    intersection = np.prod(np.clip(corners, 0.0, None), axis=1)
    anchor_areas = np.prod(ANCHORS[:, 2:] - ANCHORS[:, :2], axis=1)
    iou = intersection / (anchor_areas + 30 * 32 - intersection)
    positive = (iou >= 0.5) | (iou == iou.max())
    expected = np.where(positive, 2, np.where(iou < 0.4, -1, -2))
    np.testing.assert_array_equal(targets["box_classification"], expected)


def test_evaluation_reads_the_split_once_in_order_without_augmentation(
    builder, validation_examples
):
    options = InputOptions(batch_size=48, training=False, ground_truth=True)
    dataset = make_dataset(builder, "validation", CONFIG, options)

    batches = list(tfds.as_numpy(dataset))

    assert [len(images) for images, _ in batches] == [48, 48, 32]  # last one kept
    assert all(set(ground_truth) == GROUND_TRUTH_KEYS for _, ground_truth in batches)
    images = np.concatenate([images for images, _ in batches])
    truth = {
        key: np.concatenate([ground_truth[key] for _, ground_truth in batches])
        for key in GROUND_TRUTH_KEYS
    }
    for i, example in enumerate(validation_examples):
        np.testing.assert_allclose(images[i], expected_image(example), atol=1e-5)
        np.testing.assert_array_equal(truth["labels"][i], example["labels"])
        np.testing.assert_array_equal(truth["masks"][i], expected_mask(example))
        assert truth["has_mask"][i] == example["has_mask"]
        assert truth["has_boxes"][i] == example["has_boxes"]
        # Padded pixel boxes, largest first; classes -1 and zero boxes in padding.
        num_boxes = len(example["objects"]["label"])
        boxes = example["objects"]["bbox"] * 64.0
        order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        np.testing.assert_allclose(truth["boxes"][i, :num_boxes], boxes[order], rtol=1e-6)
        np.testing.assert_array_equal(
            truth["box_classes"][i, :num_boxes], example["objects"]["label"][order]
        )
        assert np.all(truth["box_classes"][i, num_boxes:] == -1)
        assert np.all(truth["boxes"][i, num_boxes:] == 0.0)
    assert truth["has_mask"].dtype == bool and truth["has_boxes"].dtype == bool


@pytest.mark.parametrize("training", [True, False])
def test_only_the_repeated_training_stream_is_autotuned(builder, training):
    # Destroying an autotuned evaluation iterator waits beside a training pipeline.
    options = InputOptions(batch_size=4, training=training)

    dataset = make_dataset(builder, "validation", CONFIG, options)

    assert dataset.options().autotune.enabled is training


def test_training_stream_is_a_function_of_the_seed(builder):
    options = InputOptions(batch_size=4, training=True, seed=3, shuffle_buffer=SHUFFLE_BUFFER)
    dataset = make_dataset(builder, "train", CONFIG, options)
    first = first_batch(dataset)

    # The same dataset read again, and the same pipeline built again.
    rebuilt = make_dataset(builder, "train", CONFIG, options)
    for batch in (first_batch(dataset), first_batch(rebuilt)):
        tf.nest.map_structure(np.testing.assert_array_equal, batch, first)
    other_seed = first_batch(
        make_dataset(builder, "train", CONFIG, dataclasses.replace(options, seed=4))
    )
    assert not np.array_equal(other_seed[0], first[0])
    # Same seed without augmentation: the same examples in the same order, other pixels.
    plain = first_batch(
        make_dataset(builder, "train", CONFIG, dataclasses.replace(options, augment=False))
    )
    np.testing.assert_array_equal(plain[1]["classification"], first[1]["classification"])
    assert not np.allclose(plain[0], first[0], atol=1e-3)


def test_weighted_augmentation_reads_the_class_shares_and_leaves_defect_free_images(
    builder, validation_examples
):
    labels = np.stack([example["labels"] for example in validation_examples])
    np.testing.assert_array_equal(
        split_class_counts(builder, "validation"), (labels > 0).sum(axis=0)
    )
    options = InputOptions(
        batch_size=8, training=True, seed=3, shuffle_buffer=SHUFFLE_BUFFER,
        augmentation="weighted",
    )
    # Its determinism is `weighted_augmentation_test`'s; here it runs in the pipeline.
    first = first_batch(make_dataset(builder, "validation[:16]", CONFIG, options))
    plain = first_batch(
        make_dataset(
            builder, "validation[:16]", CONFIG, dataclasses.replace(options, augment=False)
        )
    )
    np.testing.assert_array_equal(plain[1]["classification"], first[1]["classification"])
    changed = [not np.array_equal(a, b) for a, b in zip(plain[0], first[0])]
    defective = plain[1]["classification"].max(axis=1) > 0
    assert any(changed) and not any(np.asarray(changed) & ~defective)  # defect-free: as is


def test_each_input_pipeline_reads_its_own_half_of_a_one_file_split(builder):
    assert builder.info.splits["validation"].num_shards == 1  # TFDS cannot shard by file
    options = InputOptions(batch_size=8, training=False, ground_truth=True)
    unsharded = make_dataset(builder, "validation", CONFIG, options)
    everything = {image_key(image) for image, _ in unbatched(unsharded)}
    shards = []
    for pipeline_id in (0, 1):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2
        )
        dataset = make_dataset(builder, "validation", CONFIG, options, input_context=context)
        batch_sizes = [len(images) for images, _ in dataset.as_numpy_iterator()]
        assert batch_sizes == [4] * 16  # global 8 over 2 replicas
        shards.append({image_key(image) for image, _ in unbatched(dataset)})

    assert len(everything) == 128
    assert not shards[0] & shards[1]
    assert shards[0] | shards[1] == everything


def test_uneven_shards_drop_the_remainder_when_batches_do(builder):
    options = InputOptions(batch_size=3, training=False, drop_remainder=True)
    config = dataclasses.replace(CONFIG, tasks=("classification",))
    counts = []
    for pipeline_id in range(3):
        context = tf.distribute.InputContext(3, pipeline_id, 3)
        dataset = make_dataset(builder, "validation", config, options, input_context=context)
        counts.append(sum(len(images) for images, _, _ in dataset.as_numpy_iterator()))

    assert counts == [42, 42, 42]  # 128 // 3 each, as many batches on every host


def test_distributed_batches_train_the_small_model(builder):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    options = InputOptions(
        batch_size=2, training=True, shuffle_buffer=SHUFFLE_BUFFER, distance_weights=(2.0, 1.0)
    )
    dataset = distributed_dataset(strategy, builder, "train", CONFIG, options)
    with strategy.scope():
        model = build_defect_aux_net(CONFIG)
        model.compile(optimizer=keras.optimizers.SGD(1e-3), jit_compile=False)

    history = model.fit(dataset, steps_per_epoch=1, epochs=1, verbose=0)

    for key in ("loss", "classification_loss", "segmentation_loss", "detection_loss"):
        assert np.isfinite(history.history[key][0]), key


@pytest.mark.parametrize(
    "field, value",
    [("batch_size", 0), ("segmentation_label_fraction", 1.5), ("max_examples", 0)],
)
def test_input_options_name_the_wrong_field(field, value):
    with pytest.raises(ValueError, match=f"^{field} must be"):
        InputOptions(**{"batch_size": 2, "training": True, field: value})


def test_negative_sampling_alternates_and_shows_every_positive_each_epoch(
    builder, validation_examples
):
    config = dataclasses.replace(CONFIG, tasks=("classification",))
    options = InputOptions(batch_size=2, training=True, augment=False, negative_sampling_epochs=2)
    dataset = make_dataset(builder, "validation", config, options)
    unaugmented = make_dataset(
        builder, "validation", config, InputOptions(batch_size=128, training=False)
    )
    images, targets, _ = first_batch(unaugmented)
    defective = targets["classification"].any(axis=1)
    positives = {image_key(image) for image in images[defective]}
    negatives = {image_key(image) for image in images[~defective]}
    num_positives = len(positives)
    assert num_positives == sum(example["is_defective"] for example in validation_examples)

    # Two epochs of 2 x positives examples: positive, negative, positive, ...
    batches = list(dataset.take(2 * num_positives).as_numpy_iterator())

    for epoch in (batches[:num_positives], batches[num_positives:]):
        for images, targets, _ in epoch:
            np.testing.assert_array_equal(targets["classification"].any(axis=1), [True, False])
            assert image_key(images[1]) in negatives
        assert sorted(image_key(images[0]) for images, _, _ in epoch) == sorted(positives)


def test_distance_weights_follow_the_euclidean_distance_transform(builder):
    config = dataclasses.replace(CONFIG, tasks=("segmentation",))
    options = InputOptions(batch_size=16, training=False, distance_weights=(2.0, 1.0))

    _, targets, _ = first_batch(make_dataset(builder, "validation", config, options))

    masks, weights = targets["segmentation"], targets["segmentation_weights"]
    assert masks.any()
    np.testing.assert_array_equal(weights[masks == 0], 1.0)
    for mask, weight in zip(masks, weights):
        np.testing.assert_allclose(weight, distance_transform_weights(mask, 2.0, 1.0), rtol=1e-6)
        for k in range(mask.shape[-1]):
            if not mask[..., k].any():
                continue
            # scipy, with outside the image counted as background.
            distance = ndimage.distance_transform_edt(np.pad(mask[..., k], 1))[1:-1, 1:-1]
            expected = np.where(mask[..., k] > 0, 2.0 * distance / distance.max(), 1.0)
            np.testing.assert_allclose(weight[..., k], expected, rtol=1e-5)


def test_sliced_split_reads_a_quarter(builder):
    options = InputOptions(batch_size=64, training=False, ground_truth=True)

    dataset = make_dataset(builder, "train[:25%]", CONFIG, options)

    assert sum(len(images) for images, _ in dataset.as_numpy_iterator()) == 512 // 4
