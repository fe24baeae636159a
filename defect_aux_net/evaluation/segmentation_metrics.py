"""Segmentation metrics: Dice and IoU over a split and per image, and the DeepLabV3+
paper's per-image mean IoU of label maps."""

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
      averaged over images.

    And the DeepLabV3+ paper's (Nie et al., section 4) `label_map_miou`,
    `mIoU = 1/N sum_i |X_i n Y_i| / |X_i u Y_i|` over the N images with a mask, X_i and
    Y_i the predicted and true label maps (0 background, k a defect of class k): a
    pixel is in the union when either map marks a defect there, in the intersection
    when both mark the same class. The predicted label is the most probable class of
    a pixel where its probability reaches the mask threshold, else background; a true
    pixel in several classes' masks (Severstal's can overlap; the paper's label map
    keeps one) matches any of them. `label_map_miou_defective` is the same mean over
    the images whose ground truth shows a defect.

    Where ground truth and prediction are both empty (for an image and class, or for a
    class over the whole split, or an image's label maps) the score is 1.0: nothing to
    find and nothing found. With no image with a mask every score is -1.0.

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
        self._label_map_iou_sum = 0.0
        self._label_map_iou_defective_sum = 0.0
        self._num_defective_images = 0

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
        label_map_iou = _label_map_iou(truth, np.asarray(probabilities)[has_mask], predicted)
        defective = truth.any(axis=(1, 2, 3))
        self._label_map_iou_sum += float(label_map_iou.sum())
        self._label_map_iou_defective_sum += float(label_map_iou[defective].sum())
        self._num_defective_images += int(defective.sum())

    def result(self) -> dict:
        """Returns the metrics as JSON-serialisable python numbers.

        Returns:
          dict with `dice`, `iou`, `dice_per_image`, `iou_per_image` (each the mean over
          classes), `per_class`: `{name: {dice, iou, dice_per_image, iou_per_image}}`,
          `label_map_miou` and `label_map_miou_defective` (-1.0 without such images).
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
        result["label_map_miou"] = _mean(self._label_map_iou_sum, self._num_images)
        result["label_map_miou_defective"] = _mean(
            self._label_map_iou_defective_sum, self._num_defective_images
        )
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


def _mean(total: float, count: int) -> float:
    return total / count if count else NOT_MEASURED


def _label_map_iou(truth, probabilities, predicted):
    """float64 `[B]`: IoU of each image's predicted and true label maps (see the class).

    Args:
      truth: bool `[B, H, W, K]` true masks.
      probabilities: `[B, H, W, K]` predicted probabilities.
      predicted: bool `[B, H, W, K]`, `probabilities` at or above the mask threshold.
    """
    predicted_any = predicted.any(axis=-1)  # [B, H, W]
    # The predicted label: the most probable class, where one reaches the threshold.
    label = np.argmax(probabilities, axis=-1)
    label_is_true = np.take_along_axis(truth, label[..., None], axis=-1)[..., 0]
    intersection = np.sum(predicted_any & label_is_true, axis=(1, 2))
    union = np.sum(predicted_any | truth.any(axis=-1), axis=(1, 2))
    return np.where(union == 0, 1.0, intersection / np.maximum(union, 1))
