"""COCO box metrics (mAP, mAP@0.5, AR@100) with pycocotools."""

import contextlib
import io
from typing import Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

# What COCO reports for a metric without ground truth.
NO_GROUND_TRUTH = -1.0


def yxyx_to_coco_xywh(boxes):
    """Pixel `ymin, xmin, ymax, xmax` boxes `[..., 4]` to COCO `x, y, width, height`."""
    boxes = np.asarray(boxes, np.float64)
    ymin, xmin, ymax, xmax = np.moveaxis(boxes, -1, 0)
    return np.stack([xmin, ymin, xmax - xmin, ymax - ymin], axis=-1)


class DetectionMetrics:
    """Accumulates boxes of the images annotated with boxes and scores them with COCOeval.

    Only images with `has_boxes` enter; a defect-free image annotated with boxes (none)
    still enters, so its detections count as false positives. Ground truth and
    detections are kept as small python lists (at most `max_detections` rows an image).
    Category ids are class index + 1, image ids count from 1 in arrival order.

    When the split has no ground-truth box at all every metric is -1.0, as COCO reports
    for a category without ground truth; a class without ground-truth boxes likewise
    gets -1.0 in `per_class`.

    Args:
      class_names: the K class names.
    """

    def __init__(self, class_names: Sequence[str]):
        self.class_names = list(class_names)
        self._images = []
        self._ground_truth = []
        self._detections = []

    def update(self, ground_truth: dict, predictions: dict):
        """Adds one batch.

        Args:
          ground_truth: `boxes` `[B, N, 4]` pixel yxyx, `box_classes` `[B, N]` (-1 for
            padding rows), `has_boxes` `[B]` bool.
          predictions: `boxes` `[B, M, 4]` pixel yxyx, `scores` `[B, M]`, `classes`
            `[B, M]`, `num_detections` `[B]` (rows past it are padding).
        """
        true_boxes = yxyx_to_coco_xywh(ground_truth["boxes"])
        true_classes = np.asarray(ground_truth["box_classes"]).astype(np.int64)
        predicted_boxes = yxyx_to_coco_xywh(predictions["boxes"])
        scores = np.asarray(predictions["scores"], np.float64)
        predicted_classes = np.asarray(predictions["classes"]).astype(np.int64)
        num_detections = np.asarray(predictions["num_detections"]).astype(np.int64)
        num_classes = len(self.class_names)
        for i in np.flatnonzero(np.asarray(ground_truth["has_boxes"]).astype(bool)):
            image_id = len(self._images) + 1
            self._images.append({"id": image_id})
            valid = true_classes[i] >= 0
            _check_classes(true_classes[i][valid], num_classes, "ground_truth['box_classes']")
            for box, label in zip(true_boxes[i][valid], true_classes[i][valid]):
                self._ground_truth.append(
                    {
                        "id": len(self._ground_truth) + 1,
                        "image_id": image_id,
                        "category_id": int(label) + 1,
                        "bbox": box.tolist(),
                        "area": float(box[2] * box[3]),
                        "iscrowd": 0,
                    }
                )
            count = num_detections[i]
            _check_classes(predicted_classes[i, :count], num_classes, "predictions['classes']")
            for box, label, score in zip(
                predicted_boxes[i, :count], predicted_classes[i, :count], scores[i, :count]
            ):
                self._detections.append(
                    {
                        "image_id": image_id,
                        "category_id": int(label) + 1,
                        "bbox": box.tolist(),
                        "score": float(score),
                    }
                )

    def result(self) -> dict:
        """Runs COCOeval (iouType "bbox") on everything added so far.

        Returns:
          dict with `map` (AP@[.5:.95]), `map50`, `ar` (AR@100) and `per_class`:
          `{name: {ap, ap50}}`, python floats.
        """
        if not self._ground_truth:
            return {
                "map": NO_GROUND_TRUTH,
                "map50": NO_GROUND_TRUTH,
                "ar": NO_GROUND_TRUTH,
                "per_class": {
                    name: {"ap": NO_GROUND_TRUTH, "ap50": NO_GROUND_TRUTH}
                    for name in self.class_names
                },
            }
        dataset = {
            "images": self._images,
            "categories": [{"id": k + 1, "name": name} for k, name in enumerate(self.class_names)],
            # Copies: pycocotools writes into the annotation dicts it is given.
            "annotations": [dict(annotation) for annotation in self._ground_truth],
        }
        # pycocotools prints progress and the summary table; the numbers are returned.
        with contextlib.redirect_stdout(io.StringIO()):
            coco_truth = COCO()
            coco_truth.dataset = dataset
            coco_truth.createIndex()
            if self._detections:
                coco_detections = coco_truth.loadRes([dict(d) for d in self._detections])
            else:  # loadRes cannot take an empty list.
                coco_detections = COCO()
                coco_detections.dataset = {**dataset, "annotations": []}
                coco_detections.createIndex()
            evaluation = COCOeval(coco_truth, coco_detections, iouType="bbox")
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
        # precision: [iou thresholds, recall points, classes, area ranges, max dets];
        # area range 0 is "all", the last max-dets setting is 100.
        precision = evaluation.eval["precision"][:, :, :, 0, -1]
        return {
            "map": float(evaluation.stats[0]),
            "map50": float(evaluation.stats[1]),
            "ar": float(evaluation.stats[8]),
            "per_class": {
                name: {
                    "ap": _mean_defined(precision[:, :, k]),
                    "ap50": _mean_defined(precision[0, :, k]),
                }
                for k, name in enumerate(self.class_names)
            },
        }


def _mean_defined(precision):
    """Mean of COCO precision entries, skipping the -1 of undefined ones (as COCO)."""
    defined = precision[precision > -1]
    return float(defined.mean()) if defined.size else NO_GROUND_TRUTH


def _check_classes(classes, num_classes, name):
    if classes.size and (classes.min() < 0 or classes.max() >= num_classes):
        raise ValueError(
            f"`{name}` must be in [0, {num_classes}) (or -1 for ground-truth padding), "
            f"got {np.unique(classes).tolist()}."
        )
