"""Segmentation metrics: Dice and IoU over a split and per image (mean IoU per image)."""

from typing import Sequence

import numpy as np

from defect_aux_net.inference.postprocessing import MASK_THRESHOLD

# Reported when no image of the split has a mask (nothing was measured).
NOT_MEASURED = -1.0


class SegmentationMetrics:
    """Accumulates Dice and IoU of binarised masks over the images that have a mask.

    Two families of scores, both computed per class and then averaged over classes:

    - split level (`dice`, `iou`): intersections, predicted and ground-truth areas summed
      over all images first, then `2I / (P + G)` and `I / (P + G - I)`;
    - per image (`dice_per_image`, `iou_per_image`): the score of each image and class,
      averaged over images. `iou_per_image` averaged over classes is the DeepLabV3+
      paper's per-image mean IoU, `mIoU = 1/N sum_i |X_i n Y_i| / |X_i u Y_i|`.

    Where ground truth and prediction are both empty (for an image and class, or for a
    class over the whole split) the score is 1.0: nothing to find and nothing found.
    With no image with a mask every score is -1.0.

    Only the per-class sums are kept, never the masks, so memory does not grow with the
    split.

    Args:
      class_names: the K class names.
      mask_threshold: a pixel is predicted defective when its probability is >= this;
        ground-truth masks are binarised at 0.5.
    """

    def __init__(self, class_names: Sequence[str], mask_threshold: float = MASK_THRESHOLD):
        self.class_names = list(class_names)
        self.mask_threshold = mask_threshold
        num_classes = len(self.class_names)
        self._intersection = np.zeros(num_classes, np.int64)
        self._predicted_area = np.zeros(num_classes, np.int64)
        self._true_area = np.zeros(num_classes, np.int64)
        self._dice_per_image_sum = np.zeros(num_classes, np.float64)
        self._iou_per_image_sum = np.zeros(num_classes, np.float64)
        self._num_images = 0

    def update(self, masks, probabilities, has_mask):
        """Adds one batch; images whose `has_mask` is false are skipped.

        Args:
          masks: `[B, H, W, K]` 0/1 ground-truth masks.
          probabilities: `[B, H, W, K]` predicted mask probabilities.
          has_mask: `[B]` bool, whether the image is annotated with a mask.
        """
        has_mask = np.asarray(has_mask).astype(bool)
        truth = np.asarray(masks)[has_mask] >= 0.5
        predicted = np.asarray(probabilities)[has_mask] >= self.mask_threshold
        intersection = np.sum(truth & predicted, axis=(1, 2))  # [B', K]
        predicted_area = np.sum(predicted, axis=(1, 2))
        true_area = np.sum(truth, axis=(1, 2))
        dice, iou = _dice_and_iou(intersection, predicted_area, true_area)
        self._intersection += intersection.sum(axis=0)
        self._predicted_area += predicted_area.sum(axis=0)
        self._true_area += true_area.sum(axis=0)
        self._dice_per_image_sum += dice.sum(axis=0)
        self._iou_per_image_sum += iou.sum(axis=0)
        self._num_images += int(has_mask.sum())

    def result(self) -> dict:
        """Returns the metrics as JSON-serialisable python numbers.

        Returns:
          dict with `dice`, `iou`, `dice_per_image`, `iou_per_image` (each the mean over
          classes) and `per_class`: `{name: {dice, iou, dice_per_image, iou_per_image}}`.
        """
        num_classes = len(self.class_names)
        if self._num_images == 0:
            per_class = dict.fromkeys(
                ("dice", "iou", "dice_per_image", "iou_per_image"),
                np.full(num_classes, NOT_MEASURED),
            )
        else:
            dice, iou = _dice_and_iou(self._intersection, self._predicted_area, self._true_area)
            per_class = {
                "dice": dice,
                "iou": iou,
                "dice_per_image": self._dice_per_image_sum / self._num_images,
                "iou_per_image": self._iou_per_image_sum / self._num_images,
            }
        result = {metric: float(np.mean(values)) for metric, values in per_class.items()}
        result["per_class"] = {
            name: {metric: float(values[k]) for metric, values in per_class.items()}
            for k, name in enumerate(self.class_names)
        }
        return result


def _dice_and_iou(intersection, predicted_area, true_area):
    """Dice and IoU from areas, 1.0 where both masks are empty."""
    intersection = np.asarray(intersection, np.float64)
    total = np.asarray(predicted_area + true_area, np.float64)
    union = total - intersection
    empty = total == 0
    dice = np.where(empty, 1.0, 2 * intersection / np.where(empty, 1.0, total))
    iou = np.where(empty, 1.0, intersection / np.where(empty, 1.0, union))
    return dice, iou
