"""What a training split holds, read before training to choose the recipe (`recipes`).

Image sizes come from the encoded files' headers (PNG's IHDR, JPEG's frame header), and
boxes from their annotations: nothing is decoded, so a survey costs one read of the split.
"""

import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from defect_aux_net.data import splits
from defect_aux_net.data.datasets import SplitSummary

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8"


@dataclasses.dataclass(frozen=True, eq=False)
class DatasetSurvey:
    """The images and annotations of one split.

    Attributes:
      num_examples: images in the split.
      defective: images with at least one defect.
      with_masks: images with a pixel mask annotation.
      with_boxes: images with box annotations.
      class_names: the dataset's defect classes.
      class_counts: images showing each class.
      channels: channels of the stored images.
      image_sizes: int `[num_examples, 2]` (height, width) of each image.
      boxes: float `[M, 4]` normalised ymin, xmin, ymax, xmax of every annotated box.
      box_images: int `[M]` the row of `image_sizes` each box belongs to.
    """

    num_examples: int
    defective: int
    with_masks: int
    with_boxes: int
    class_names: tuple
    class_counts: tuple
    channels: int
    image_sizes: np.ndarray
    boxes: np.ndarray
    box_images: np.ndarray

    def split_summary(self) -> SplitSummary:
        return SplitSummary(self.num_examples, self.with_masks, self.with_boxes, self.defective)

    def box_sides(self) -> np.ndarray:
        """float `[M, 2]` (height, width) of every box in the pixels of its image."""
        sizes = self.image_sizes[self.box_images].astype(np.float64)
        return (self.boxes[:, 2:] - self.boxes[:, :2]) * sizes

    def to_dict(self) -> dict:
        """The figures the recipe reads, for the log and config.json."""
        heights, widths = self.image_sizes[:, 0], self.image_sizes[:, 1]
        summary = {
            "images": self.num_examples,
            "defective_fraction": round(self.defective / max(self.num_examples, 1), 4),
            "with_masks": self.with_masks,
            "with_boxes": self.with_boxes,
            "channels": self.channels,
            "median_image_size": [int(np.median(heights)), int(np.median(widths))],
            "image_heights_min_max": [int(heights.min()), int(heights.max())],
            "image_widths_min_max": [int(widths.min()), int(widths.max())],
            "images_per_class": dict(zip(self.class_names, map(int, self.class_counts))),
            "boxes": len(self.boxes),
        }
        if len(self.boxes):
            short_sides = self.box_sides().min(axis=1)
            summary["box_short_side_p10_p50_p90"] = [
                round(float(value), 1) for value in np.percentile(short_sides, [10, 50, 90])
            ]
        return summary


def encoded_image_size(encoded):
    """`[height, width]` int32 of a PNG or JPEG from its header; other files are decoded."""

    def png_size():
        # IHDR: width then height, 4 big-endian bytes each, at bytes 16-23.
        header = tf.cast(tf.io.decode_raw(tf.strings.substr(encoded, 16, 8), tf.uint8), tf.int32)
        big_endian = tf.constant([2**24, 2**16, 2**8, 1], tf.int32)
        width = tf.reduce_sum(header[:4] * big_endian)
        height = tf.reduce_sum(header[4:] * big_endian)
        return tf.stack([height, width])

    def other_size():
        return tf.shape(tf.io.decode_image(encoded, expand_animations=False))[:2]

    is_png = tf.equal(tf.strings.substr(encoded, 0, 8), _PNG_SIGNATURE)
    is_jpeg = tf.equal(tf.strings.substr(encoded, 0, 2), _JPEG_SIGNATURE)
    return tf.case(
        [(is_png, png_size), (is_jpeg, lambda: tf.image.extract_jpeg_shape(encoded)[:2])],
        default=other_size,
    )


def survey_split(builder: tfds.core.DatasetBuilder, split: str) -> DatasetSurvey:
    """Surveys `split` (a TFDS split or a holdout form of `holdout.py`) of `builder`."""
    dataset = splits.read_split(
        builder,
        split,
        decoders=splits.UNDECODED_IMAGES,
    ).map(
        lambda example: {
            "size": encoded_image_size(example["image"]),
            "flags": tf.stack(
                [example["has_mask"], example["has_boxes"], example["is_defective"]]
            ),
            "labels": example["labels"],
            "boxes": example["objects"]["bbox"],
            "has_boxes": example["has_boxes"],
        },
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    class_names = tuple(builder.info.features["objects"]["label"].names)
    sizes, boxes, box_images = [], [], []
    flag_counts = np.zeros(3, np.int64)
    class_counts = np.zeros(len(class_names), np.int64)
    for batch in dataset.ragged_batch(1024).as_numpy_iterator():
        flag_counts += batch["flags"].sum(axis=0)
        class_counts += (batch["labels"] > 0).sum(axis=0)
        for index, (image_boxes, annotated) in enumerate(zip(batch["boxes"], batch["has_boxes"])):
            if annotated and len(image_boxes):
                boxes.append(np.asarray(image_boxes, np.float64).reshape(-1, 4))
                box_images.append(np.full(len(boxes[-1]), len(sizes) + index, np.int64))
        sizes += list(batch["size"])
    if not sizes:
        raise ValueError(f"{splits.dataset_name(builder)} {split} holds no images to survey.")
    return DatasetSurvey(
        num_examples=len(sizes),
        with_masks=int(flag_counts[0]),
        with_boxes=int(flag_counts[1]),
        defective=int(flag_counts[2]),
        class_names=class_names,
        class_counts=tuple(int(count) for count in class_counts),
        channels=int(builder.info.features["image"].shape[-1]),
        image_sizes=np.array(sizes, np.int64).reshape(-1, 2),
        boxes=np.concatenate(boxes) if boxes else np.zeros((0, 4)),
        box_images=np.concatenate(box_images) if box_images else np.zeros(0, np.int64),
    )
