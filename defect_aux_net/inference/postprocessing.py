"""From a Defect-Aux-Net's raw outputs to what a prediction says: the one place that decides.

Serving graphs, evaluation, the training callbacks and `Predictor` all call
`decode_outputs`; nothing else decodes boxes, masks padded detections or decides
`is_defective`. Plain `tf` ops: they run inside exported graphs and eagerly on
numpy batches alike (NMS has no Keras op; see `decode_detections`).

Results (only those of the model's tasks, plus `is_defective`):

  probabilities: float32 `[B, K]` per-class defect probabilities (classification).
  masks: float32 `[B, H, W, K]` per-class mask probabilities at the model input size
    (segmentation).
  boxes: float32 `[B, max_detections, 4]` `ymin, xmin, ymax, xmax`, in [0, 1] of the
    image (or model-input pixels with `normalize_boxes=False`) (detection).
  scores: float32 `[B, max_detections]`, classes: int32 `[B, max_detections]`,
  num_detections: int32 `[B]` (detection; rows past `num_detections` are padding).
  image_score: float32 `[B]`, how defective each image looks, to rank images: with an
    `ImageRule`, its fused score; otherwise the highest class probability, else the
    highest mask probability, else the highest detection score (`image_score`).
  is_defective: bool `[B]`: with an `ImageRule`, `image_score >= rule.threshold`;
    otherwise any class probability >= its threshold, or without a classification
    head, any mask pixel >= `MASK_THRESHOLD` or any detection whose score is >= the
    threshold of its class. The per-class thresholds still say which classes.
"""

import dataclasses

import tensorflow as tf

from defect_aux_net.detection.decoding import decode_detections, select_detections

# A mask pixel at or above this probability is defect: in masks drawn and counted,
# and for `is_defective` when the model has no classification head.
MASK_THRESHOLD = 0.5
# Each class's decision threshold when none was chosen on a validation split.
DEFAULT_THRESHOLD = 0.5
# The heads' image evidence (`image_evidence`), in weight order. The classifier comes
# first: without a chosen rule it is the image score, as in the two-stage paper.
IMAGE_SOURCES = ("classification", "mask", "detection")
# The task each source needs.
SOURCE_TASKS = {
    "classification": "classification", "mask": "segmentation", "detection": "detection"
}


@dataclasses.dataclass(frozen=True)
class ImageRule:
    """An image is defective when its fused image score is >= `threshold`.

    The fused score is `sum(weights[i] * evidence[IMAGE_SOURCES[i]])` (`image_score`),
    the weights chosen on a validation split (`evaluation.image_rule_choice`).

    Example:
    ```python
    rule = ImageRule.from_weights({"classification": 0.3, "detection": 0.7}, 0.45)
    decode_outputs(outputs, config, anchors, thresholds, image_rule=rule)
    ```

    Args:
      weights: 3 weights in `IMAGE_SOURCES` order, >= 0 and summing to 1; a float
        tensor inside exported graphs (then checked where it was stored).
      threshold: the fused score from which an image is defective, in [0, 1].
    """

    weights: tuple
    threshold: float

    def __post_init__(self):
        if tf.is_tensor(self.weights) or tf.is_tensor(self.threshold):
            return
        weights = tuple(float(weight) for weight in self.weights)
        if (
            len(weights) != len(IMAGE_SOURCES)
            or min(weights) < 0
            or abs(sum(weights) - 1) > 1e-6
        ):
            raise ValueError(
                f"ImageRule weights must be {len(IMAGE_SOURCES)} values >= 0 summing to 1 "
                f"(for {IMAGE_SOURCES}), got {self.weights!r}."
            )
        if not 0 <= self.threshold <= 1:
            raise ValueError(f"ImageRule threshold must be in [0, 1], got {self.threshold!r}.")
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "threshold", float(self.threshold))

    @classmethod
    def from_weights(cls, weights: dict, threshold: float) -> "ImageRule":
        """The rule of `{source: weight}` (sources left out weigh 0)."""
        unknown = sorted(set(weights) - set(IMAGE_SOURCES))
        if unknown:
            raise ValueError(f"ImageRule sources must be among {IMAGE_SOURCES}, got {unknown}.")
        return cls(tuple(weights.get(source, 0.0) for source in IMAGE_SOURCES), threshold)

    def weights_by_source(self) -> dict:
        """`{source: weight}` of every source in `IMAGE_SOURCES`."""
        return dict(zip(IMAGE_SOURCES, self.weights))

    def check_tasks(self, tasks) -> None:
        """Raises ValueError when a source of non-zero weight needs a task not in `tasks`."""
        missing = [
            source
            for source, weight in self.weights_by_source().items()
            if weight > 0 and SOURCE_TASKS[source] not in tasks
        ]
        if missing:
            raise ValueError(
                f"The image rule weighs {missing}, which a model with tasks {tuple(tasks)} "
                f"does not have: its weights are {self.weights_by_source()}."
            )


def decode_outputs(
    outputs: dict,
    config,
    anchors=None,
    thresholds=None,
    normalize_boxes: bool = True,
    check_finite: bool = True,
    max_detections: int = 100,
    score_threshold: float = 0.05,
    iou_threshold: float = 0.5,
    image_rule: ImageRule | None = None,
) -> dict:
    """The results (see the module docstring) of a batch of the model's raw outputs.

    Example:
    ```python
    results = decode_outputs(model(images), model.config, model.anchors, [0.4, 0.6])
    results["is_defective"]  # bool [B]
    ```

    Args:
      outputs: the model's output dict (`classification`, `segmentation`,
        `box_regression`, `box_classification`; those of its tasks), tensors or numpy.
        A model that decodes its boxes itself gives `detection_boxes` (float32
        `[B, N, 4]` or class-specific `[B, N, K, 4]` pixels of its input, clipped) and
        `detection_scores` (float32 `[B, N, K]` class probabilities) instead of the
        last two: they go straight to `select_detections`, without anchors.
      config: the model's `DefectAuxNetConfig`.
      anchors: float `[A, 4]` anchors of the detection outputs (`model.anchors`);
        needed with `box_regression` only.
      thresholds: K per-class decision thresholds; None for `DEFAULT_THRESHOLD` each.
      normalize_boxes: boxes in [0, 1] of the image (they apply to the original
        image whatever its size); False for pixels of the model input.
      check_finite: raise InvalidArgumentError (an error response in TF Serving)
        when a floating output holds NaN or inf: NaN fails every threshold
        comparison and would read as "not defective".
      max_detections, score_threshold, iou_threshold: see `select_detections`.
      image_rule: the fused image score's weights and threshold that decide
        `is_defective`; None for the per-class rule.

    Returns:
      dict of tensors.
    """
    if check_finite:
        outputs = {
            name: tf.debugging.assert_all_finite(
                value, f"the model's `{name}` output is NaN or infinite"
            )
            if tf.as_dtype(value.dtype).is_floating
            else value
            for name, value in outputs.items()
        }
    results = {}
    if "classification" in outputs:
        results["probabilities"] = tf.convert_to_tensor(outputs["classification"], tf.float32)
    if "segmentation" in outputs:
        results["masks"] = tf.convert_to_tensor(outputs["segmentation"], tf.float32)
    detections = None
    height, width = config.input_shape[:2]
    decoding = dict(
        max_detections=max_detections,
        score_threshold=score_threshold,
        iou_threshold=iou_threshold,
    )
    if "box_regression" in outputs:
        if anchors is None:
            raise ValueError("decode_outputs needs the anchors of a model with detection.")
        anchors = tf.convert_to_tensor(anchors, tf.float32)
        # The heads' reshapes lose the anchor count in graphs; NMS needs it static.
        num_anchors, num_classes = anchors.shape[0], config.num_classes
        detections = decode_detections(
            tf.ensure_shape(outputs["box_regression"], [None, num_anchors, 4]),
            tf.ensure_shape(outputs["box_classification"], [None, num_anchors, num_classes]),
            anchors,
            (height, width),
            **decoding,
        )
    elif "detection_boxes" in outputs:
        # Boxes the model decoded itself (two-stage detectors), clipped to its input.
        detections = select_detections(
            outputs["detection_boxes"], outputs["detection_scores"], **decoding
        )
    if detections is not None:
        results |= detections
        if normalize_boxes:
            results["boxes"] = detections["boxes"] / tf.constant(
                [height, width, height, width], tf.float32
            )
    if thresholds is None:
        thresholds = [DEFAULT_THRESHOLD] * config.num_classes
    if image_rule is not None and not tf.is_tensor(image_rule.weights):
        image_rule.check_tasks(config.tasks)
    results["image_score"] = image_score(results, image_rule)
    results["is_defective"] = is_defective(results, thresholds, image_rule)
    return results


def image_evidence(results: dict) -> dict:
    """float32 `[B]` per source of decoded `results`: how defective each head finds an image.

    `classification`: the highest class probability; `mask`: the highest mask
    probability; `detection`: the highest score of a real detection, 0 without one.
    Only the sources whose results are present, in `IMAGE_SOURCES` order.
    """
    evidence = {}
    if "probabilities" in results:
        probabilities = tf.convert_to_tensor(results["probabilities"], tf.float32)
        evidence["classification"] = tf.reduce_max(probabilities, axis=-1)
    if "masks" in results:
        masks = tf.convert_to_tensor(results["masks"], tf.float32)
        evidence["mask"] = tf.reduce_max(masks, axis=[1, 2, 3])
    if "scores" in results:
        scores = tf.convert_to_tensor(results["scores"], tf.float32)
        real = tf.where(valid_detections(results), scores, tf.zeros_like(scores))
        # The zero column: an image without detections (or max_detections 0) scores 0.
        evidence["detection"] = tf.reduce_max(
            tf.concat([tf.zeros_like(scores[:, :1]), real], axis=1), axis=1
        )
    if not evidence:
        raise ValueError(f"results hold no task output: {sorted(results)}.")
    return evidence


def image_score(results: dict, image_rule: ImageRule | None = None) -> tf.Tensor:
    """float32 `[B]`: the image score of decoded `results` (`fused_score` of their evidence)."""
    return fused_score(image_evidence(results), image_rule)


def fused_score(evidence: dict, image_rule: ImageRule | None = None) -> tf.Tensor:
    """float32 `[B]`: `sum(weight * evidence)` over `IMAGE_SOURCES` with the rule's weights.

    Without a rule, the evidence of the first source present in `IMAGE_SOURCES` order
    (the classifier's when the model classifies).

    Args:
      evidence: `{source: [B]}` as `image_evidence` returns it (tensors or numpy).
      image_rule: the weights; a source it weighs that `evidence` lacks adds 0
        (`ImageRule.check_tasks` keeps such weights at 0).
    """
    present = {
        source: tf.convert_to_tensor(evidence[source], tf.float32)
        for source in IMAGE_SOURCES
        if source in evidence
    }
    if not present:
        raise ValueError(f"evidence must hold one of {IMAGE_SOURCES}, got {sorted(evidence)}.")
    if image_rule is None:
        return next(iter(present.values()))
    weights = tf.cast(image_rule.weights, tf.float32)
    zeros = tf.zeros_like(next(iter(present.values())))
    stacked = tf.stack([present.get(source, zeros) for source in IMAGE_SOURCES], axis=-1)
    return tf.reduce_sum(stacked * weights, axis=-1)


def is_defective(results: dict, thresholds, image_rule: ImageRule | None = None) -> tf.Tensor:
    """bool `[B]`: the `is_defective` rule of the module docstring over decoded `results`."""
    if image_rule is not None:
        return image_score(results, image_rule) >= tf.cast(image_rule.threshold, tf.float32)
    thresholds = tf.cast(thresholds, tf.float32)
    if "probabilities" in results:
        return tf.reduce_any(results["probabilities"] >= thresholds, axis=-1)
    evidence = []
    if "masks" in results:
        evidence.append(tf.reduce_any(results["masks"] >= MASK_THRESHOLD, axis=[1, 2, 3]))
    if "scores" in results:
        class_thresholds = tf.gather(thresholds, results["classes"])
        evidence.append(tf.reduce_any(valid_detections(results, class_thresholds), axis=-1))
    if not evidence:
        raise ValueError(f"results hold no task output: {sorted(results)}.")
    return tf.reduce_any(tf.stack(evidence), axis=0)


def valid_detections(results: dict, min_scores=0.0) -> tf.Tensor:
    """bool `[B, max_detections]`: rows before `num_detections` with `scores >= min_scores`.

    Args:
      results: decoded results with `scores` and `num_detections`.
      min_scores: a scalar or a `[B, max_detections]` tensor (e.g. per-class thresholds
        gathered by class).
    """
    scores = tf.convert_to_tensor(results["scores"], tf.float32)
    rows = tf.range(tf.shape(scores)[1])[None, :]
    real = rows < tf.cast(results["num_detections"], tf.int32)[:, None]
    return real & (scores >= tf.cast(min_scores, tf.float32))
