"""The feature schema every defect dataset builder yields.

All builders share it so that the input pipeline needs no per-dataset code.
"""

from typing import Sequence

import numpy as np
import tensorflow_datasets as tfds


def defect_features(
    class_names: Sequence[str], channels: int, image_encoding: str = "png"
) -> tfds.features.FeaturesDict:
    """Returns the common `FeaturesDict` for a dataset with `class_names` defect classes.

    Keys:
      image: uint8 `[H, W, channels]` as the source stores it.
      segmentation_mask: uint8 `[H, W, K]`, one binary channel per defect class
        (classes may overlap); all zero where there is no defect or no mask.
      objects: sequence of `bbox` (TFDS `BBoxFeature`: normalised ymin, xmin, ymax,
        xmax) and `label` (class index).
      labels: uint8 `[K]` multi-hot image-level classes.
      is_defective: whether the image shows any defect.
      has_mask / has_boxes: whether masks / boxes are annotated for this image
        (derived annotations count as annotated; each builder's README says which).
      image_id: the source's name of the image.

    Args:
      class_names: defect class names, in class-index order.
      channels: image channels as the source has them (1 or 3).
      image_encoding: "png" or "jpeg"; JPEG sources keep their bytes as they are.
    """
    if not class_names:
        raise ValueError("class_names must name at least one defect class, got none.")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}.")
    num_classes = len(class_names)
    class_label = tfds.features.ClassLabel(names=list(class_names))
    return tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(
                shape=(None, None, channels), encoding_format=image_encoding
            ),
            # A Tensor, not an Image: PNG cannot hold K > 4 channels.
            "segmentation_mask": tfds.features.Tensor(
                shape=(None, None, num_classes),
                dtype=np.uint8,
                encoding=tfds.features.Encoding.ZLIB,
            ),
            "objects": tfds.features.Sequence(
                {"bbox": tfds.features.BBoxFeature(), "label": class_label}
            ),
            "labels": tfds.features.Tensor(shape=(num_classes,), dtype=np.uint8),
            "is_defective": tfds.features.Scalar(dtype=np.bool_),
            "has_mask": tfds.features.Scalar(dtype=np.bool_),
            "has_boxes": tfds.features.Scalar(dtype=np.bool_),
            "image_id": tfds.features.Text(),
        }
    )
