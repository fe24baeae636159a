"""Random augmentation of training examples (Defect-Aux-Net section IV-C).

The paper augments with "rotation, vertical/horizontal flips, zoom, shear and
channel shifts". Keras 3 preprocessing layers transform an image, its masks and
its boxes together; `Augmenter` chains them and seeds them per example, so that
a `tf.data` pipeline yields the same examples every time it is read.
"""

import keras
import tensorflow as tf

# The augmentations a run chooses from (`ExperimentConfig.augmentation`): this
# module's `Augmenter` (Defect-Aux-Net paper), or the DeepLabV3+ paper's random
# weighted augmentation (`weighted_augmentation.WeightedAugmenter`).
AUGMENTATIONS = ("defect_aux_net", "weighted")

# Conservative defaults for surface-defect images: small geometric changes keep
# thin defects (scratches, cracks) visible and their boxes tight.
DEFAULT_ROTATION = 10.0  # degrees, either way
DEFAULT_ZOOM = 0.1  # fraction of the height and of the width, in or out
DEFAULT_SHEAR = 0.1  # shear factor along each axis (0.1: about 5.7 degrees)
DEFAULT_CHANNEL_SHIFT = 0.1  # added to every channel of images in [0, 1]

# A box thinner than this (pixels) after clipping covers no pixel centre: it is
# a sliver of a box that left the image, and would still claim an anchor.
MIN_BOX_SIDE = 0.5

# Areas uncovered by rotation, zoom and shear are empty background: reflected or
# repeated pixels would copy defects into the image without masks or boxes.
_FILL = {"fill_mode": "constant", "fill_value": 0.0}
# Keras' RandomRotation reads boxes as xyxy whatever `bounding_box_format` says
# (Keras 3.15): every layer works in xyxy and we convert at the boundary.
_YXYX_TO_XYXY = [1, 0, 3, 2]


class Augmenter:
    """Flips, rotates, zooms, shears and shifts the channels of one example.

    Call it on `(index, example)`, as `dataset.enumerate()` yields them:

    ```python
    augmenter = Augmenter(seed=0)
    dataset = dataset.enumerate().map(
        augmenter, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ```

    `example` has `images` (float32 `[H, W, C]` in [0, 1]), `segmentation_masks`
    (float32 0/1 `[H, W, K]`) and `bounding_boxes` (`boxes`: float32 `[N, 4]`
    pixel `ymin, xmin, ymax, xmax`; `labels`: int32 `[N]`, -1 in padding rows);
    other keys pass through. The result has the same keys, shapes and dtypes.
    Masks use nearest interpolation and stay 0/1. Boxes become the box around
    their transformed corners, clipped to the image; a box left thinner than
    `MIN_BOX_SIDE` pixels (outside the image) gets label -1, and every row
    labelled -1 gets a zero box, as `pad_boxes` pads.

    Seeding: Keras layers draw from a `SeedGenerator` whose state is a variable.
    In `tf.data` that variable is shared by parallel `map` calls and carries on
    from one pass over the dataset to the next, so draws would depend on thread
    timing and on how often the dataset was read. Instead each example gets a
    stateless seed, `seed` folded with its index, and each random draw of a layer
    folds in a draw counter (`_ExampleSeeds`); the layers'
    `get_random_transformation(..., seed=...)` and `transform_single_*` methods
    then apply the transform, as Keras' own `RandAugment` drives its sub-layers.
    An example's augmentation depends only on `(seed, index)`: the same in every
    pass, process and `num_parallel_calls`. Enumerate after `repeat` (or after
    building all epochs) so that each epoch gets new augmentations.

    Channel shift: Keras 2's `channel_shift_range` added one random value to
    every channel and clipped to the image's min and max. `RandomBrightness`
    with `value_range=(0, 1)` adds one random value to every channel and clips
    to [0, 1]: the same for our min-max normalised images.

    Args:
      seed: integer seed of the whole augmentation.
      rotation: largest rotation in degrees (uniform in +-rotation).
      zoom: largest zoom in or out, as a fraction of the height and of the
        width, drawn independently.
      shear: largest shear factor along each axis (`keras.layers.RandomShear`,
        about the top-left corner: the far side moves by up to shear x the
        other side in pixels, 80 pixels for 0.1 on a 128x800 image).
      channel_shift: largest value added to every channel (images in [0, 1]).
      flips: whether to flip horizontally and vertically, each with chance 1/2.
    """

    def __init__(
        self,
        seed: int,
        rotation: float = DEFAULT_ROTATION,
        zoom: float = DEFAULT_ZOOM,
        shear: float = DEFAULT_SHEAR,
        channel_shift: float = DEFAULT_CHANNEL_SHIFT,
        flips: bool = True,
    ):
        if not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}.")
        for name, value, upper in (
            ("rotation", rotation, 180.0),
            ("zoom", zoom, 1.0),
            ("shear", shear, 1.0),
            ("channel_shift", channel_shift, 1.0),
        ):
            if not 0.0 <= value <= upper:
                raise ValueError(f"{name} must be in [0, {upper}], got {value}.")
        self.seed = seed
        # float32 layers: a global mixed-precision policy must not reach tf.data.
        common = {"bounding_box_format": "xyxy", "dtype": "float32"}
        layers = []
        if flips:  # Two layers: "horizontal_and_vertical" flips both or neither.
            layers.append(keras.layers.RandomFlip("horizontal", **common))
            layers.append(keras.layers.RandomFlip("vertical", **common))
        if rotation:
            layers.append(RandomRotation(rotation / 360.0, **_FILL, **common))
        if zoom:
            layers.append(keras.layers.RandomZoom((-zoom, zoom), (-zoom, zoom), **_FILL, **common))
        if shear:
            layers.append(_RandomShear(shear, shear, **_FILL, **common))
        if channel_shift:
            layers.append(
                keras.layers.RandomBrightness(channel_shift, value_range=(0.0, 1.0), **common)
            )
        self.layers = layers

    def __call__(self, index, example: dict) -> dict:
        """Returns `example` augmented with the seed of `(self.seed, index)`."""
        return transform_example(self.layers, example_seed(self.seed, index), example)


def example_seed(seed: int, index):
    """The stateless seed of the example at `index` of a run seeded with `seed`."""
    return tf.random.experimental.stateless_fold_in(
        tf.constant([seed, 0], tf.int64), tf.cast(index, tf.int64)
    )


def transform_example(layers, seed, example: dict) -> dict:
    """`example` through `layers` in turn, image, masks and boxes together.

    Args:
      layers: objects with Keras' image-preprocessing methods
        (`get_random_transformation(data, training, seed=...)` and
        `transform_single_image` / `_segmentation_mask` / `_bounding_box`), boxes xyxy.
      seed: the example's stateless seed (`example_seed`); each random draw of a
        layer folds in a draw counter.
      example: as `Augmenter` takes it; keys other than `images`,
        `segmentation_masks` and `bounding_boxes` pass through.
    """
    for key in ("images", "segmentation_masks", "bounding_boxes"):
        if key not in example:
            raise ValueError(
                f"Augmenter needs the key {key!r} in each example, got {sorted(example)}."
            )
    images = example["images"]
    masks = example["segmentation_masks"]
    boxes = example["bounding_boxes"]["boxes"]
    labels = example["bounding_boxes"]["labels"]
    seeds = _ExampleSeeds(seed)
    bounding_boxes = {"boxes": tf.gather(boxes, _YXYX_TO_XYXY, axis=-1), "labels": labels}
    for layer in layers:
        transformation = layer.get_random_transformation(
            {"images": images}, training=True, seed=seeds
        )
        images = layer.transform_single_image(images, transformation)
        masks = layer.transform_single_segmentation_mask(masks, transformation)
        # transform_single_bounding_box edits the dict it is given: pass a copy.
        bounding_boxes = layer.transform_single_bounding_box(dict(bounding_boxes), transformation)
    new_boxes = tf.gather(bounding_boxes["boxes"], _YXYX_TO_XYXY, axis=-1)
    sides = new_boxes[:, 2:] - new_boxes[:, :2]
    kept = (bounding_boxes["labels"] >= 0) & tf.reduce_all(sides >= MIN_BOX_SIDE, axis=-1)
    new_labels = tf.where(kept, tf.cast(bounding_boxes["labels"], labels.dtype), -1)
    new_boxes = tf.where(kept[:, None], new_boxes, 0.0)
    return {
        **example,
        "images": tf.ensure_shape(images, example["images"].shape),
        "segmentation_masks": tf.ensure_shape(masks, example["segmentation_masks"].shape),
        "bounding_boxes": {
            **example["bounding_boxes"],
            "boxes": tf.ensure_shape(tf.cast(new_boxes, boxes.dtype), boxes.shape),
            "labels": tf.ensure_shape(new_labels, labels.shape),
        },
    }


def build_augmenter(seed: int, **strengths) -> Augmenter:
    """Returns the paper's augmentation seeded with `seed`, to map over `(index, example)`.

    Args:
      seed: integer seed of the whole augmentation.
      **strengths: `rotation`, `zoom`, `shear`, `channel_shift`, `flips` as
        `Augmenter` takes them; the module's `DEFAULT_*` where left out.
    """
    return Augmenter(seed, **strengths)


class _ExampleSeeds(keras.random.SeedGenerator):
    """A seed generator whose n-th draw is `example_seed` folded with n.

    Holds no variable (only a counter advanced while the `map` function is
    traced), so it can be made inside `tf.data` functions.
    """

    def __init__(self, example_seed):
        # The base class would create the state variable this generator avoids.
        self._example_seed = example_seed
        self._draws = 0

    def next(self, ordered=True):
        self._draws += 1
        return tf.random.experimental.stateless_fold_in(self._example_seed, self._draws)


class _RandomShear(keras.layers.RandomShear):
    """`keras.layers.RandomShear` whose boxes follow the image at any aspect ratio.

    Keras 3.15 shears boxes in relative coordinates with the pixel shear factors,
    right only for square images (on 128x800 a box lands tens of pixels away
    from its defect). Here the box corners go through the exact inverse of the
    layer's image transform. Boxes are xyxy pixels.
    """

    def transform_bounding_boxes(self, bounding_boxes, transformation, training=True):
        # The image transform maps each output pixel centre (x, y) to the input
        # point (x + sx * y, sy * x + y); corners map back through its inverse.
        shear = tf.cast(transformation["shear_factor"], tf.float32)[:, None, None, :]
        shear_x, shear_y = shear[..., 0], shear[..., 1]
        x1, y1, x2, y2 = tf.unstack(tf.cast(bounding_boxes["boxes"], tf.float32), axis=-1)
        xs = tf.stack([x1, x2, x1, x2], axis=-1) - 0.5  # pixel centres at integers
        ys = tf.stack([y1, y1, y2, y2], axis=-1) - 0.5
        determinant = 1.0 - shear_x * shear_y
        xs, ys = (xs - shear_x * ys) / determinant + 0.5, (ys - shear_y * xs) / determinant + 0.5
        boxes = tf.stack(
            [
                tf.reduce_min(xs, -1),
                tf.reduce_min(ys, -1),
                tf.reduce_max(xs, -1),
                tf.reduce_max(ys, -1),
            ],
            axis=-1,
        )
        height, width = transformation["input_shape"][-3], transformation["input_shape"][-2]
        return keras.utils.bounding_boxes.clip_to_image_size(
            {**bounding_boxes, "boxes": boxes}, height=height, width=width
        )


class RandomRotation(keras.layers.RandomRotation):
    """`keras.layers.RandomRotation` whose boxes follow the image exactly.

    Keras 3.15 rotates the image about its centre but boxes about the centre of the
    pixel half a pixel up and left of it: at 180 degrees a box lands a pixel away
    from its defect. Here the box corners go through the exact inverse of the
    layer's image transform, and the box is the box around the four rotated corners.
    Boxes are xyxy pixels.
    """

    def transform_bounding_boxes(self, bounding_boxes, transformation, training=True):
        # The image transform maps each output pixel centre (x, y) to the input point
        # (a0 x + a1 y + a2, a3 x + a4 y + a5); corners map back through its inverse.
        matrix = tf.reshape(tf.cast(transformation["rotation_matrix"], tf.float32), [-1, 8])
        a0, a1, a2, a3, a4, a5 = (matrix[:, index, None, None] for index in range(6))
        x1, y1, x2, y2 = tf.unstack(tf.cast(bounding_boxes["boxes"], tf.float32), axis=-1)
        xs = tf.stack([x1, x2, x1, x2], axis=-1) - 0.5 - a2  # pixel centres at integers
        ys = tf.stack([y1, y1, y2, y2], axis=-1) - 0.5 - a5
        determinant = a0 * a4 - a1 * a3
        xs, ys = (a4 * xs - a1 * ys) / determinant + 0.5, (a0 * ys - a3 * xs) / determinant + 0.5
        boxes = tf.stack(
            [
                tf.reduce_min(xs, -1),
                tf.reduce_min(ys, -1),
                tf.reduce_max(xs, -1),
                tf.reduce_max(ys, -1),
            ],
            axis=-1,
        )
        return keras.utils.bounding_boxes.clip_to_image_size(
            {**bounding_boxes, "boxes": boxes},
            height=transformation["image_height"],
            width=transformation["image_width"],
        )
