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
  is_defective: bool `[B]`: any class probability >= its threshold; without a
    classification head, any mask pixel >= `MASK_THRESHOLD` or any detection whose
    score is >= the threshold of its class.
"""

import tensorflow as tf

from defect_aux_net.detection.decoding import decode_detections

# A mask pixel at or above this probability is defect: in masks drawn and counted,
# and for `is_defective` when the model has no classification head.
MASK_THRESHOLD = 0.5
# Each class's decision threshold when none was chosen on a validation split.
DEFAULT_THRESHOLD = 0.5


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
      config: the model's `DefectAuxNetConfig`.
      anchors: float `[A, 4]` anchors of the detection outputs (`model.anchors`);
        needed with detection only.
      thresholds: K per-class decision thresholds; None for `DEFAULT_THRESHOLD` each.
      normalize_boxes: boxes in [0, 1] of the image (they apply to the original
        image whatever its size); False for pixels of the model input.
      check_finite: raise InvalidArgumentError (an error response in TF Serving)
        when a floating output holds NaN or inf: NaN fails every threshold
        comparison and would read as "not defective".
      max_detections, score_threshold, iou_threshold: see `decode_detections`.

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
    if "box_regression" in outputs:
        height, width = config.input_shape[:2]
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
            max_detections=max_detections,
            score_threshold=score_threshold,
            iou_threshold=iou_threshold,
        )
        results |= detections
        if normalize_boxes:
            results["boxes"] = detections["boxes"] / tf.constant(
                [height, width, height, width], tf.float32
            )
    if thresholds is None:
        thresholds = [DEFAULT_THRESHOLD] * config.num_classes
    results["is_defective"] = is_defective(results, thresholds)
    return results


def is_defective(results: dict, thresholds) -> tf.Tensor:
    """bool `[B]`: the `is_defective` rule of the module docstring over decoded `results`."""
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
