"""Evaluator: the papers' metrics of a split, fed batch by batch with numpy arrays."""

from typing import Sequence

import numpy as np

from defect_aux_net.evaluation.classification_metrics import ClassificationMetrics
from defect_aux_net.evaluation.detection_metrics import DetectionMetrics
from defect_aux_net.evaluation.image_defect_metrics import ImageDefectMetrics
from defect_aux_net.evaluation.segmentation_metrics import SegmentationMetrics
from defect_aux_net.evaluation.precision_recall import confusion_counts, precision_recall_f1
from defect_aux_net.inference.postprocessing import (
    DEFAULT_THRESHOLD,
    IMAGE_SOURCES,
    MASK_THRESHOLD,
    SOURCE_TASKS,
    ImageRule,
    fused_score,
    image_evidence,
    is_defective,
)

TASKS = ("classification", "segmentation", "detection")


class Evaluator:
    """Accumulates ground truth and predictions of a split and computes its metrics.

    `result()` holds one entry per task of the model plus `image_ap`:

    - `classification`: paper eq. 7-10 on defective vs defect-free images with their
      `tp`/`fp`/`fn`/`tn`, exact match, per-class scores and counts at each class's
      threshold, and the image confusion matrix (`ClassificationMetrics`);
    - `segmentation`: Dice and IoU over the split and per image, and the DeepLabV3+
      paper's per-image mean IoU of label maps, `label_map_miou` (`SegmentationMetrics`);
    - `detection`: COCO mAP, mAP@0.5 and AR@100 (`DetectionMetrics`);
    - `image_ap`: the two-stage network's per-image AP of the image score in use
      (`score`), and precision, recall, F1 and `tp`/`fp`/`fn`/`tn` at its best-F1
      threshold on this split. The image score is the fused score of `image_rule`
      (`fused`) when given, else the highest class probability when the model
      classifies (`classification`), else the highest mask probability (`mask`), else
      the highest detection score, 0 without detections (`detection`). `per_source`
      gives the same for each head's evidence (and `fused`), so one sees which head
      ranks images best; `is_defective` the counts of the model's own decision (the
      image rule, or else the per-class rule of `postprocessing`). An image is
      defective when any of its labels is 1.

    Example:

    ```python
    evaluator = Evaluator(["scratch", "pit"], tasks=("classification", "segmentation"))
    for ground_truth, predictions in batches:
        evaluator.update(ground_truth, predictions)
    json.dump(evaluator.result(), file)
    ```

    Args:
      class_names: the K class names.
      tasks: a non-empty subset of `("classification", "segmentation", "detection")`.
      thresholds: K per-class classification thresholds; 0.5 each by default.
      mask_threshold: probability at or above which a mask pixel is predicted defective.
      image_rule: the `postprocessing.ImageRule` chosen on validation, or None.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        tasks: Sequence[str],
        thresholds: Sequence[float] | None = None,
        mask_threshold: float = MASK_THRESHOLD,
        image_rule: ImageRule | None = None,
    ):
        self.class_names = list(class_names)
        self.tasks = tuple(tasks)
        if not self.class_names:
            raise ValueError("`class_names` must name at least one class, got an empty list.")
        if not self.tasks or not set(self.tasks) <= set(TASKS):
            raise ValueError(f"`tasks` must be a non-empty subset of {TASKS}, got {self.tasks}.")
        num_classes = len(self.class_names)
        if thresholds is None:
            thresholds = [DEFAULT_THRESHOLD] * num_classes
        self.thresholds = [float(t) for t in thresholds]
        if len(self.thresholds) != num_classes:
            raise ValueError(
                f"`thresholds` must hold one value per class ({num_classes}), got "
                f"{self.thresholds}."
            )
        if not 0.0 <= mask_threshold <= 1.0:
            raise ValueError(f"`mask_threshold` must be in [0, 1], got {mask_threshold}.")
        self.mask_threshold = mask_threshold
        if image_rule is not None:
            image_rule.check_tasks(self.tasks)
        self.image_rule = image_rule

        self._metrics = {}
        if "classification" in self.tasks:
            self._metrics["classification"] = ClassificationMetrics(
                self.class_names, self.thresholds
            )
        if "segmentation" in self.tasks:
            self._metrics["segmentation"] = SegmentationMetrics(self.class_names, mask_threshold)
        if "detection" in self.tasks:
            self._metrics["detection"] = DetectionMetrics(self.class_names)
        # Per image score: each head's evidence, then the fused score with a rule.
        sources = [source for source in IMAGE_SOURCES if SOURCE_TASKS[source] in self.tasks]
        sources += ["fused"] if image_rule is not None else []
        self._image = {source: ImageDefectMetrics() for source in sources}
        # The score in use: the rule's, else the first head's (the classifier's).
        self._image_source = sources[-1] if image_rule is not None else sources[0]
        self._decisions = []  # (labels, is_defective) per batch.

    def update(self, ground_truth: dict, predictions: dict) -> None:
        """Adds one batch.

        Args:
          ground_truth: numpy `labels` `[B, K]`; with segmentation `masks` `[B, H, W, K]`
            and `has_mask` `[B]`; with detection `boxes` `[B, N, 4]` (pixel yxyx),
            `box_classes` `[B, N]` (-1 = padding) and `has_boxes` `[B]`.
          predictions: the decoded results of the model's tasks
            (`postprocessing.decode_outputs` with pixel boxes), numpy or tensors:
            `probabilities` `[B, K]`, `masks` `[B, H, W, K]` probabilities; `boxes`
            `[B, M, 4]`, `scores` `[B, M]`, `classes` `[B, M]`, `num_detections` `[B]`.
        """
        num_classes = len(self.class_names)
        labels = _get(ground_truth, "ground_truth", "labels", (None, num_classes))
        batch = labels.shape[0]
        decoded = {}  # The checked predictions, for the image score and decision.
        if "detection" in self.tasks:
            truth = {
                "boxes": _get(ground_truth, "ground_truth", "boxes", (batch, None, 4)),
                "box_classes": _get(ground_truth, "ground_truth", "box_classes", (batch, None)),
                "has_boxes": _get(ground_truth, "ground_truth", "has_boxes", (batch,)),
            }
            boxes = _get(predictions, "predictions", "boxes", (batch, None, 4))
            max_detections = boxes.shape[1]
            detected = {
                "boxes": boxes,
                "scores": _get(predictions, "predictions", "scores", (batch, max_detections)),
                "classes": _get(predictions, "predictions", "classes", (batch, max_detections)),
                "num_detections": _get(predictions, "predictions", "num_detections", (batch,)),
            }
            if truth["boxes"].shape[1] != truth["box_classes"].shape[1]:
                raise ValueError(
                    "`ground_truth['boxes']` and `ground_truth['box_classes']` must have the "
                    f"same number of rows, got shapes {truth['boxes'].shape} and "
                    f"{truth['box_classes'].shape}."
                )
            counts = detected["num_detections"]
            if counts.size and (counts.min() < 0 or counts.max() > max_detections):
                raise ValueError(
                    f"`predictions['num_detections']` must be in [0, {max_detections}], got "
                    f"{counts.tolist()}."
                )
            self._metrics["detection"].update(truth, detected)
            decoded |= detected
        if "segmentation" in self.tasks:
            masks = _get(ground_truth, "ground_truth", "masks", (batch, None, None, num_classes))
            probabilities = _get(predictions, "predictions", "masks", masks.shape)
            has_mask = _get(ground_truth, "ground_truth", "has_mask", (batch,))
            self._metrics["segmentation"].update(masks, probabilities, has_mask)
            decoded["masks"] = probabilities
        if "classification" in self.tasks:
            probabilities = _get(predictions, "predictions", "probabilities", labels.shape)
            self._metrics["classification"].update(labels, probabilities)
            decoded["probabilities"] = probabilities
        defective = np.asarray(labels).any(axis=1)
        scores = {
            source: np.asarray(values) for source, values in image_evidence(decoded).items()
        }
        if self.image_rule is not None:
            scores["fused"] = np.asarray(fused_score(scores, self.image_rule))
        for source, values in scores.items():
            self._image[source].update(defective, values)
        decided = np.asarray(is_defective(decoded, self.thresholds, self.image_rule))
        self._decisions.append((defective, decided))

    def result(self) -> dict:
        """Returns the metrics of everything added so far (python floats/ints/lists only).

        Returns:
          dict with a key per task (`classification`, `segmentation`, `detection`) and
          `image_ap`; see the classes named in the class docstring for their fields.
        """
        result = {task: metrics.result() for task, metrics in self._metrics.items()}
        result["image_ap"] = self._image_result()
        return result

    def _image_result(self) -> dict:
        """`image_ap` of `result()`: see the class docstring."""
        per_source = {source: metrics.result() for source, metrics in self._image.items()}
        labels, decided = (
            [np.concatenate(parts) for parts in zip(*self._decisions)]
            if self._decisions
            else (np.zeros(0, bool), np.zeros(0, bool))
        )
        counts = confusion_counts(labels[:, None], decided[:, None])
        counts = {name: int(value[0]) for name, value in counts.items()}
        precision, recall, f1 = precision_recall_f1(counts["tp"], counts["fp"], counts["fn"])
        return {
            "score": self._image_source,
            **per_source[self._image_source],
            "per_source": per_source,
            "is_defective": {
                "precision": float(precision), "recall": float(recall), "f1": float(f1),
                **counts,
            },
        }

    def pr_curves(self) -> dict:
        """Returns PR curves for plotting: `{name: (precision, recall, thresholds)}`.

        `image` is the image-level curve of the image score in use (`result()["image_ap"]
        ["score"]`); with classification, `class/<name>` per class.
        Arrays are ordered as in `precision_recall_curve`.
        """
        curves = {"image": self._image[self._image_source].pr_curve()}
        if "classification" in self._metrics:
            curves.update(self._metrics["classification"].pr_curves())
        return curves


def _get(batch: dict, batch_name: str, key: str, shape: tuple) -> np.ndarray:
    """`batch[key]` as a numpy array, checked against `shape` (None: any size)."""
    if key not in batch:
        raise KeyError(f"`{batch_name}` has no `{key}`; it holds {sorted(batch)}.")
    value = np.asarray(batch[key])
    if value.ndim != len(shape) or any(
        expected is not None and size != expected for size, expected in zip(value.shape, shape)
    ):
        expected = "[" + ", ".join("?" if size is None else str(size) for size in shape) + "]"
        raise ValueError(
            f"`{batch_name}['{key}']` must have shape {expected}, got {value.shape}."
        )
    return value
