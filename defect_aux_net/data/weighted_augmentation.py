"""Random weighted augmentation (DeepLabV3+ for steel defects, Nie et al., section 3.3).

The paper balances defect classes: with `P = [p_1 .. p_K]` each class's share of the
training set's defects, an image is augmented with probability `1 - p` of its class,
by one operation drawn with weights `W` from random crop, vertical flip and rotation
by a random angle, applied to the image and its masks together.

Our reading where the paper leaves details open:
- `p_k` is class k's share of the (image, class) pairs of the training split: the
  images showing class k over the sum of that count over classes (the labels give
  it without decoding a mask). An image with several classes takes its rarest one
  (highest `1 - p`); a defect-free image is not augmented (it has no class to balance).
- `W` is not given in the paper: equal weights unless configured.
- Random crop: our images are already at the model's input size, so the crop is a
  window of `crop_fraction` of the height and width at a uniform random position,
  resized back to the input size (bilinear image, nearest masks).
- Rotation: an angle uniform in +-`rotation` degrees (180: any angle), corners
  filled with 0 as in `augmentation.Augmenter`.
Boxes follow every operation as in `augmentation.transform_example`: the box around
the transformed corners (rotation: the box around the rotated box's four corners,
`augmentation.RandomRotation`), clipped to the image, dropped (label -1) when thinner
than `MIN_BOX_SIDE`.
"""

import numpy as np
import tensorflow as tf

from defect_aux_net.data import splits
from defect_aux_net.data.augmentation import RandomRotation, example_seed, transform_example

OPERATIONS = ("random_crop", "vertical_flip", "rotation")
# The paper names W without values.
DEFAULT_OPERATION_WEIGHTS = (1.0, 1.0, 1.0)
DEFAULT_CROP_FRACTION = 0.5
DEFAULT_ROTATION = 180.0  # degrees either way: "a random angle"


def class_proportions(class_counts) -> np.ndarray:
    """`P`: each class's count over the sum of the counts (float32, sums to 1).

    Raises:
      ValueError: for negative counts or no defect at all.
    """
    counts = np.asarray(class_counts, np.float64)
    if counts.ndim != 1 or (counts < 0).any() or counts.sum() <= 0:
        raise ValueError(
            "Random weighted augmentation needs per-class defect counts >= 0 with at least "
            f"one defect in the training split, got {counts.tolist()}."
        )
    return (counts / counts.sum()).astype(np.float32)


def split_class_counts(builder, split: str) -> np.ndarray:
    """int64 `[K]`: the images of `split` showing each class (one read of the labels)."""
    num_classes = len(builder.info.features["objects"]["label"].names)
    dataset = splits.read_split(builder, split, decoders=splits.UNDECODED_IMAGES)
    return (
        dataset.map(lambda example: tf.cast(example["labels"] > 0, tf.int64))
        .reduce(tf.zeros([num_classes], tf.int64), lambda total, present: total + present)
        .numpy()
    )


def augmentation_probability(labels, proportions):
    """`1 - p` of the rarest class of an image's `[K]` labels; 0 when it has none."""
    proportions = tf.constant(proportions, tf.float32)
    present = tf.cast(labels, tf.float32) > 0.5
    return 1.0 - tf.reduce_min(tf.where(present, proportions, 1.0))


def check_operation_weights(weights) -> tuple:
    """`W` as floats; ValueError unless three values >= 0 with a positive sum."""
    try:
        weights = tuple(float(weight) for weight in weights)
    except (TypeError, ValueError):
        weights = ()
    if len(weights) != len(OPERATIONS) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(
            f"operation weights must be {len(OPERATIONS)} numbers >= 0 with a positive sum, "
            f"one per operation of {OPERATIONS}."
        )
    return weights


class WeightedAugmenter:
    """Augments an image by one weighted random operation with its class's probability.

    Call it on `(index, example)` as `augmentation.Augmenter`: `example` has its keys
    plus `labels` (float `[K]` multi-hot image labels). An example's augmentation
    depends only on `(seed, index)` (stateless draws): whether it is augmented, which
    operation, and the operation's own draws.

    Example:

    ```python
    proportions = class_proportions(split_class_counts(builder, "train"))
    dataset = dataset.enumerate().map(WeightedAugmenter(0, proportions))
    ```

    Args:
      seed: integer seed of the whole augmentation.
      proportions: `P`, float `[K]` (`class_proportions`).
      operation_weights: `W` over `OPERATIONS` (normalised here).
      crop_fraction: side of the crop window as a fraction of the image's, in (0, 1].
      rotation: largest rotation in degrees, in (0, 180].
    """

    def __init__(
        self,
        seed: int,
        proportions,
        operation_weights=DEFAULT_OPERATION_WEIGHTS,
        crop_fraction: float = DEFAULT_CROP_FRACTION,
        rotation: float = DEFAULT_ROTATION,
    ):
        if not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}.")
        if not 0 < crop_fraction <= 1:
            raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}.")
        if not 0 < rotation <= 180:
            raise ValueError(f"rotation must be in (0, 180] degrees, got {rotation}.")
        self.seed = seed
        self.proportions = np.asarray(proportions, np.float32)
        weights = np.asarray(check_operation_weights(operation_weights), np.float64)
        self.operation_weights = weights / weights.sum()
        self.operations = (
            _RandomCrop(crop_fraction),
            _VerticalFlip(),
            RandomRotation(
                rotation / 360.0,
                fill_mode="constant",
                fill_value=0.0,
                bounding_box_format="xyxy",
                dtype="float32",  # A global mixed-precision policy must not reach tf.data.
            ),
        )

    def __call__(self, index, example: dict) -> dict:
        """Returns `example`, augmented or not, with the seed of `(self.seed, index)`."""
        if "labels" not in example:
            raise ValueError(
                f"WeightedAugmenter needs the image labels, key 'labels', got {sorted(example)}."
            )
        if example["labels"].shape[-1] != len(self.proportions):
            raise ValueError(
                f"labels have {example['labels'].shape[-1]} classes, the proportions "
                f"{len(self.proportions)}."
            )
        choice = self.operation_index(index, example["labels"])
        operation_seed = tf.random.experimental.stateless_fold_in(
            example_seed(self.seed, index), 2
        )
        return tf.switch_case(
            choice + 1,
            [lambda: example]
            + [
                lambda layer=layer: transform_example([layer], operation_seed, example)
                for layer in self.operations
            ],
        )

    def operation_index(self, index, labels):
        """int32: the position in `OPERATIONS` of the operation the example at `index`
        with image `labels` gets, or -1 when it is not augmented."""
        seed = example_seed(self.seed, index)
        fold = tf.random.experimental.stateless_fold_in
        augmented = tf.random.stateless_uniform([], fold(seed, 0)) < augmentation_probability(
            labels, self.proportions
        )
        # log(0) = -inf: an operation of weight 0 is never drawn.
        logits = tf.math.log(tf.constant(self.operation_weights, tf.float32))[None]
        operation = tf.random.stateless_categorical(logits, 1, fold(seed, 1), tf.int32)[0, 0]
        return tf.where(augmented, operation, -1)


class _RandomCrop:
    """A window of `fraction` of each side at a uniform random position, resized back.

    Has the methods of Keras' image-preprocessing layers that `transform_example` calls.
    """

    def __init__(self, fraction: float):
        self.fraction = fraction

    def get_random_transformation(self, data, training=True, seed=None):
        height, width = data["images"].shape[0], data["images"].shape[1]
        crop_height = max(1, round(height * self.fraction))
        crop_width = max(1, round(width * self.fraction))
        top = tf.random.stateless_uniform([], seed.next(), 0, height - crop_height + 1, tf.int32)
        left = tf.random.stateless_uniform([], seed.next(), 0, width - crop_width + 1, tf.int32)
        return {
            "top": top, "left": left, "crop": (crop_height, crop_width), "size": (height, width)
        }

    def _crop(self, values, transformation, method):
        crop_height, crop_width = transformation["crop"]
        window = tf.image.crop_to_bounding_box(
            values, transformation["top"], transformation["left"], crop_height, crop_width
        )
        return tf.image.resize(window, transformation["size"], method=method)

    def transform_single_image(self, images, transformation):
        return self._crop(images, transformation, "bilinear")

    def transform_single_segmentation_mask(self, masks, transformation):
        return self._crop(masks, transformation, "nearest")

    def transform_single_bounding_box(self, bounding_boxes, transformation):
        # xyxy pixel edges: the window's edges map to the image's.
        (crop_height, crop_width), (height, width) = transformation["crop"], transformation["size"]
        left = tf.cast(transformation["left"], tf.float32)
        top = tf.cast(transformation["top"], tf.float32)
        origin = tf.stack([left, top, left, top])
        scale = tf.constant([width / crop_width, height / crop_height] * 2, tf.float32)
        upper = tf.constant([width, height] * 2, tf.float32)
        boxes = (tf.cast(bounding_boxes["boxes"], tf.float32) - origin) * scale
        return {**bounding_boxes, "boxes": tf.clip_by_value(boxes, 0.0, upper)}


class _VerticalFlip:
    """Flips image, masks and boxes upside down (every time: the draw is the operation's)."""

    def get_random_transformation(self, data, training=True, seed=None):
        return {"height": data["images"].shape[0]}

    def transform_single_image(self, images, transformation):
        return tf.reverse(images, [0])

    def transform_single_segmentation_mask(self, masks, transformation):
        return tf.reverse(masks, [0])

    def transform_single_bounding_box(self, bounding_boxes, transformation):
        x1, y1, x2, y2 = tf.unstack(tf.cast(bounding_boxes["boxes"], tf.float32), axis=-1)
        height = float(transformation["height"])
        boxes = tf.stack([x1, height - y2, x2, height - y1], axis=-1)
        return {**bounding_boxes, "boxes": boxes}
